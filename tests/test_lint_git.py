"""`inv lint --changed`, `--rev` and the pre-push hook, in real git repositories with a local
bare remote. The hook lints the pushed commits' content, never the working tree."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tasks.lint import hook
from tests.conftest import ROOT_NS, run_task
from tests.fixtures_lint import BAD, CLEAN_JS, CLEAN_PY, LintProject, summary_rows

pytestmark = pytest.mark.slow
NEW_TS = "export const loose: any = 1;\n"


def inv(project: LintProject, *argv: str) -> int:
    return run_task(ROOT_NS, list(argv), config_file=project.root / "invoke.yaml", cwd=project.root)


def commit(project: LintProject, rel: str, text: str, message: str) -> None:
    project.write(rel, text)
    project.git("add", "-A")
    project.git("commit", "-q", "-m", message)


def remote_head(project: LintProject, branch: str) -> str:
    result = project.git("ls-remote", "origin", f"refs/heads/{branch}")
    return result.stdout.split()[0] if result.stdout else ""


def push(project: LintProject, *args: str) -> subprocess.CompletedProcess[str]:
    result = project.git("push", *args, check=False)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert "flowlet-ops-" not in result.stdout, "a snapshot path leaked into the report"
    return result


@pytest.fixture
def hooked(lint_repo: LintProject) -> LintProject:
    assert inv(lint_repo, "lint.install-hook") == 0
    return lint_repo


def test_changed_lints_only_changed_and_untracked_files(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_repo.write("app/ok.py", "import sys\n" + CLEAN_PY)  # modified: unused, unsorted
    lint_repo.write("web/src/new.js", "export const a = {b:1};\n")  # untracked, unformatted
    assert inv(lint_repo, "lint", "--changed") == 1
    assert summary_rows(capsys.readouterr().out) == {
        "bandit": (1, "ok"),
        "flake8": (1, "findings"),
        "eslint": (1, "ok"),
        "black": (1, "ok"),
        "prettier": (1, "findings"),
        "isort": (1, "findings"),
        "detect-secrets": (2, "ok"),
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
    commit(lint_repo, *BAD["black"], "feature work")
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
    assert "--base: 'no-such-ref' is not a commit in" in capsys.readouterr().err


def test_rev_lints_the_commit_not_the_working_tree(
    lint_repo: LintProject, capsys: pytest.CaptureFixture
) -> None:
    commit(lint_repo, *BAD["flake8"], "bad")
    lint_repo.write("app/bad.py", CLEAN_PY)  # fixed only in the working tree
    lint_repo.write("app/ok.py", "import sys\n")  # a new problem, not committed
    assert inv(lint_repo, "lint") == 1  # the working tree: ok.py
    assert "app/ok.py:1:1: F401" in capsys.readouterr().out
    assert inv(lint_repo, "lint.python", "--rev", "HEAD") == 1  # the commit: bad.py
    out = capsys.readouterr().out
    assert "lint: files of commit HEAD" in out
    assert "app/bad.py:1:1: F401" in out and "app/ok.py:1" not in out
    assert summary_rows(out)["flake8"] == (3, "findings")
    assert inv(lint_repo, "lint", "--changed", "--rev", "HEAD") == 1  # what HEAD changes
    assert summary_rows(capsys.readouterr().out)["flake8"] == (1, "findings")
    assert inv(lint_repo, "lint", "--changed", "--rev", "HEAD~1") == 0  # the root commit: clean


def test_hook_blocks_a_bad_commit_fixed_only_in_the_working_tree(hooked: LintProject) -> None:
    before = remote_head(hooked, "main")
    commit(hooked, *BAD["flake8"], "bad")
    hooked.write("app/bad.py", CLEAN_PY)  # fixed on disk, never committed
    result = push(hooked, "origin", "main")
    assert result.returncode != 0
    assert "app/bad.py:1:1: F401 'os' imported but unused" in result.stdout
    assert summary_rows(result.stdout)["flake8"] == (1, "findings")
    assert remote_head(hooked, "main") == before
    commit(hooked, "app/bad.py", CLEAN_PY, "fixed")
    result = push(hooked, "origin", "main")
    assert result.returncode == 0, result.stdout + result.stderr
    assert remote_head(hooked, "main") == hooked.git("rev-parse", "HEAD").stdout.strip()


def test_hook_passes_a_clean_commit_with_a_dirty_working_tree(hooked: LintProject) -> None:
    commit(hooked, "app/feature.py", CLEAN_PY, "clean")
    hooked.write("app/feature.py", "<<<<<<< HEAD\nimport os\n=======\n>>>>>>> other\n")
    hooked.write("app/ok.py", BAD["bandit"][1])  # an uncommitted problem elsewhere
    result = push(hooked, "origin", "main")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(result.stdout)["flake8"] == (1, "ok")


def test_hook_lints_a_branch_that_is_not_checked_out(hooked: LintProject) -> None:
    hooked.git("checkout", "-q", "-b", "feat")
    commit(hooked, "web/src/loose.ts", NEW_TS, "typescript with an any")
    hooked.git("checkout", "-q", "main")  # the bad file is not in the working tree
    assert not (hooked.root / "web" / "src" / "loose.ts").exists()
    result = push(hooked, "origin", "feat")
    assert result.returncode != 0
    assert "web/src/loose.ts:1:21: error Unexpected any." in result.stdout
    assert "lint: files the push to origin changes: feat at" in result.stdout
    assert remote_head(hooked, "feat") == ""


def test_hook_in_the_middle_of_a_rebase(hooked: LintProject) -> None:
    commit(hooked, "app/one.py", CLEAN_PY, "one")
    commit(hooked, "app/two.py", CLEAN_PY, "two")
    hooked.git("branch", "clean-copy")
    env = {**os.environ, "GIT_SEQUENCE_EDITOR": "sed -i 1s/^pick/edit/"}
    subprocess.run(["git", "rebase", "-q", "-i", "HEAD~2"], cwd=hooked.root, env=env, check=True)
    assert (hooked.root / ".git" / "rebase-merge").is_dir()  # stopped, mid-rebase
    hooked.write("app/one.py", "import os\n")  # work in progress: bad, uncommitted
    result = push(hooked, "origin", "clean-copy")
    assert result.returncode == 0, result.stdout + result.stderr
    hooked.git("commit", "-q", "-a", "--amend", "-m", "one, now bad")
    result = push(hooked, "origin", "HEAD:refs/heads/wip")
    assert result.returncode != 0
    assert "app/one.py:1:1: F401" in result.stdout


def test_hook_in_the_middle_of_a_merge(hooked: LintProject) -> None:
    hooked.git("checkout", "-q", "-b", "side")
    commit(hooked, "app/ok.py", CLEAN_PY + "\n\nSIDE = 1\n", "side")
    hooked.git("checkout", "-q", "main")
    commit(hooked, "app/ok.py", CLEAN_PY + "\n\nMAIN = 1\n", "main")
    merge = hooked.git("merge", "-q", "side", check=False)
    assert merge.returncode != 0 and "<<<<<<<" in (hooked.root / "app" / "ok.py").read_text()
    result = push(hooked, "origin", "main")  # the committed main, not the conflict on disk
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(result.stdout)["black"] == (1, "ok")


def test_hook_lints_a_renamed_file_under_its_new_name(hooked: LintProject) -> None:
    commit(hooked, "notes/draft.py", "import os\n", "a draft outside the lint paths")
    push(hooked, "--no-verify", "origin", "main")
    hooked.git("mv", "app/ok.py", "app/renamed.py")
    hooked.git("commit", "-q", "-m", "rename a clean file")
    result = push(hooked, "origin", "main")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(result.stdout)["flake8"] == (1, "ok")
    hooked.git("mv", "notes/draft.py", "app/draft.py")
    hooked.git("commit", "-q", "-m", "move the draft in")
    result = push(hooked, "origin", "main")
    assert result.returncode != 0
    assert "app/draft.py:1:1: F401" in result.stdout


def test_hook_lints_nothing_for_a_deletion(hooked: LintProject) -> None:
    hooked.git("rm", "-q", "app/ok.py")
    hooked.git("commit", "-q", "-m", "delete")
    hooked.write("app/ok.py", "import os\n")  # the same name, bad, untracked
    result = push(hooked, "origin", "main")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to lint" in result.stdout


def test_hook_names_files_with_spaces_and_unicode(hooked: LintProject) -> None:
    commit(hooked, "app/naïve name.py", BAD["flake8"][1], "unicode")
    commit(hooked, "web/src/a file ü.js", "export const a = {b:1};\n", "spaces")
    result = push(hooked, "origin", "main")
    assert result.returncode != 0
    assert "app/naïve name.py:1:1: F401" in result.stdout
    assert "[warn] web/src/a file ü.js" in result.stdout


def test_hook_on_a_new_branch_lints_only_its_own_commits(lint_repo: LintProject) -> None:
    commit(lint_repo, *BAD["isort"], "old debt on main")
    push(lint_repo, "-q", "--no-verify", "origin", "main")
    assert inv(lint_repo, "lint.install-hook") == 0
    lint_repo.git("checkout", "-q", "-b", "clean-feature")
    commit(lint_repo, "app/feature.py", CLEAN_PY, "clean feature")
    result = push(lint_repo, "origin", "clean-feature")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(result.stdout)["isort"] == (1, "ok")  # app/feature.py only
    lint_repo.git("checkout", "-q", "-b", "bad-feature")
    commit(lint_repo, "app/worse.py", BAD["bandit"][1], "insecure feature")
    result = push(lint_repo, "origin", "bad-feature")
    assert result.returncode != 0
    assert summary_rows(result.stdout)["bandit"] == (1, "findings")
    assert remote_head(lint_repo, "bad-feature") == ""


def test_hook_skips_branch_deletion(lint_repo: LintProject) -> None:
    lint_repo.git("push", "-q", "origin", "main:doomed")
    assert inv(lint_repo, "lint.install-hook") == 0
    result = push(lint_repo, "origin", "--delete", "doomed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to lint" in result.stdout


def test_hook_honours_skip(hooked: LintProject) -> None:
    commit(hooked, *BAD["bandit"], "insecure")
    env = {**os.environ, "SKIP": "bandit"}
    result = subprocess.run(
        ["git", "push", "origin", "main"], cwd=hooked.root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(result.stdout)["bandit"] == (-1, "skipped (SKIP)")


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
    result = push(lint_project, "origin", "main")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = summary_rows(result.stdout)
    assert rows["flake8"] == (2, "ok") and rows["eslint"] == (2, "ok")  # the whole tree


def test_changed_takes_pre_commits_from_ref(
    lint_repo: LintProject, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under pre-commit's pre-push stage (no upstream yet), PRE_COMMIT_FROM_REF is the base."""
    lint_repo.git("checkout", "-q", "-b", "via-pre-commit")
    commit(lint_repo, *BAD["isort"], "unsorted")
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", "main")
    assert inv(lint_repo, "lint.python", "--changed") == 1
    assert summary_rows(capsys.readouterr().out)["isort"] == (1, "findings")


def test_changed_lints_the_pushed_commit_under_pre_commit(
    lint_repo: LintProject, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pre-commit's pre-push stage names the pushed commit (PRE_COMMIT_TO_REF): its content is
    linted, not the working tree."""
    base = lint_repo.git("rev-parse", "HEAD").stdout.strip()
    commit(lint_repo, *BAD["isort"], "unsorted")
    lint_repo.write("app/bad.py", CLEAN_PY)  # fixed only on disk
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", base)
    monkeypatch.setenv("PRE_COMMIT_TO_REF", lint_repo.git("rev-parse", "HEAD").stdout.strip())
    assert inv(lint_repo, "lint.python", "--changed") == 1
    assert summary_rows(capsys.readouterr().out)["isort"] == (1, "findings")


def test_the_first_push_from_a_fresh_clone_installs_the_tools_before_the_snapshot(
    lint_repo: LintProject, tmp_path: Path
) -> None:
    """A fresh clone has no node_modules: the hook installs ESLint/Prettier (npm ci from the
    lockfile) before it builds the pushed commit's snapshot, so ESLint finds its plugins."""
    frontend = Path(__file__).resolve().parent.parent / "examples" / "frontend"
    for name in ("package.json", "package-lock.json"):
        lint_repo.write(f"web/{name}", (frontend / name).read_text())
    lint_repo.git("add", "-A")
    lint_repo.git("commit", "-q", "-m", "lockfile")
    lint_repo.git("push", "-q")
    clone = LintProject(tmp_path / "clone")
    subprocess.run(
        ["git", "clone", "-q", str(tmp_path / "remote.git"), str(clone.root)], check=True
    )
    assert not (clone.root / "web" / "node_modules").exists()
    assert inv(clone, "lint.install-hook") == 0
    commit(clone, "web/src/ok.js", CLEAN_JS.replace("hello", "hi"), "greet shorter")
    result = push(clone)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "ERR_MODULE_NOT_FOUND" not in out
    assert "npm ci" in out
    assert (clone.root / "web" / "node_modules" / ".bin" / "eslint").exists()
    assert remote_head(clone, "main") == clone.git("rev-parse", "HEAD").stdout.strip()
