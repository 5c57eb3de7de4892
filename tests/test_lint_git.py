"""`inv lint --changed` and the pre-push hook, in a real git repo with a local bare remote."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from invoke import Collection

from tasks import lint
from tasks.lint import hook
from tests.conftest import ROOT_NS, run_task
from tests.fixtures_lint import BAD, CLEAN_PY, LintProject, summary_rows

pytestmark = pytest.mark.slow
NS = ROOT_NS


def inv(project: LintProject, *argv: str) -> int:
    return run_task(NS, list(argv), config_file=project.root / "invoke.yaml", cwd=project.root)


def test_changed_lints_only_changed_and_untracked_files(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_repo.write("app/ok.py", "import sys\n" + CLEAN_PY)  # modified: unused, unsorted
    lint_repo.write("web/src/new.js", "export const a = {b:1};\n")  # untracked, unformatted
    assert inv(lint_repo, "lint", "--changed") == 1
    rows = summary_rows(capsys.readouterr().out)
    assert rows == {
        "bandit": (1, "ok"),
        "flake8": (1, "findings"),
        "eslint": (1, "ok"),
        "black": (1, "ok"),
        "prettier": (1, "findings"),
        "isort": (1, "findings"),
    }


def test_changed_with_nothing_changed_exits_0_at_once(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_repo.write("README.md", "not under a lint path\n")
    start = time.perf_counter()
    assert inv(lint_repo, "lint", "--changed") == 0
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "lint: nothing to lint (changed files: no python/js files)" in out
    assert "── " not in out  # no tool ran
    assert elapsed < 1.0, f"nothing to lint took {elapsed:.2f}s"


def test_changed_against_base_ref(lint_repo: LintProject, capsys: pytest.CaptureFixture) -> None:
    lint_repo.git("checkout", "-q", "-b", "feature")
    lint_repo.write(*BAD["black"])
    lint_repo.git("add", "-A")
    lint_repo.git("commit", "-q", "-m", "feature work")
    assert inv(lint_repo, "lint.python", "--changed", "--base", "main") == 1
    rows = summary_rows(capsys.readouterr().out)
    assert rows["black"] == (1, "findings")
    assert {name for name, (_, result) in rows.items() if result != "ok"} == {"black"}


def test_changed_without_upstream_names_the_flag(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_repo.git("checkout", "-q", "-b", "orphan-work")
    assert inv(lint_repo, "lint", "--changed") == 1
    assert "--changed: the current branch has no upstream; pass --base REF" in (
        capsys.readouterr().err
    )


def test_changed_with_a_bad_base_names_the_flag(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    assert inv(lint_repo, "lint", "--changed", "--base", "no-such-ref") == 1
    assert "--base no-such-ref: git merge-base no-such-ref HEAD failed" in capsys.readouterr().err


def commit(project: LintProject, rel: str, text: str, message: str) -> None:
    project.write(rel, text)
    project.git("add", "-A")
    project.git("commit", "-q", "-m", message)


def remote_head(project: LintProject, branch: str) -> str:
    result = project.git("ls-remote", "origin", f"refs/heads/{branch}")
    return result.stdout.split()[0] if result.stdout else ""


def test_hook_blocks_a_bad_push_and_lets_a_clean_one_through(lint_repo: LintProject) -> None:
    assert inv(lint_repo, "lint.install-hook") == 0
    before = remote_head(lint_repo, "main")
    commit(lint_repo, *BAD["flake8"], "bad")
    push = lint_repo.git("push", "-q", "origin", "main", check=False)
    assert push.returncode != 0
    assert "flake8" in push.stdout + push.stderr and "findings" in push.stdout + push.stderr
    assert remote_head(lint_repo, "main") == before
    commit(lint_repo, "app/bad.py", CLEAN_PY, "fixed")
    push = lint_repo.git("push", "-q", "origin", "main", check=False)
    assert push.returncode == 0, push.stdout + push.stderr
    assert remote_head(lint_repo, "main") == lint_repo.git("rev-parse", "HEAD").stdout.strip()


def test_hook_on_a_new_branch_lints_only_its_own_commits(lint_repo: LintProject) -> None:
    commit(lint_repo, *BAD["isort"], "old debt on main")
    lint_repo.git("push", "-q", "--no-verify", "origin", "main")
    assert inv(lint_repo, "lint.install-hook") == 0
    lint_repo.git("checkout", "-q", "-b", "clean-feature")
    commit(lint_repo, "app/feature.py", CLEAN_PY, "clean feature")
    push = lint_repo.git("push", "origin", "clean-feature", check=False)
    assert push.returncode == 0, push.stdout + push.stderr
    assert summary_rows(push.stdout)["isort"] == (1, "ok")  # app/feature.py only, not app/bad.py
    lint_repo.git("checkout", "-q", "-b", "bad-feature")
    commit(lint_repo, "app/worse.py", BAD["bandit"][1], "insecure feature")
    push = lint_repo.git("push", "origin", "bad-feature", check=False)
    assert push.returncode != 0
    assert summary_rows(push.stdout)["bandit"] == (1, "findings")
    assert remote_head(lint_repo, "bad-feature") == ""


def test_hook_skips_branch_deletion(lint_repo: LintProject) -> None:
    lint_repo.git("push", "-q", "origin", "main:doomed")
    assert inv(lint_repo, "lint.install-hook") == 0
    push = lint_repo.git("push", "origin", "--delete", "doomed", check=False)
    assert push.returncode == 0, push.stdout + push.stderr
    assert "nothing to lint" in push.stdout


def test_install_hook_refuses_a_foreign_hook_without_force(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    target = lint_repo.root / ".git" / "hooks" / "pre-push"
    target.write_text("#!/bin/sh\necho team hook\n")
    assert inv(lint_repo, "lint.install-hook") == 1
    assert "was not written by lint.install-hook; pass --force" in capsys.readouterr().err
    assert target.read_text() == "#!/bin/sh\necho team hook\n"
    assert inv(lint_repo, "lint.install-hook", "--force") == 0
    assert hook.HOOK_MARKER in target.read_text()
    assert (target.parent / "pre-push.replaced").read_text() == "#!/bin/sh\necho team hook\n"
    assert inv(lint_repo, "lint.install-hook") == 0  # our own hook: reinstall is fine


def test_hook_first_push_to_an_empty_remote_lints_everything(
    lint_project: LintProject, tmp_path: Path
) -> None:
    remote = tmp_path / "empty.git"
    lint_project.git("init", "-q", "--bare", "-b", "main", str(remote))
    lint_project.git("init", "-q", "-b", "main")
    lint_project.git("remote", "add", "origin", str(remote))
    assert inv(lint_project, "lint.install-hook") == 0
    lint_project.git("add", "-A")
    lint_project.git("commit", "-q", "-m", "first")
    push = lint_project.git("push", "origin", "main", check=False)
    assert push.returncode == 0, push.stdout + push.stderr
    rows = summary_rows(push.stdout)
    assert rows["flake8"] == (2, "ok") and rows["eslint"] == (2, "ok")  # the whole tree


def test_changed_handles_unusual_file_names(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_repo.write("app/naïve name.py", BAD["flake8"][1])  # git would quote it without -z
    assert inv(lint_repo, "lint.python", "--changed") == 1
    out = capsys.readouterr().out
    assert summary_rows(out)["flake8"] == (1, "findings")
    assert "app/naïve name.py:1:1: F401" in out


def test_changed_takes_pre_commits_from_ref(
    lint_repo: LintProject, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under pre-commit's pre-push stage (no upstream yet), PRE_COMMIT_FROM_REF is the base."""
    lint_repo.git("checkout", "-q", "-b", "via-pre-commit")
    commit(lint_repo, *BAD["isort"], "unsorted")
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", "main")
    assert inv(lint_repo, "lint.python", "--changed") == 1
    assert summary_rows(capsys.readouterr().out)["isort"] == (1, "findings")
