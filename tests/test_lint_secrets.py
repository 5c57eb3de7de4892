"""detect-secrets as lint's seventh tool: committed credentials are refused, the output shows
only a secret's first and last characters, ``.secrets.baseline`` lets known ones through."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks.lint import findings, tools
from tests.fixtures_lint import (
    AWS_KEY,
    AWS_LINE,
    TOKEN,
    TOKEN_LINE,
    LintProject,
    summary_rows,
)

sys.path.insert(0, str(tools.SECRETS_SCRIPT.parent))
import scan_secrets  # noqa: E402


@pytest.mark.parametrize(
    "value,shown",
    [
        (AWS_KEY, "AK…LQ (20 characters)"),
        (TOKEN, "q8…sY (31 characters)"),
        ("hunter2", "… (7 characters)"),  # too short to show any of it
    ],
    ids=["aws", "token", "short"],
)
def test_mask_shows_first_and_last_characters_only(value: str, shown: str) -> None:
    assert scan_secrets.mask(value) == shown


def test_findings_are_split_per_file() -> None:
    out = "app/a.py:3:1: AWS Access Key: AK…LQ (20 characters)\n"
    parsed = findings.parse("detect-secrets", ["app/a.py", "app/b.py"], "/x", out, "")
    assert parsed is not None
    assert parsed.files["app/a.py"].lines == (
        f"{findings.PATH}:3:1: AWS Access Key: AK…LQ (20 characters)",
    )
    assert parsed.files["app/b.py"].status == "ok"


def commit(project: LintProject, rel: str, text: str) -> None:
    project.write(rel, text)
    project.git("add", "-A")
    project.git("commit", "-q", "-m", f"add {rel}")


def push(project: LintProject) -> subprocess.CompletedProcess[str]:
    result = project.git("push", check=False)
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert AWS_KEY not in out and TOKEN not in out, "a secret was printed"
    return result


@pytest.fixture
def hooked(lint_repo: LintProject) -> LintProject:
    assert lint_repo.inv("lint.install-hook").returncode == 0
    return lint_repo


@pytest.mark.slow
def test_a_committed_aws_key_and_token_are_refused_and_masked(hooked: LintProject) -> None:
    commit(hooked, "app/settings.py", AWS_LINE)
    commit(hooked, "web/src/api.js", TOKEN_LINE)
    result = push(hooked)
    assert result.returncode != 0
    assert "app/settings.py:1:1: AWS Access Key: AK…LQ (20 characters)" in result.stdout
    assert "web/src/api.js:1:1: Base64 High Entropy String: q8…sY (31 characters)" in result.stdout
    assert summary_rows(result.stdout)["detect-secrets"] == (2, "findings")
    assert "rotate it" in result.stdout  # the summary's hint


@pytest.mark.slow
def test_a_baseline_entry_lets_a_known_secret_through(hooked: LintProject) -> None:
    hooked.write("app/settings.py", AWS_LINE)
    scan = subprocess.run(
        ["detect-secrets", "scan", "app/settings.py"],
        cwd=hooked.root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    hooked.write(".secrets.baseline", scan.stdout)
    hooked.git("add", "-A")
    hooked.git("commit", "-q", "-m", "a known test credential, audited")
    result = push(hooked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(result.stdout)["detect-secrets"] == (1, "ok")
    commit(hooked, "app/settings.py", "\n" + AWS_LINE + TOKEN_LINE.replace("export const", "X ="))
    result = push(hooked)  # the known key moved a line down: still known; the token is new
    assert result.returncode != 0
    assert "Base64 High Entropy String: q8…sY" in result.stdout
    assert "AWS Access Key" not in result.stdout


@pytest.mark.slow
def test_skip_and_a_broken_baseline(lint_project: LintProject) -> None:
    lint_project.write("app/settings.py", AWS_LINE)
    result = lint_project.inv("lint.python", "--skip", "detect-secrets")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(result.stdout)["detect-secrets"] == (-1, "skipped (--skip)")
    lint_project.write(".secrets.baseline", "{ not json")
    result = lint_project.inv("lint.python")
    assert result.returncode == 2
    assert ".secrets.baseline: error: not a detect-secrets baseline" in result.stdout
    assert AWS_KEY not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_secret_added_and_removed_within_one_push_is_refused(hooked: LintProject) -> None:
    """The tip no longer holds the key, but the push brings the commit that does."""
    commit(hooked, "app/settings.py", AWS_LINE)
    leaked = hooked.git("rev-parse", "HEAD").stdout.strip()
    commit(hooked, "app/settings.py", 'AWS_KEY = ""\n')
    commit(hooked, "app/other.py", "VERSION = 1\n")  # a commit changing nothing secret
    result = push(hooked)
    assert result.returncode != 0, result.stdout
    rows = summary_rows(result.stdout)
    assert rows["detect-secrets"] == (2, "ok")  # the tip: both files, clean
    assert rows[f"detect-secrets [main at {leaked[:12]}]"] == (1, "findings")
    assert len([name for name in rows if name.startswith("detect-secrets")]) == 2
    assert "app/settings.py:1:1: AWS Access Key: AK…LQ (20 characters)" in result.stdout
