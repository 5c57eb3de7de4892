"""The result cache: what each tool said about each file, findings included.

As ESLint's and Ruff's caches do, a result is keyed by the file's path and content and by the
tool's *fingerprint*: its name and arguments, its installed version (the tool's script, the
packages beside it, ``node_modules/.package-lock.json``, ``node``) and the content of the
configuration files it reads where it runs (``Tool.configs``: at the top of the tree for the
Python tools, in the frontend for ESLint and Prettier; of pyproject.toml only the tool's own
table; for isort and Ruff also the names at the top of the tree and of ``src/``, by which they
tell first-party imports). A warm run re-runs a tool only on the files whose key it has not
seen, and prints the others' findings from the cache, exactly as the tool printed them. Errors
(a crash, a file a tool could not read) are never kept. One JSON file (0600, its directory
0700, whatever the umask); a cache that cannot be read or written only costs time, and one in a
directory another user owns or may write is neither read nor written.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from tasks.core import files
from tasks.lint.findings import FileResult
from tasks.lint.tools import ERROR, Tool

VERSION = 2  # 2: package markers in the layout (snapshots before 2 had none)
MAX_ENTRIES = 50000  # the oldest go first
LAYOUT_TOOLS = frozenset({"isort", "ruff-check"})


def _stat(path: str | Path) -> str:
    try:
        real = os.path.realpath(path)
        info = os.stat(real)
    except OSError:
        return f"{path}:-"
    return f"{real}:{info.st_size}:{info.st_mtime_ns}"


def _listing(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    from tasks.lint.files import SKIPPED_DIRS

    listed = sorted(
        n for n in names
        if not n.startswith(".") and n not in SKIPPED_DIRS
        and (n.endswith((".py", ".pyi")) or (directory / n).is_dir())
    )  # fmt: skip
    # a top-level directory is a package (first-party to isort and Ruff) by its __init__.py
    return [n + "/" if (directory / n / "__init__.py").is_file() else n for n in listed]


def installed(tool: Tool, binary: str) -> list[str]:
    """What says which version of ``tool`` runs (stats of files that change on upgrade)."""
    parts = [_stat(binary)]
    real = Path(os.path.realpath(binary))
    if tool.side == "python":
        for site in sorted(
            glob.glob(str(real.parent.parent / "lib" / "python*" / "site-packages"))
        ):
            parts.append(_stat(site))
    else:
        modules = next((p for p in real.parents if p.name == "node_modules"), None)
        if modules is not None:
            parts.append(_stat(modules / ".package-lock.json"))
        parts.append(_stat(shutil.which("node") or "node"))
    return parts


def _trusted(directory: Path) -> bool:
    """Not there yet, or ours (or root's) and not writable by others: see tasks.core.files."""
    try:
        return not directory.is_dir() or files.dir_problem(directory) is None
    except OSError:
        return False


class ResultCache:
    """``{key: [status, lines]}`` in one JSON file; :meth:`save` merges what this run added."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list[object]] = {}
        self.added: dict[str, list[object]] = {}
        self._fingerprints: dict[tuple[object, ...], str] = {}
        self._digests: dict[Path, str | None] = {}
        if path is not None and not _trusted(path.parent):
            self.path = None  # another user's (or a shared) directory: neither read nor written
        if self.path is not None:
            self.entries = self._load(self.path)

    @staticmethod
    def _load(path: Path) -> dict[str, list[object]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def fingerprint(self, tool: Tool, args: Iterable[str], cwd: Path, tree_root: Path) -> str:
        memo = (tool.name, tuple(args), cwd, tree_root)
        if memo not in self._fingerprints:
            digest = hashlib.sha256()
            binary, *rest = memo[1]
            parts: list[object] = [VERSION, tool.name, rest, installed(tool, str(binary))]
            for name in tool.configs:
                content = self._config(cwd / name, tool.name)
                digest.update(name.encode() + b"\0" + (content or "-").encode())
            if tool.name in LAYOUT_TOOLS:
                parts += [_listing(tree_root), _listing(tree_root / "src")]
            digest.update(json.dumps(parts).encode())
            self._fingerprints[memo] = digest.hexdigest()
        return self._fingerprints[memo]

    def _config(self, path: Path, tool: str) -> str | None:
        """A config file's digest; of pyproject.toml, only what ``tool`` reads there."""
        if path.name != "pyproject.toml":
            return self._digest(path)
        try:
            import tomllib

            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ImportError, OSError, ValueError):  # Python 3.10, or a broken file: all of it
            return self._digest(path)
        section = {"ruff-check": "ruff", "ruff-format": "ruff"}.get(tool, tool)
        wanted = [data.get("tool", {}).get(section), data.get("project", {}).get("requires-python")]
        return hashlib.sha256(json.dumps(wanted, sort_keys=True, default=str).encode()).hexdigest()

    def _digest(self, path: Path) -> str | None:
        if path not in self._digests:
            try:
                self._digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                self._digests[path] = None
        return self._digests[path]

    def key(self, fingerprint: str, cwd: Path, name: str) -> str | None:
        content = self._digest(cwd / name)
        if content is None:
            return None
        return hashlib.sha256(f"{fingerprint}\0{name}\0{content}".encode()).hexdigest()

    def get(self, key: str | None) -> FileResult | None:
        if key is None:
            return None
        return FileResult.from_json(self.entries.get(key))

    def put(self, results: Mapping[str | None, FileResult]) -> None:
        for key, result in results.items():
            if key is not None and result.status != ERROR:
                self.added[key] = self.entries[key] = result.to_json()

    def save(self) -> None:
        """Merge this run's results into the file (atomically; another run may have saved)."""
        if self.path is None or not self.added:
            return
        try:
            entries = self._load(self.path)
            entries.update(self.added)
            if len(entries) > MAX_ENTRIES:
                entries = dict(list(entries.items())[-MAX_ENTRIES:])
            files.make_dirs(self.path.parent, 0o700)
            text = json.dumps({"version": VERSION, "entries": entries})
            files.write_atomic(self.path, text, 0o600)  # 0600 whatever the umask
        except OSError:
            pass
