"""Which files to lint: the configured paths, or only the changed ones (git).

Discovery is plain ``os.walk`` with pruned vendor/cache directories; a file without a suffix
counts as Python when its first line is a Python shebang (``bench/`` scripts). Changed files
come from git: the merge base with the upstream (or ``--base``) against the working tree, plus
untracked files; or, in a pre-push hook, the commits each pushed ref adds to the remote.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404  # git with argv lists, never a shell
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.core.errors import OpsError

from tasks.core import runner
from tasks.lint.tools import FileSet

PYTHON_SUFFIXES = frozenset({".py", ".pyi"})
ESLINT_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx"})
PRETTIER_SUFFIXES = ESLINT_SUFFIXES | {".json", ".css", ".scss", ".html", ".md", ".yaml", ".yml"}
SKIPPED_DIRS = frozenset(
    {
        ".git",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "build",
        "dist",
        ".flowlet",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tools",
        ".eggs",
    }
)
SKIPPED_FILES = frozenset({"package-lock.json", "npm-shrinkwrap.json"})
ZERO_SHA = "0" * 40


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


def walk(root: Path, paths: Sequence[str]) -> list[str]:
    """Every file under ``paths`` (relative to ``root``), skipping :data:`SKIPPED_DIRS`."""
    found: list[str] = []
    for entry in paths:
        start = root / entry
        if start.is_file():
            found.append(os.path.relpath(start, root))
            continue
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            rel = os.path.relpath(dirpath, root)
            found.extend(os.path.normpath(os.path.join(rel, name)) for name in sorted(filenames))
    return found


def under(path: str, prefixes: Sequence[str]) -> bool:
    """True if ``path`` is one of ``prefixes`` or inside one of them."""
    for prefix in prefixes:
        prefix = os.path.normpath(prefix)
        if prefix == "." or path == prefix or path.startswith(prefix + os.sep):
            return True
    return False


def skipped(path: str) -> bool:
    parts = Path(path).parts
    return any(part in SKIPPED_DIRS for part in parts[:-1]) or parts[-1] in SKIPPED_FILES


def bandit_excluded(path: str, excludes: Sequence[str]) -> bool:
    """Bandit's ``exclude_dirs``: a path component, or a path prefix."""
    parts = Path(path).parts
    return any(e in parts or under(path, [e]) for e in excludes)


@dataclass(frozen=True)
class Layout:
    """Where things are: paths relative to ``root`` as configured under ``lint:``."""

    root: Path
    python_paths: tuple[str, ...]
    js_paths: tuple[str, ...]
    frontend: str
    bandit_excludes: tuple[str, ...] = ()


def select_files(layout: Layout, candidates: Iterable[str], sides: Sequence[str]) -> FileSet:
    """Sort ``candidates`` (root-relative) into the file lists each tool gets."""
    python: list[str] = []
    eslint: list[str] = []
    prettier: list[str] = []
    root = layout.root
    for path in sorted(set(os.path.normpath(p) for p in candidates)):
        if skipped(path) or not (root / path).is_file():
            continue
        if "python" in sides and under(path, layout.python_paths) and is_python(root / path):
            python.append(path)
        if "js" in sides and under(path, layout.js_paths) and under(path, [layout.frontend]):
            js = os.path.relpath(path, layout.frontend)
            suffix = Path(path).suffix
            if suffix in ESLINT_SUFFIXES:
                eslint.append(js)
            if suffix in PRETTIER_SUFFIXES:
                prettier.append(js)
    bandit = [p for p in python if not bandit_excluded(p, layout.bandit_excludes)]
    return FileSet(tuple(python), tuple(bandit), tuple(eslint), tuple(prettier))


def all_files(layout: Layout, sides: Sequence[str]) -> FileSet:
    paths = [
        *(layout.python_paths if "python" in sides else ()),
        *(layout.js_paths if "js" in sides else ()),
    ]
    return select_files(layout, walk(layout.root, paths), sides)


def git(root: Path, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """A read-only git query in ``root`` (runs under ``--dry`` too: its answer is the plan).

    Plain subprocess rather than ``c.run``: a pre-push hook pays for every millisecond, and
    these never need a terminal, echo or stdin (the hook's stdin carries the pushed refs).
    """
    return subprocess.run(  # nosec B603 B607  # fixed git argv
        ["git", "-C", str(root), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def git_lines(root: Path, argv: Sequence[str], what: str, *, sep: str = "\n") -> list[str]:
    """Output lines of a git query; fail with one line naming ``what`` if git fails.

    Path listings use ``-z`` and ``sep="\0"``: no quoting of unusual file names.
    """
    result = git(root, argv)
    if result.returncode:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit {result.returncode}"
        raise OpsError(f"{what}: git {runner.render(argv)} failed: {reason}")
    return [line for line in result.stdout.split(sep) if line.strip()]


def changed_files(root: Path, base: str) -> list[str]:
    """Files changed between the merge base of ``base`` (else ``$PRE_COMMIT_FROM_REF``, else
    the upstream) and the working tree, plus untracked files; root-relative."""
    # pre-commit's pre-push stage passes what the push brings in PRE_COMMIT_FROM_REF.
    ref = base or os.environ.get("PRE_COMMIT_FROM_REF", "")
    if not ref:
        upstream = git(root, ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"])
        if upstream.returncode:
            raise OpsError("--changed: the current branch has no upstream; pass --base REF")
        ref = upstream.stdout.strip()
    merge_base = git_lines(root, ["merge-base", ref, "HEAD"], f"--base {ref}")
    diff = ["diff", "-z", "--name-only", "--relative", "--diff-filter=d", merge_base[0]]
    changed = git_lines(root, diff, "--changed", sep="\0")
    untracked = ["ls-files", "-z", "--others", "--exclude-standard"]
    return changed + git_lines(root, untracked, "--changed", sep="\0")


@dataclass(frozen=True)
class PushedRef:
    """One line git passes to a pre-push hook on stdin."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_pre_push(text: str) -> list[PushedRef]:
    """``<local ref> <local sha> <remote ref> <remote sha>`` lines; deletions are dropped."""
    refs = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise OpsError(
                f"--pre-push: expected '<local ref> <local sha> <remote ref> <remote sha>' "
                f"on stdin, got {line!r}"
            )
        ref = PushedRef(*fields)
        if ref.local_sha.strip("0"):
            refs.append(ref)
    return refs


def pushed_files(root: Path, remote: str, refs: Sequence[PushedRef]) -> list[str] | None:
    """Files the pushed commits change (root-relative), or None: lint everything (the push
    brings root commits, i.e. a first push to an empty remote).

    An update diffs the remote tip against the pushed tip (from their merge base); a new
    branch (or a remote tip we do not have) diffs the parent of its oldest commit that no
    branch of ``remote`` contains, as pre-commit does.
    """
    files: list[str] = []
    for ref in refs:
        remote_tip = ref.remote_sha.strip("0") and ref.remote_sha
        if remote_tip and not git(root, ["cat-file", "-e", f"{remote_tip}^{{commit}}"]).returncode:
            span = f"{remote_tip}...{ref.local_sha}"
        else:
            new = ["rev-list", "--topo-order", "--reverse", ref.local_sha, "--not"]
            own = git_lines(root, [*new, f"--remotes={remote}"], "--pre-push")
            if not own:
                continue  # nothing the remote lacks
            parent = git(root, ["rev-parse", "--verify", "-q", f"{own[0]}^"])
            if parent.returncode:
                return None
            span = f"{parent.stdout.strip()}...{ref.local_sha}"
        diff = ["diff", "-z", "--name-only", "--relative", "--diff-filter=d", span]
        files.extend(git_lines(root, diff, "--pre-push", sep="\0"))
    return files
