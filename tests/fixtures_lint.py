"""Fixtures for the lint tests: a small project (Python + JS) in a temp dir, as a git repo
with a local bare remote as its upstream. Real tools: the project's venv and the example
frontend's node_modules (symlinked)."""

from __future__ import annotations

import os
import subprocess  # nosec B404
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "examples" / "frontend" / "node_modules"

TASKS_PY = f"""from invoke import Collection

__path__ = [{str(REPO / "tasks")!r}]

from tasks.core import configload  # noqa: E402

configload.install()

from tasks import lint  # noqa: E402
from tasks.core.runner import Local  # noqa: E402
from tasks.core.settings import register  # noqa: E402
from tasks.lint import settings  # noqa: E402

ns = Collection(lint.ns)
ns.configure({{"runners": {{"local": Local}}, **register({{"lint": settings.SCHEMA}})}})
"""
INVOKE_YAML = """lint:
  python_paths: [app, bin]
  js_paths: [web]
  frontend: web
"""
PYPROJECT = """[project]
name = "demo"
version = "0"

[project.optional-dependencies]
lint = ["flake8==7.5.0", "black==26.10.1", "isort==9.0.2", "bandit==1.9.4", "ruff==0.17.6"]

[tool.black]
line-length = 100

[tool.isort]
profile = "black"
line_length = 100

[tool.bandit]
exclude_dirs = ["tests"]

[tool.ruff]
line-length = 100
"""
FLAKE8 = "[flake8]\nmax-line-length = 100\nextend-ignore = E203,W503,E704\n"
ESLINT_CONFIG = (REPO / "examples" / "frontend" / "eslint.config.js").read_text()
CLEAN_PY = 'import os\n\n\ndef home() -> str:\n    return os.environ.get("HOME", "")\n'
CLEAN_JS = "export function greet(name) {\n  return `hello ${name}`;\n}\n"
SCRIPT_PY = '#!/usr/bin/env python3\nprint("bench")\n'

# Credentials detect-secrets finds (made up; the pragma keeps them out of this project's scan).
AWS_KEY = "AKIAIOSFODNN7EXAMPLQ"  # pragma: allowlist secret
TOKEN = "q8Zr3vT1xW9mK2pL7nB4cD6fG0hJ5sY"  # pragma: allowlist secret
AWS_LINE = f'AWS_KEY = "{AWS_KEY}"\n'
TOKEN_LINE = f'export const apiToken = "{TOKEN}";\n'

# One file per tool that only that tool objects to.
BAD = {
    "flake8": ("app/bad.py", "import os\n"),
    "black": ("app/bad.py", "x = 'a'\n"),
    "isort": ("app/bad.py", "import sys\nimport os\n\nprint(os, sys)\n"),
    "bandit": ("app/bad.py", 'print(eval("1 + 1"))\n'),
    "eslint": ("web/src/bad.js", "const unused = 1;\n"),
    "prettier": ("web/src/bad.js", "export const a = {b:1};\n"),
    "detect-secrets": ("app/bad.py", AWS_LINE),
}


@dataclass
class LintProject:
    root: Path

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=self.root, check=check, capture_output=True, text=True
        )

    def inv(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``inv`` as a subprocess, as a user (or a git hook) runs it."""
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.root,
            input=stdin,
            capture_output=True,
            text=True,
        )


GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture
def lint_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LintProject:
    """A clean project: app/ (Python), bin/ (a Python script without suffix), web/ (JS)."""
    need("git", "node")
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for name in ("PRE_COMMIT_FROM_REF", "PRE_COMMIT_TO_REF", "PRE_COMMIT", "SKIP"):
        monkeypatch.delenv(name, raising=False)
    project = LintProject(tmp_path / "proj")
    project.write("tasks.py", TASKS_PY)
    project.write("invoke.yaml", INVOKE_YAML)
    project.write("pyproject.toml", PYPROJECT)
    project.write(".flake8", FLAKE8)
    project.write(".gitignore", "node_modules\n__pycache__\n.ruff_cache\n.flowlet\n")
    project.write("app/ok.py", CLEAN_PY)
    project.write("bin/tool", SCRIPT_PY)
    project.write("web/eslint.config.js", ESLINT_CONFIG)
    project.write("web/.prettierrc", '{\n  "printWidth": 100\n}\n')
    project.write("web/src/ok.js", CLEAN_JS)
    os.symlink(NODE_MODULES, project.root / "web" / "node_modules")
    return project


@pytest.fixture
def lint_repo(lint_project: LintProject, tmp_path: Path) -> LintProject:
    """``lint_project`` committed on ``main`` and pushed to a local bare remote (upstream)."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    project = lint_project
    project.git("init", "-q", "-b", "main")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "clean start")
    project.git("remote", "add", "origin", str(remote))
    project.git("push", "-q", "-u", "origin", "main")
    return project


def summary_table(output: str) -> dict[str, dict[str, str]]:
    """``{tool: {"files", "cached", "seconds", "findings", "result", "fix"}}`` from the summary
    table at the end of ``inv lint`` output."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split()[:3] == ["tool", "files", "cached"]]
    assert starts, f"no summary table in:\n{output}"
    rows = {}
    for line in lines[starts[-1] + 1 :]:
        if not line.strip():
            break
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        names = ("files", "cached", "seconds", "findings", "result", "fix")
        rows[cells[0]] = dict(zip(names, cells[1:] + [""]))
    return rows


def summary_rows(output: str) -> dict[str, tuple[int, str]]:
    """``{tool: (files, result)}`` of the summary table (skipped tools: files -1)."""
    return {
        tool: (int(row["files"]) if row["files"] != "-" else -1, row["result"])
        for tool, row in summary_table(output).items()
    }


def blocks(output: str) -> str:
    """The tools' blocks: everything before the summary table (what must not differ between a
    warm and a cold run)."""
    return output[: output.rindex("\ntool ")]
