"""A pushed commit's lint = a checkout's lint, on this very project: a commit that changes
every Python module but no package marker (``__init__.py``) is linted from a snapshot holding
only the changed files, and each tool must say there what it says on the full checkout (the
hook refused clean pushes: without the package markers isort classed ``tasks.core`` as
third-party)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, need
from fixtures_lint import GIT_ENV

pytestmark = pytest.mark.slow


def isort_findings(output: str) -> set[str]:
    return set(re.findall(r"ERROR: (\S+) Imports are incorrectly sorted", output))


def test_a_commit_of_modules_without_their_packages_lints_as_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("git")
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    modules = sorted(
        p for p in (clone / "tasks").rglob("*.py") if p.name != "__init__.py"
    )  # fmt: skip
    for path in modules:
        path.write_text(path.read_text() + "# touched\n")
    bad = clone / "tasks" / "core" / "jsonl.py"  # one real finding, the same in both
    bad.write_text("import sys\nimport os\n\nprint(os, sys)\n" + bad.read_text())
    subprocess.run(["git", "commit", "-q", "-am", "touch"], cwd=clone, check=True)
    pushed = subprocess.run(
        [sys.executable, "-m", "invoke", "lint.python", "--changed", "--rev", "HEAD"],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    checkout = subprocess.run(
        [sys.executable, "-m", "isort", "--check-only", *map(str, modules)],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    theirs = {str(Path(p).relative_to(clone)) for p in isort_findings(checkout.stderr)}
    assert theirs == {"tasks/core/jsonl.py"}, checkout.stderr
    assert isort_findings(pushed.stdout) == theirs, pushed.stdout
    assert pushed.returncode == 1
