"""README's lint section, run as written: each command line from the `inv` command line, in a
real git repository (the lint fixture project) with a bare remote as its upstream."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import readme, run_inv
from tests.fixtures_lint import (
    AWS_KEY,
    AWS_LINE,
    BAD,
    CLEAN_PY,
    LintProject,
    summary_rows,
    summary_table,
)

pytestmark = pytest.mark.slow


def run(project: LintProject, command: str) -> subprocess.CompletedProcess[str]:
    result = run_inv(command, cwd=project.root)
    assert len(result.stderr.splitlines()) <= 1, result.stderr
    return result


def commit(project: LintProject, rel: str, text: str) -> None:
    project.write(rel, text)
    project.git("add", "-A")
    project.git("commit", "-q", "-m", f"add {rel}")


@readme("inv lint")
def test_inv_lint_is_clean_then_finds(lint_repo: LintProject) -> None:
    result = run(lint_repo, "inv lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(summary_rows(result.stdout)) == {
        "bandit", "flake8", "black", "isort", "eslint", "prettier", "detect-secrets"
    }  # fmt: skip
    lint_repo.write(*BAD["flake8"])
    result = run(lint_repo, "inv lint")
    assert result.returncode == 1 and "app/bad.py:1:1: F401" in result.stdout


@readme("inv lint --fix")
def test_inv_lint_fix(lint_repo: LintProject) -> None:
    bad = lint_repo.write("app/bad.py", "import sys\nimport os\nx = 'a'\nprint(os, sys, x)\n")
    lint_repo.write("web/src/bad.js", "export const a = {b:1};\n")
    result = run(lint_repo, "inv lint --fix")
    assert result.returncode == 0, result.stdout + result.stderr
    assert bad.read_text() == 'import os\nimport sys\n\nx = "a"\nprint(os, sys, x)\n'
    assert "── isort --fix" in result.stdout and "── prettier --fix" in result.stdout


@readme("inv lint --changed")
def test_inv_lint_changed(lint_repo: LintProject) -> None:
    result = run(lint_repo, "inv lint --changed")
    assert result.returncode == 0
    assert "lint: nothing to lint (changed files: no python/js files)" in result.stdout
    lint_repo.write("app/new.py", "import os\n")  # untracked
    result = run(lint_repo, "inv lint --changed")
    assert result.returncode == 1
    assert summary_rows(result.stdout)["flake8"] == (1, "findings")


@readme("inv lint --changed --base origin/main")
def test_inv_lint_changed_base(lint_repo: LintProject) -> None:
    lint_repo.git("checkout", "-q", "-b", "feature")
    commit(lint_repo, *BAD["black"])
    result = run(lint_repo, "inv lint --changed --base origin/main")
    assert result.returncode == 1
    assert summary_rows(result.stdout)["black"] == (1, "findings")


@readme("inv lint --rev main", "inv lint --changed --rev main")
def test_inv_lint_rev(lint_repo: LintProject) -> None:
    commit(lint_repo, *BAD["isort"])
    lint_repo.write("app/bad.py", CLEAN_PY)  # fixed only in the working tree
    result = run(lint_repo, "inv lint --rev main")
    assert result.returncode == 1
    assert "lint: files of commit main" in result.stdout
    assert summary_rows(result.stdout)["isort"] == (3, "findings")
    result = run(lint_repo, "inv lint --changed --rev main")
    assert result.returncode == 1
    assert summary_rows(result.stdout) == {
        "bandit": (1, "ok"), "flake8": (1, "ok"), "black": (1, "ok"), "isort": (1, "findings"),
        "detect-secrets": (1, "ok"),
    }  # fmt: skip


@readme("inv lint --skip bandit,eslint", "SKIP=bandit inv lint.python")
def test_skipping_tools(lint_repo: LintProject) -> None:
    lint_repo.write(*BAD["bandit"])
    result = run(lint_repo, "inv lint --skip bandit,eslint")
    assert result.returncode == 0, result.stdout
    rows = summary_table(result.stdout)
    assert rows["bandit"]["result"] == rows["eslint"]["result"] == "skipped (--skip)"
    result = run(lint_repo, "SKIP=bandit inv lint.python")
    assert result.returncode == 0
    assert summary_table(result.stdout)["bandit"]["result"] == "skipped (SKIP)"


@readme("inv lint --engine ruff --fix")
def test_inv_lint_engine_ruff_fix(lint_repo: LintProject) -> None:
    bad = lint_repo.write("app/bad.py", "import sys\nimport os\nx = 'a'\nprint(os, sys, x)\n")
    result = run(lint_repo, "inv lint --engine ruff --fix")
    assert result.returncode == 0, result.stdout + result.stderr
    assert bad.read_text() == 'import os\nimport sys\n\nx = "a"\nprint(os, sys, x)\n'
    assert {"ruff-check", "ruff-format", "bandit"} <= set(summary_rows(result.stdout))


@readme("inv lint.python --changed")
def test_inv_lint_python_changed(lint_repo: LintProject) -> None:
    lint_repo.write("app/ok.py", "import sys\n" + CLEAN_PY)
    lint_repo.write("web/src/new.js", "export const a = {b:1};\n")
    result = run(lint_repo, "inv lint.python --changed")
    assert result.returncode == 1
    assert set(summary_rows(result.stdout)) == {
        "bandit", "flake8", "black", "isort", "detect-secrets"
    }  # fmt: skip


@readme("inv lint.js --jobs 2")
def test_inv_lint_js_jobs(lint_repo: LintProject) -> None:
    lint_repo.write("web/src/money.ts", "export const cents = (n: number): number => n * 100;\n")
    result = run(lint_repo, "inv lint.js --jobs 2")
    assert result.returncode == 0, result.stdout
    assert summary_rows(result.stdout) == {
        "eslint": (3, "ok"), "prettier": (3, "ok"), "detect-secrets": (3, "ok")
    }  # fmt: skip


@readme("inv lint.install-hook")
def test_inv_lint_install_hook_then_push(lint_repo: LintProject) -> None:
    result = run(lint_repo, "inv lint.install-hook")
    assert result.returncode == 0 and "lint: installed" in result.stdout
    commit(lint_repo, *BAD["flake8"])
    lint_repo.write("app/bad.py", CLEAN_PY)  # fixed only on disk: still refused
    push = lint_repo.git("push", "origin", "main", check=False)
    assert push.returncode != 0 and "app/bad.py:1:1: F401" in push.stdout
    commit(lint_repo, "app/bad.py", CLEAN_PY)
    push = lint_repo.git("push", "origin", "main", check=False)
    assert push.returncode == 0, push.stdout + push.stderr


@readme("SKIP=detect-secrets inv lint.python")
def test_a_secrets_baseline_lets_a_known_secret_through(lint_repo: LintProject) -> None:
    """README's two secrets lines (the second is not an `inv` command: run here as written)."""
    commit(lint_repo, "app/settings.py", AWS_LINE)
    result = run(lint_repo, "inv lint.python")
    assert result.returncode == 1
    assert "app/settings.py:1:1: AWS Access Key: AK…LQ (20 characters)" in result.stdout
    assert AWS_KEY not in result.stdout
    result = run(lint_repo, "SKIP=detect-secrets inv lint.python")
    assert result.returncode == 0
    assert summary_table(result.stdout)["detect-secrets"]["result"] == "skipped (SKIP)"
    assert run(lint_repo, "detect-secrets scan app/settings.py > .secrets.baseline").returncode == 0
    result = run(lint_repo, "inv lint.python")
    assert result.returncode == 0, result.stdout
    assert summary_rows(result.stdout)["detect-secrets"] == (3, "ok")


@readme(
    "inv lint --format sarif --output lint.sarif", "inv lint.python --format github",
    "inv lint --format json",
)  # fmt: skip
def test_ci_formats(lint_repo: LintProject) -> None:
    lint_repo.write(*BAD["flake8"])
    result = run(lint_repo, "inv lint --format sarif --output lint.sarif")
    assert result.returncode == 1 and "── flake8: " in result.stdout
    sarif = json.loads((lint_repo.root / "lint.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert [r["ruleId"] for run in sarif["runs"] for r in run["results"]] == ["F401"]
    result = run(lint_repo, "inv lint.python --format github")
    assert result.returncode == 1
    assert (
        "::error file=app/bad.py,line=1,col=1,title=flake8 F401::'os' imported but unused"
        in result.stdout.splitlines()
    )
    result = run_inv("inv lint --format json", cwd=lint_repo.root)  # the text: on stderr
    assert result.returncode == 1 and "── flake8: " in result.stderr
    rows = json.loads(result.stdout)["findings"]
    assert [(r["tool"], r["rule"], r["path"], r["line"]) for r in rows] == [
        ("flake8", "F401", "app/bad.py", 1)
    ]


@readme("inv --dry lint")
def test_inv_dry_lint(lint_repo: LintProject) -> None:
    result = run(lint_repo, "inv --dry lint")
    assert result.returncode == 0
    assert f"(cd {lint_repo.root} && " in result.stdout
    assert "flake8 --format=default -- app/ok.py bin/tool" in result.stdout
    assert "seconds" not in result.stdout  # nothing ran
    assert not (lint_repo.root / ".flowlet").exists()
