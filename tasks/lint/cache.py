"""Remembering clean files for Flake8 and Bandit, as ESLint's and Prettier's ``--cache`` do.

Both analyse one file at a time, so a file whose content (and path) last passed under the
same tool, arguments, configuration and installed packages passes again: it is not re-run.
Only clean results are remembered; findings and errors are re-checked every time. Black
keeps its own cache; isort is not cached (it classifies imports by looking at the disk).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tasks.lint.execute import Outcome
from tasks.lint.tools import OK, Step

CACHED_TOOLS = frozenset({"flake8", "bandit"})
CONFIG_FILES = (".flake8", "setup.cfg", "tox.ini", "pyproject.toml", ".bandit")
MAX_ENTRIES = 20000  # per tool; the oldest go first


def fingerprint(step: Step) -> str:
    """What a clean result depends on besides the file: tool, arguments, configuration files,
    and the installed tool and packages (mtimes of the script, bin/ and site-packages)."""
    digest = hashlib.sha256()
    args = step.argv[: len(step.argv) - len(step.files)]
    digest.update(json.dumps([step.tool.name, list(args)]).encode())
    for name in CONFIG_FILES:
        path = step.cwd / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    binary = Path(step.argv[0])
    for path in (binary, binary.parent, *binary.parent.parent.glob("lib/python*/site-packages")):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def file_key(cwd: Path, rel: str) -> str | None:
    try:
        content = (cwd / rel).read_bytes()
    except OSError:
        return None
    return hashlib.sha256(rel.encode() + b"\0" + content).hexdigest()


class CleanCache:
    """``{tool: {"fingerprint": ..., "clean": [file keys]}}`` in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, dict] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}
        if not isinstance(self.data, dict):
            self.data = {}
        self._fingerprints: dict[Step, str] = {}
        self._keys: dict[Step, list[str | None]] = {}  # content when planned, not after the run

    def _clean(self, step: Step) -> dict[str, None]:
        fp = self._fingerprints.setdefault(step, fingerprint(step))
        entry = self.data.get(step.tool.name)
        if not isinstance(entry, dict) or entry.get("fingerprint") != fp:
            entry = self.data[step.tool.name] = {"fingerprint": fp, "clean": []}
        return dict.fromkeys(entry["clean"])

    def reduce(self, step: Step) -> Step:
        """``step`` without the files known clean (``cached`` counts them)."""
        if step.mode != "check" or step.tool.name not in CACHED_TOOLS:
            return step
        clean = self._clean(step)
        keys = {f: file_key(step.cwd, f) for f in step.files}
        todo = tuple(f for f in step.files if keys[f] is None or keys[f] not in clean)
        args = step.argv[: len(step.argv) - len(step.files)]
        reduced = replace(step, argv=(*args, *todo), files=todo, cached=len(step.files) - len(todo))
        self._fingerprints[reduced] = self._fingerprints[step]
        self._keys[reduced] = [keys[f] for f in todo]
        return reduced

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Remember the files of clean check runs, then save (best effort)."""
        changed = False
        for outcome in outcomes:
            step = outcome.step
            if step.mode != "check" or step.tool.name not in CACHED_TOOLS or outcome.result != OK:
                continue
            clean = self._clean(step)
            keys = self._keys.get(step, [])
            clean.update(dict.fromkeys(k for k in keys if k is not None))
            entry = self.data[step.tool.name]
            entry["clean"] = list(clean)[-MAX_ENTRIES:]
            changed = True
        if changed:
            self.save()

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.data), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time
