"""Read-only git queries: changed files, the commits a push brings, a commit's files.

Every query runs ``git -C <repository>`` through :func:`tasks.core.runner.capture` (no
Invoke machinery: a pre-push hook pays for every millisecond). Path listings use ``-z``: no
quoting of unusual file names. Paths are relative to the repository's top level.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE  # nosec B404  # the constant: children start in core.runner

from tasks.core import runner
from tasks.core.errors import ConfigError, OpsError

ZERO_SHA = "0" * 40


def git(repo: Path, argv: Sequence[str], *, input: str | None = None) -> runner.Captured:
    return runner.capture(["git", "-C", str(repo), *argv], input=input)


def git_bytes(repo: Path, argv: Sequence[str]) -> runner.Captured:
    """:func:`git`, decoding the output as file names are (``surrogateescape``): a commit may
    hold a name that is not UTF-8, which :mod:`tasks.lint.gitpath` then refuses by name."""
    child = runner.spawn(["git", "-C", str(repo), *argv], stdout=PIPE, stderr=PIPE)
    out, err = child.communicate()
    return runner.Captured(
        argv,
        child.returncode,
        out.decode("utf-8", "surrogateescape"),
        err.decode("utf-8", "replace"),
    )


def lines(repo: Path, argv: Sequence[str], what: str, *, sep: str = "\n") -> list[str]:
    """Output lines of a git query; fail with one line naming ``what`` if git fails."""
    result = git_bytes(repo, argv) if sep == "\0" else git(repo, argv)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit {result.returncode}"
        raise OpsError(f"{what}: git {runner.render(argv)} failed in {repo}: {reason}")
    return [line for line in result.stdout.split(sep) if line.strip()]


DIFF = ("diff", "-z", "--name-only", "--no-renames", "--diff-filter=d", "--no-ext-diff")


def commit_of(repo: Path, rev: str, flag: str) -> str:
    """The full id of commit ``rev``; a ref that is no commit is one line naming ``flag``."""
    found = git(repo, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"])
    if not found.ok or not found.stdout.strip():
        raise ConfigError(f"{flag}: {rev!r} is not a commit in {repo}")
    return found.stdout.strip()


def upstream(repo: Path) -> str:
    found = git(repo, ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"])
    if not found.ok:
        raise ConfigError("--changed: the current branch has no upstream; pass --base REF")
    return found.stdout.strip()


def changed_in_worktree(repo: Path, base: str, flag: str) -> list[str]:
    """Files changed between the merge base of ``base`` and the working tree, plus untracked
    files (``base`` empty: the upstream)."""
    ref = base or upstream(repo)
    commit_of(repo, ref, flag if base else "--changed (the upstream)")
    merge_base = lines(repo, ["merge-base", ref, "HEAD"], f"{flag} {ref}")[0]
    changed = lines(repo, [*DIFF, merge_base], "--changed", sep="\0")
    untracked = ["ls-files", "-z", "--others", "--exclude-standard"]
    return changed + lines(repo, untracked, "--changed", sep="\0")


def changed_in_commit(repo: Path, base: str | None, sha: str) -> list[str] | None:
    """Files commit ``sha`` changes against the merge base with ``base`` (None: its parent);
    None when it has no parent and no base: every file of the commit."""
    if base is None:
        parent = git(repo, ["rev-parse", "--verify", "--quiet", f"{sha}^"])
        if not parent.ok:
            return None
        base = parent.stdout.strip()
    return lines(repo, [*DIFF, f"{base}...{sha}"], "--rev", sep="\0")


@dataclass(frozen=True)
class PushedRef:
    """One line git passes to a pre-push hook on stdin."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str

    @property
    def deletion(self) -> bool:
        return not self.local_sha.strip("0")


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
        if not ref.deletion:
            refs.append(ref)
    return refs


def pushed_commits(repo: Path, remote: str, ref: PushedRef) -> list[str]:
    """The commits a push of ``ref`` brings, oldest first (the remote has none of them)."""
    remote_tip = ref.remote_sha.strip("0") and ref.remote_sha
    if remote_tip and git(repo, ["cat-file", "-e", f"{remote_tip}^{{commit}}"]).ok:
        stop = [remote_tip]
    else:
        stop = [f"--remotes={remote}"]
    argv = ["rev-list", "--topo-order", "--reverse", ref.local_sha, "--not", *stop]
    return lines(repo, argv, "--pre-push")


def pushed_files(repo: Path, remote: str, ref: PushedRef) -> list[str] | None:
    """Files the commits pushed for ``ref`` change; None: every file (the push brings a root
    commit, i.e. a first push to an empty remote); [] when the remote has them all.

    An update diffs the pushed tip against its merge base with the remote tip; a new branch
    (or a remote tip we do not have) diffs from the parent of its oldest commit that no branch
    of ``remote`` contains, as pre-commit does.
    """
    remote_tip = ref.remote_sha.strip("0") and ref.remote_sha
    if remote_tip and git(repo, ["cat-file", "-e", f"{remote_tip}^{{commit}}"]).ok:
        return changed_in_commit(repo, remote_tip, ref.local_sha)
    new = ["rev-list", "--topo-order", "--reverse", ref.local_sha, "--not", f"--remotes={remote}"]
    own = lines(repo, new, "--pre-push")
    if not own:
        return []
    parent = git(repo, ["rev-parse", "--verify", "--quiet", f"{own[0]}^"])
    if not parent.ok:
        return None
    return changed_in_commit(repo, parent.stdout.strip(), ref.local_sha)


@dataclass(frozen=True)
class Entry:
    """One file of a commit (``git ls-tree -r``)."""

    mode: str
    kind: str  # blob, commit (a submodule)
    oid: str
    path: str


def tree_entries(repo: Path, sha: str) -> list[Entry]:
    """Every file of commit ``sha`` (paths from the top level)."""
    entries = []
    argv = ["ls-tree", "-r", "-z", "--full-tree", sha]
    for record in lines(repo, argv, "--rev", sep="\0"):
        meta, _, path = record.partition("\t")
        mode, kind, oid = meta.split()
        entries.append(Entry(mode, kind, oid, path))
    return entries


def read_blobs(repo: Path, oids: Sequence[str]) -> dict[str, bytes]:
    """The contents of blobs ``oids``, in one ``git cat-file --batch``."""
    if not oids:
        return {}
    child = runner.spawn(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        stdin=PIPE,
        stdout=PIPE,
        stderr=PIPE,
    )
    out, err = child.communicate("".join(f"{oid}\n" for oid in oids).encode("ascii"))
    if child.returncode:
        raise OpsError(f"--rev: git cat-file --batch failed in {repo}: {err.decode().strip()}")
    blobs: dict[str, bytes] = {}
    pos = 0
    for oid in oids:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if len(header) != 3:
            raise OpsError(f"--rev: git cat-file --batch: {oid} is missing from {repo}")
        size = int(header[2])
        blobs[oid] = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return blobs


def display_rev(sha: str) -> str:
    return sha[:12] if len(sha) == 40 and all(ch in "0123456789abcdef" for ch in sha) else sha


def top_level(path: Path, what: str) -> Path:
    """``git rev-parse --show-toplevel`` of ``path`` (the hook's repository)."""
    found = git(path, ["rev-parse", "--show-toplevel"])
    if not found.ok or not found.stdout.strip():
        raise OpsError(f"{what}: {path} is not inside a git work tree")
    return Path(found.stdout.strip())


def git_dir(top: Path) -> Path:
    """The git directory of the work tree at ``top`` (``.git``, or where a ``.git`` file of a
    linked worktree points)."""
    marker = top / ".git"
    if marker.is_file():
        text = marker.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            return Path(os.path.normpath(top / text[len("gitdir:") :].strip()))
    return marker
