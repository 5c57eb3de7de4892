"""A commit's files in a private directory: what the pre-push hook and ``--rev`` lint.

The files to lint and the tool configurations *of that commit* (the config files in the
directories above each linted file, and the frontend's top-level files, which its ESLint config
may import) are written from git's objects into a directory under this run's private
:func:`tasks.core.secrets.run_dir`; the working tree is never read. Every directory of the
commit is created and the top-level Python modules get empty stand-ins, so isort and Ruff tell
first-party imports as they would in a checkout. The frontend's ``node_modules`` (the installed
tools, not content) is linked in. Findings are reported under the repository's paths.

A commit's paths are data: every path of the commit (and of the diff that chose the files) is
checked against git's own rules (:mod:`tasks.lint.gitpath`) before anything is written, and
every destination is resolved and must lie inside the snapshot before its directory is made or
its file opened (``O_EXCL|O_NOFOLLOW``). A commit git would refuse to check out is refused in
one line naming the path.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tasks.core.errors import Refused
from tasks.lint import git, gitpath
from tasks.lint.files import PRETTIER_SUFFIXES, Layout, Target, Tree, select, skipped, under
from tasks.lint.tools import JS_CONFIGS, PYTHON_CONFIGS, SECRETS_CONFIGS

CONFIG_NAMES = frozenset(PYTHON_CONFIGS) | frozenset(JS_CONFIGS) | frozenset(SECRETS_CONFIGS)
REGULAR = frozenset({"100644", "100755"})
# a package's markers: without them isort and Ruff class ``pkg.sub`` as third-party
PACKAGE_MARKERS = frozenset({"__init__.py", "__init__.pyi", "py.typed"})
_COUNTER = itertools.count(1)


def _lintable(layout: Layout, path: Path, sides: Sequence[str]) -> bool:
    if "python" in sides and under(path, layout.python_paths):
        return True
    return "js" in sides and path.suffix in PRETTIER_SUFFIXES and under(path, layout.js_paths)


def _configs(entries: Sequence[git.Entry], wanted: Sequence[str], frontend: str) -> set[str]:
    """Config files in the directories holding ``wanted`` files and above; the frontend's
    top-level files."""
    dirs = {""}
    for rel in wanted:
        dirs.update(str(p) if str(p) != "." else "" for p in PurePosixPath(rel).parents)
    chosen = set()
    for entry in entries:
        parent = str(PurePosixPath(entry.path).parent)
        parent = "" if parent == "." else parent
        if parent in dirs and PurePosixPath(entry.path).name in CONFIG_NAMES:
            chosen.add(entry.path)
        elif frontend and parent == frontend:
            chosen.add(entry.path)
    return chosen


def build(
    layout: Layout,
    repo: Path,
    sha: str,
    label: str,
    base_dir: Path,
    sides: Sequence[str],
    changed: Sequence[str] | None,
    *,
    strict: bool = True,
) -> Target:
    """Write commit ``sha`` of ``repo`` (its ``changed`` files, or all: None) under
    ``base_dir`` and select what ``sides`` lint there (``strict``: every configured path of
    the repository must match a file of the commit)."""
    if changed is not None:
        _refuse_unsafe(changed, label)
        changed = [p for p in changed if not skipped(p) and _lintable(layout, repo / p, sides)]
        if not changed:  # nothing of the push is ours to lint: no snapshot at all
            return Target(Tree(base_dir, repo, label))
    listing = git.tree_entries(repo, sha)
    _refuse_unsafe([e.path for e in listing], label)
    entries = [e for e in listing if e.kind == "blob"]
    by_path = {e.path: e for e in entries if e.mode in REGULAR}
    pool = by_path if changed is None else {p: by_path[p] for p in changed if p in by_path}
    wanted = [
        p for p in pool if not skipped(p) and _lintable(layout, repo / p, sides)
    ]  # fmt: skip
    if changed is None and strict:
        _each_path_matches(layout, repo, wanted, sides, label)
    frontend = os.path.relpath(layout.frontend, repo) if "js" in sides else ""
    frontend = "" if frontend.startswith("..") else frontend
    configs = _configs(entries, wanted, frontend) & set(by_path)
    dest = base_dir / f"snapshot-{next(_COUNTER)}"
    dest.mkdir(mode=0o700, parents=True)
    dest = Path(os.path.realpath(dest))  # what _inside compares resolved paths with
    (dest / ".git").mkdir()  # where black, isort ... stop looking for a project root
    for entry in entries:
        _inside(dest, entry.path, label).parent.mkdir(parents=True, exist_ok=True)
    blobs = git.read_blobs(repo, sorted({by_path[p].oid for p in (*wanted, *configs)}))
    for rel in dict.fromkeys((*wanted, *configs)):  # a frontend file may be both
        mode = 0o755 if by_path[rel].mode == "100755" else 0o644
        _write(_inside(dest, rel, label), blobs[by_path[rel].oid], mode)
    for rel in by_path:  # isort's and Ruff's first-party detection, as in a checkout:
        top = PurePosixPath(rel)  # top-level modules and every package marker of the commit
        if (dest / rel).exists():
            continue
        marker = top.name in PACKAGE_MARKERS
        if marker or (len(top.parts) <= 2 and top.suffix in (".py", ".pyi")):
            if marker or len(top.parts) == 1 or top.parts[0] == "src":
                _write(_inside(dest, rel, label), b"", 0o644)
    modules = layout.frontend / "node_modules"
    link = dest / frontend / "node_modules"
    if frontend and modules.is_dir() and (dest / frontend).is_dir() and not os.path.lexists(link):
        os.symlink(modules, link)
    return select(layout, Tree(dest, repo, label), wanted, sides)


def _refuse_unsafe(paths: Sequence[str], label: str) -> None:
    """One line naming the first path of commit ``label`` git would refuse to write."""
    found = gitpath.first_unsafe(paths)
    if found is not None:
        path, why = found
        raise Refused(
            f"lint: commit {label} holds a path git refuses to check out: {path!r} ({why}); "
            "nothing was written"
        )


def _inside(dest: Path, rel: str, label: str) -> Path:
    """``dest / rel``, resolved (symlinks followed) and checked to lie inside ``dest``."""
    target = dest / rel
    real = Path(os.path.realpath(target))
    if real != dest and dest not in real.parents:
        raise Refused(
            f"lint: commit {label}: {rel!r} resolves to {real}, outside its snapshot; "
            "nothing more was written"
        )
    return target


def _write(path: Path, data: bytes, mode: int) -> None:
    """A new file (never through a symlink, never over an existing file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, mode)  # the commit's mode, whatever the umask
        handle.write(data)


def _each_path_matches(
    layout: Layout, repo: Path, wanted: Sequence[str], sides: Sequence[str], label: str
) -> None:
    """A configured path of this repository with no file in the commit is an error."""
    for side, paths in (("python", layout.python_paths), ("js", layout.js_paths)):
        if side not in sides:
            continue
        for path in paths:
            if not under(path, [repo]):
                continue
            if not any(under(repo / rel, [path]) for rel in wanted):
                raise layout.fail(path, f"matches no file in commit {label}")
