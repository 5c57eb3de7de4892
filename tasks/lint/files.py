"""Which files to lint, and where they are: the configured paths, checked, and the trees.

Paths are absolute or relative to the project root (``../`` works). Each configured path
belongs to a *tree*: the git repository holding it (its top level), else the project root (or
the path itself when it lies outside). The Python tools run at the top of the tree and read
its configuration; ESLint and Prettier run in ``lint.frontend``. A :class:`Tree` is either the
working tree itself or a snapshot of a commit in a private directory (``root``), with
``origin`` the repository directory its files are reported under.

Discovery is plain ``os.walk`` with pruned vendor/cache directories; a file without a suffix
counts as Python when its first line is a Python shebang (``bench/`` scripts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import ConfigError
from tasks.core.settings import Where, origin_of

PYTHON_SUFFIXES = frozenset({".py", ".pyi"})
ESLINT_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx"})
PRETTIER_SUFFIXES = ESLINT_SUFFIXES | {".json", ".css", ".scss", ".html", ".md", ".yaml", ".yml"}
SKIPPED_DIRS = frozenset(
    {
        ".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox", "build", "dist",
        ".flowlet", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tools", ".eggs",
    }
)  # fmt: skip
SKIPPED_FILES = frozenset({"package-lock.json", "npm-shrinkwrap.json"})


def normal(path: Path | str) -> Path:
    """Absolute and normalised (``..`` resolved by name, symlinks kept)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def repo_root(path: Path) -> Path | None:
    """The top level of the git work tree holding ``path`` (a ``.git`` dir or file), if any."""
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def is_python(path: Path) -> bool:
    """``.py`` / ``.pyi``, or no suffix and a ``#!...python`` first line."""
    if path.suffix in PYTHON_SUFFIXES:
        return True
    if path.suffix or not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def under(path: Path, prefixes: Iterable[Path]) -> bool:
    """True if ``path`` is one of ``prefixes`` or inside one of them, both normalised first
    (:func:`normal`): ``tasks/../../x`` is not under ``tasks``."""
    target = normal(path)
    for prefix in prefixes:
        base = normal(prefix)
        if target == base or base in target.parents:
            return True
    return False


def skipped(rel: str) -> bool:
    parts = Path(rel).parts
    return any(part in SKIPPED_DIRS for part in parts[:-1]) or parts[-1] in SKIPPED_FILES


@dataclass(frozen=True)
class Layout:
    """The checked configuration: absolute paths per side, the frontend, the project root."""

    project: Path
    python_paths: tuple[Path, ...]
    js_paths: tuple[Path, ...]
    frontend: Path
    values: dict[Path, tuple[str, str]]  # path -> (key, value as configured), for messages
    config: Any = None  # the invoke Config (where a value was set)

    def display(self, path: Path) -> str:
        """How a file is named in the output: relative to the project root when inside it."""
        if under(path, [self.project]):
            return os.path.relpath(path, self.project)
        return str(path)

    def origin_of(self, path: Path) -> Path:
        """The tree a configured path belongs to (see the module docstring)."""
        top = repo_root(path)
        if top is not None:
            return top
        if under(path, [self.project]):
            return self.project
        return path if path.is_dir() else path.parent

    def fail(self, path: Path, problem: str) -> ConfigError:
        key, value = self.values[path]
        origin = origin_of(self.config, ["lint", key]) if self.config is not None else ""
        where = f" (set in {origin})" if origin else ""
        return ConfigError(f"lint.{key}: {value!r} {problem}{where}")


def layout(config: Any, cfg: Any, project: Path, sides: Sequence[str]) -> Layout:
    """Resolve and check ``lint.python_paths`` / ``js_paths`` / ``frontend`` for ``sides``."""
    values: dict[Path, tuple[str, str]] = {}

    def resolve(key: str) -> tuple[Path, ...]:
        paths = []
        for value in getattr(cfg, key):
            path = normal(project / os.path.expanduser(value))
            if not path.exists():
                valid = "an existing file or directory (relative paths: to the project root)"
                raise Where(f"lint.{key}", config, project).fail(
                    value, f"{valid}; {path} does not exist"
                )
            values.setdefault(path, (key, value))
            paths.append(path)
        return tuple(paths)

    python_paths = resolve("python_paths") if "python" in sides else ()
    js_paths = resolve("js_paths") if "js" in sides else ()
    frontend = normal(cfg.frontend)
    if js_paths and not frontend.is_dir():
        raw = config.get("lint", {}).get("frontend", str(cfg.frontend)) if config else frontend
        raise Where("lint.frontend", config, project).fail(
            raw, f"an existing directory (ESLint and Prettier run there); "
            f"{frontend} does not exist"
        )  # fmt: skip
    for path in js_paths:
        if not under(path, [frontend]):
            raise ConfigError(
                f"lint.js_paths: {values[path][1]!r} is outside lint.frontend "
                f"{os.path.relpath(frontend, project)!r}; ESLint and Prettier run there"
            )
    return Layout(project, python_paths, js_paths, frontend, values, config)


@dataclass(frozen=True)
class Tree:
    """Where linted content lives: a working tree (``root == origin``) or a commit's snapshot."""

    root: Path  # the files are here (tools run here)
    origin: Path  # the repository directory they belong to (display names come from here)
    label: str = ""  # "" for the working tree; the commit (or pushed ref) of a snapshot

    def frontend(self, layout: Layout) -> Path:
        """``lint.frontend`` inside this tree."""
        return self.root / os.path.relpath(layout.frontend, self.origin)


@dataclass(frozen=True)
class Target:
    """Files of one tree to lint, relative to its root, per side."""

    tree: Tree
    python: tuple[str, ...] = ()
    js: tuple[str, ...] = ()
    tools: tuple[str, ...] | None = None  # only these tools (None: all)

    @property
    def empty(self) -> bool:
        return not (self.python or self.js)


def walk(start: Path) -> list[Path]:
    """Every file under ``start`` (or ``start`` itself), skipping :data:`SKIPPED_DIRS`."""
    if not start.is_dir():
        return [start]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        found.extend(Path(dirpath) / name for name in sorted(filenames))
    return found


def side_of(layout: Layout, path: Path, content: Path, sides: Sequence[str]) -> list[str]:
    """Which sides lint ``path`` (its content is at ``content``: a snapshot may differ)."""
    found = []
    if "python" in sides and under(path, layout.python_paths) and is_python(content):
        found.append("python")
    if (
        "js" in sides
        and path.suffix in PRETTIER_SUFFIXES
        and under(path, layout.js_paths)
        and under(path, [layout.frontend])
    ):
        found.append("js")
    return found


def select(layout: Layout, tree: Tree, rels: Iterable[str], sides: Sequence[str]) -> Target:
    """The files among ``rels`` (relative to the tree) that ``sides`` lint."""
    python: list[str] = []
    js: list[str] = []
    for rel in sorted(set(os.path.normpath(r) for r in rels)):
        content = tree.root / rel
        if skipped(rel) or content.is_symlink() or not content.is_file():
            continue
        chosen = side_of(layout, tree.origin / rel, content, sides)
        if "python" in chosen:
            python.append(rel)
        if "js" in chosen:
            js.append(rel)
    return Target(tree, tuple(python), tuple(js))


def discover(layout: Layout, sides: Sequence[str]) -> list[Target]:
    """Every file of the configured paths, one target per tree; a configured path that holds
    no file its side lints is an error (a typo must not pass as "nothing to lint")."""
    by_origin: dict[Path, list[str]] = {}
    for side, paths in (("python", layout.python_paths), ("js", layout.js_paths)):
        if side not in sides:
            continue
        for path in paths:
            origin = layout.origin_of(path)
            found = [f for f in walk(path) if side in side_of(layout, f, f, (side,))]
            if not found:
                what = "Python" if side == "python" else "JS/TS (or Prettier)"
                raise layout.fail(path, f"matches no {what} file")
            rels = by_origin.setdefault(origin, [])
            rels.extend(os.path.relpath(f, origin) for f in found)
    return [select(layout, Tree(origin, origin), rels, sides) for origin, rels in by_origin.items()]
