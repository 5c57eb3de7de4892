"""Paths from a commit are data: the checks git itself applies before it writes a path.

git stores whatever a tree object holds: ``git mktree`` builds entries named ``..`` or
``.git``, ``git fetch`` accepts them unless ``transfer.fsckObjects`` is set, and ``git fsck``
only warns. git refuses to *check out* such a path; a snapshot (README "Lint", ``--rev`` and
the pre-push hook) must refuse it as well before it writes anything, or a pushed commit could
write files anywhere the user running ``inv`` can. The rules follow git's own:

- ``read-cache.c`` ``verify_path()`` / ``verify_dotfile()``: no empty, ``.`` or ``..``
  component, no ``.git`` component in any case (git outlaws ``.GIT`` everywhere "out of an
  abundance of caution");
- ``utf8.c`` ``is_hfs_dotgit()`` (``core.protectHFS``): ``.git`` spelt with code points HFS+
  ignores (U+200C-U+200F, U+202A-U+202E, U+206A-U+206F, U+FEFF), e.g. ``.g\\u200cit``;
- ``path.c`` ``is_ntfs_dotgit()`` (``core.protectNTFS``, on by default since git 2.24.1):
  ``.git`` or its 8.3 short name ``git~1`` followed only by spaces and periods, up to the end,
  a backslash or an alternate data stream's ``:`` (``.git.``, ``GIT~1 ``, ``.git::$DATA``);
- ``fsck.c`` ``fsck_tree()``: ``hasDot``, ``hasDotdot``, ``hasDotgit``, ``emptyName``,
  ``fullPathname`` (a ``/`` inside an entry's name: an absolute or doubled-slash path here),
  ``duplicateEntries`` (here: a path that is both a file and a directory, or listed twice).

Backslash-separated segments are checked too (NTFS reads ``\\`` as a separator), which is
stricter than git on Linux. :func:`problem` is pure; :func:`first_unsafe` checks a listing.
"""

from __future__ import annotations

from collections.abc import Iterable

HFS_IGNORED = frozenset(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def _hfs_dotgit(name: str) -> bool:
    """``is_hfs_dotgit``: ``.git`` once HFS+'s ignorable code points are dropped."""
    return "".join(ch for ch in name if ord(ch) not in HFS_IGNORED).lower() == ".git"


def _ntfs_dotgit(segment: str) -> bool:
    """``is_ntfs_dotgit`` for one segment: ``.git`` / ``git~1`` + spaces and periods."""
    lowered = segment.lower()
    for stem in (".git", "git~1"):
        if lowered.startswith(stem):
            rest = lowered[len(stem) :].split(":", 1)[0]
            if rest.strip(" .") == "":
                return True
    return False


def problem(path: str) -> str:
    """Why git would refuse to write ``path`` (relative, ``/``-separated); "" if it is fine."""
    if not path:
        return "an empty path"
    if path.startswith("/"):
        return "an absolute path"
    if "\0" in path:
        return "a NUL byte"
    if any("\udc80" <= ch <= "\udcff" for ch in path):
        return "not valid UTF-8"
    for part in path.split("/"):
        if part == "":
            return "an empty component"
        if part in (".", ".."):
            return f"a {part!r} component"
        if part.lower() == ".git":
            return "a '.git' component"
        if _hfs_dotgit(part) or any(_ntfs_dotgit(seg) for seg in part.split("\\")):
            return "an HFS+/NTFS alias of '.git'"
    return ""


def first_unsafe(paths: Iterable[str]) -> tuple[str, str] | None:
    """The first ``(path, why)`` of ``paths`` git would refuse, including a path listed twice
    or both a file and a directory; None when every path is safe to write."""
    seen: set[str] = set()
    dirs: set[str] = set()
    listed = list(paths)
    for path in listed:
        why = problem(path)
        if why:
            return path, why
        if path in seen:
            return path, "listed twice (duplicate tree entries)"
        seen.add(path)
        parts = path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for path in listed:
        if path in dirs:
            return path, "both a file and a directory (duplicate tree entries)"
    return None
