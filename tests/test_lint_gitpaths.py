"""Paths from a commit never leave their snapshot: a commit whose tree holds entries git
refuses to check out (``..``, ``.git`` and its HFS+/NTFS aliases) is refused, in one line
naming the path, by ``--rev``, ``--changed --rev`` and the pre-push hook, before anything
is written. The hostile trees are built with ``git mktree``, as an attacker would."""

from __future__ import annotations

import subprocess  # nosec B404
from pathlib import Path

import pytest

from tasks.lint import gitpath
from tasks.lint.files import under
from tests.fixtures_lint import CLEAN_PY, LintProject

EVIL_PY = "open('/dev/null', 'w').write('pwned')\n"


def mktree(project: LintProject, files: dict[tuple[str, ...], str]) -> str:
    """A tree holding ``files`` (path components, any names at all: ``..`` too; a lone
    surrogate stands for a byte that is not UTF-8)."""
    entries: list[str] = []
    subdirs: dict[str, dict[tuple[str, ...], str]] = {}
    for parts, text in files.items():
        if len(parts) == 1:
            blob = git_out(project, ["hash-object", "-w", "--stdin"], text)
            entries.append(f"100644 blob {blob}\t{parts[0]}")
        else:
            subdirs.setdefault(parts[0], {})[parts[1:]] = text
    for name, inner in subdirs.items():
        entries.append(f"040000 tree {mktree(project, inner)}\t{name}")
    return git_out(project, ["mktree", "-z"], "".join(f"{entry}\0" for entry in entries))


def git_out(project: LintProject, argv: list[str], stdin: str) -> str:
    return (
        subprocess.run(
            ["git", *argv],
            cwd=project.root,
            input=stdin.encode("utf-8", "surrogateescape"),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )


def evil_branch(project: LintProject, hostile: tuple[str, ...], name: str = "evil") -> None:
    """Branch ``name``: main's ``app/ok.py`` plus a file at the ``hostile`` components."""
    tree = mktree(project, {("app", "ok.py"): CLEAN_PY, hostile: EVIL_PY})
    sha = project.git("commit-tree", tree, "-p", "main", "-m", "evil").stdout.strip()
    project.git("branch", name, sha)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$TMPDIR`` for ``inv``: the run's snapshot is ``TMPDIR/flowlet-ops-UID/RUN/snapshot-1``,
    so ``app/../../../../x`` of a commit would be ``TMPDIR/x``."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


DOTDOT = ("app", "..", "..", "..", "..", "x", "pwned.py")


def assert_refused(result: subprocess.CompletedProcess[str], path: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lint: commit "), lines[0]
    assert f"holds a path git refuses to check out: {path!r}" in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ("lint.python", "--changed", "--rev", "evil"),
        ("lint", "--rev", "evil"),
        ("lint.js", "--changed", "--rev", "evil"),
    ],
    ids=["python-changed-rev", "all-rev", "js-changed-rev"],
)
def test_rev_refuses_a_dotdot_entry_and_writes_nothing(
    lint_repo: LintProject, private_tmp: Path, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    evil_branch(lint_repo, DOTDOT)
    ls = lint_repo.git("ls-tree", "-r", "--name-only", "evil").stdout.split()
    assert "app/../../../../x/pwned.py" in ls  # git stores it as is
    result = lint_repo.inv(*argv)
    assert_refused(result, "app/../../../../x/pwned.py")
    assert not (private_tmp / "x").exists()  # where the entry points
    assert not list(tmp_path.rglob("pwned.py"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "hostile",
    [
        (".git", "hooks", "post-checkout"),
        ("app", ".GIT", "config.py"),
        ("app", ".g\u200cit", "config.py"),
        ("app", "git~1", "config.py"),
        ("app", ".git.", "config.py"),
        ("app", ".git ", "config.py"),
        ("web", "src", ".", "x.js"),
        ("app", "\udcff.py"),
    ],
    ids=["dotgit", "dotGIT", "hfs-zwnj", "ntfs-8.3", "ntfs-dot", "ntfs-space", "dot", "not-utf8"],
)
def test_rev_refuses_dotgit_aliases_dot_and_empty_names(
    lint_repo: LintProject, private_tmp: Path, hostile: tuple[str, ...]
) -> None:
    evil_branch(lint_repo, hostile)
    result = lint_repo.inv("lint", "--rev", "evil")
    assert_refused(result, "/".join(hostile))
    assert not list(private_tmp.rglob("*.py")) and not list(private_tmp.rglob("*.js"))


@pytest.mark.slow
def test_an_empty_name_is_refused_by_git_itself_in_one_line(
    lint_repo: LintProject, private_tmp: Path
) -> None:
    evil_branch(lint_repo, ("app", "", "x.py"))
    result = lint_repo.inv("lint", "--rev", "evil")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("fatal: empty filename in tree entry")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(private_tmp.rglob("*.py"))


@pytest.mark.slow
def test_hook_refuses_to_push_a_dotdot_commit(lint_repo: LintProject, private_tmp: Path) -> None:
    assert lint_repo.inv("lint.install-hook").returncode == 0
    evil_branch(lint_repo, DOTDOT)
    result = lint_repo.git("push", "origin", "evil", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    refusal = [line for line in result.stderr.splitlines() if line.startswith("lint: ")]
    assert len(refusal) == 1 and "'app/../../../../x/pwned.py'" in refusal[0], result.stderr
    assert not (private_tmp / "x").exists()
    assert not lint_repo.git("ls-remote", "origin", "refs/heads/evil").stdout


@pytest.mark.parametrize(
    "path,why",
    [
        ("a/../b.py", "a '..' component"),
        ("./b.py", "a '.' component"),
        ("a//b.py", "an empty component"),
        ("/etc/passwd", "an absolute path"),
        ("", "an empty path"),
        ("a/.Git/x", "a '.git' component"),
        (".g\u200dit/x", "an HFS+/NTFS alias of '.git'"),
        (".g\ufeffit", "an HFS+/NTFS alias of '.git'"),
        ("GIT~1/x", "an HFS+/NTFS alias of '.git'"),
        (".git. . /x", "an HFS+/NTFS alias of '.git'"),
        (".git::$INDEX_ALLOCATION/x", "an HFS+/NTFS alias of '.git'"),
        ("a\\.git\\hooks", "an HFS+/NTFS alias of '.git'"),
        (".gitignore", ""),
        (".github/workflows/ci.yml", ""),
        ("git~10/x.py", ""),
        ("src/..py", ""),
        ("...", ""),
    ],
)
def test_git_path_rules(path: str, why: str) -> None:
    assert gitpath.problem(path) == why


def test_duplicate_and_file_and_directory_entries_are_refused() -> None:
    assert gitpath.first_unsafe(["a.py", "b/c.py"]) is None
    assert gitpath.first_unsafe(["a.py", "a.py"]) == (
        "a.py",
        "listed twice (duplicate tree entries)",
    )
    assert gitpath.first_unsafe(["b/c.py", "b"]) == (
        "b", "both a file and a directory (duplicate tree entries)",
    )  # fmt: skip


def test_under_normalises_both_sides() -> None:
    assert not under(Path("/r/app/../../../x/pwned.py"), [Path("/r/app")])
    assert not under(Path("/r/app/../web/x.js"), [Path("/r/app")])
    assert under(Path("/r/web/../app/x.py"), [Path("/r/app/")])
    assert under(Path("/r/app"), [Path("/r/./app")])
    assert not under(Path("/r/application/x.py"), [Path("/r/app")])
