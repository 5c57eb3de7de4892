"""Auto-installs are authenticated: the Python tools come only from the hashed lock
(``tasks/lint/requirements-lint.txt``, ``pip install --require-hashes``), ESLint and Prettier
only from ``npm ci`` and a lockfile; without either, one line says what to run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tasks.lint import install, tools
from tests.conftest import fails_with
from tests.fixtures_lint import BAD, LintProject

REPO = Path(__file__).resolve().parent.parent
LOCK = install.LIBRARY_LOCK


def python_tool(name: str) -> tools.Tool:
    engine = "ruff" if name == "ruff" else "default"
    return next(
        t
        for t in tools.python_tools(engine, bandit_config=None, ruff_select="E")
        if t.package == name
    )


def plan_for(
    names: list[str], tmp_path: Path, pins: dict[str, str] | None = None
) -> install.PipInstall:
    env = install.python_env({"VIRTUAL_ENV": str(tmp_path / "venv")})
    chosen = [python_tool(n) for n in names]
    pins = install.find_pins(REPO) if pins is None else pins
    return install.plan_pip_install(chosen, pins, LOCK.read_text(), LOCK, env, tmp_path / "r.txt")


def locked_names(requirements: str) -> set[str]:
    return set(install.parse_lock(requirements))


def test_the_lock_pins_what_pyproject_pins_and_hashes_everything() -> None:
    lock = install.parse_lock(LOCK.read_text())
    pins = install.find_pins(REPO)
    assert {name: lock[name].version for name in pins} == pins
    for entry in lock.values():
        assert entry.text.count("--hash=sha256:") >= 1, entry.name
        assert entry.needed_by or entry.name in pins, f"{entry.name}: needed by nothing"
        for parent in entry.needed_by:
            assert parent in lock, f"{entry.name} via {parent}, which is not locked"


def test_argv_requires_hashes_and_wheels(tmp_path: Path) -> None:
    plan = plan_for(["isort"], tmp_path)
    assert plan.argv[plan.argv.index("install") + 1 :] == [
        "--require-hashes", "--only-binary", ":all:", "--no-input", "-r", str(tmp_path / "r.txt"),
    ]  # fmt: skip
    assert plan.path == tmp_path / "r.txt"


@pytest.mark.parametrize(
    "missing,expected",
    [
        (["isort"], {"isort", "mypy-extensions"}),
        (["flake8"], {"flake8", "mccabe", "pycodestyle", "pyflakes"}),
        (
            ["black"],
            {"black", "click", "mypy-extensions", "packaging", "pathspec", "platformdirs",
             "pytokens"},
        ),
        (
            ["bandit"],
            {"bandit", "colorama", "markdown-it-py", "mdurl", "pygments", "pyyaml", "rich",
             "stevedore"},
        ),
        (["ruff"], {"ruff"}),
    ],
    ids=["isort", "flake8", "black", "bandit", "ruff"],
)  # fmt: skip
def test_only_the_missing_tools_and_what_they_need(
    tmp_path: Path, missing: list[str], expected: set[str]
) -> None:
    plan = plan_for(missing, tmp_path)
    assert locked_names(plan.requirements) == expected
    assert "--hash=sha256:" in plan.requirements
    assert "# via" not in plan.requirements


def test_a_pin_the_lock_disagrees_with_is_refused(tmp_path: Path) -> None:
    expected = (
        r"^lint: black is missing and pyproject\.toml pins black==1\.0 but "
        r".*requirements-lint\.txt locks black==26\.10\.1: regenerate the lock"
    )
    with fails_with(match=expected):
        plan_for(["black"], tmp_path, {"black": "1.0"})


def test_a_tool_the_lock_lacks_is_refused(tmp_path: Path) -> None:
    env = install.python_env({"VIRTUAL_ENV": str(tmp_path / "venv")})
    lock_text = "ruff==0.17.6 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    with fails_with(match=r"^lint: isort is missing and \S+ has no hashes for it"):
        install.plan_pip_install(
            [python_tool("isort")], {}, lock_text, Path("lock.txt"), env, tmp_path / "r"
        )


def test_a_project_lock_is_preferred(tmp_path: Path) -> None:
    assert install.lock_path(tmp_path) == LOCK
    (tmp_path / "requirements-lint.txt").write_text("")
    assert install.lock_path(tmp_path) == tmp_path / "requirements-lint.txt"


@pytest.fixture
def venv_without_isort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import shutil

    venv = tmp_path / "venv"
    assert os.system(f"{sys.executable} -m venv --without-pip {venv}") == 0  # nosec B605
    here = Path(shutil.which("flake8") or "").parent
    for name in ("flake8", "black", "bandit", "detect-secrets"):
        os.symlink(here / name, venv / "bin" / name)
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    return venv


@pytest.mark.slow
def test_dry_run_shows_a_hash_checked_install(
    lint_project: LintProject, venv_without_isort: Path
) -> None:
    result = lint_project.inv("--dry", "lint.python")
    assert "lint: isort missing from" in result.stdout, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "isort missing" in x)
    assert "install --require-hashes --only-binary :all: --no-input -r " in line
    assert not (venv_without_isort / "bin" / "isort").exists()


@pytest.mark.slow
def test_a_pin_the_lock_does_not_hold_installs_nothing(
    lint_project: LintProject, venv_without_isort: Path
) -> None:
    text = (lint_project.root / "pyproject.toml").read_text()
    lint_project.write("pyproject.toml", text.replace("isort==9.0.2", "isort==5.0.0"))
    lint_project.write(*BAD["isort"])
    result = lint_project.inv("lint.python")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"lint: isort is missing and pyproject.toml pins isort==5.0.0 but {LOCK} locks "
        "isort==9.0.2: regenerate the lock (see its header)"
    ]
    assert not (venv_without_isort / "bin" / "isort").exists()


@pytest.mark.slow
def test_node_tools_without_a_lockfile_install_nothing(lint_project: LintProject) -> None:
    web = lint_project.root / "web"
    (web / "node_modules").unlink()
    (web / "package.json").write_text((REPO / "examples" / "frontend" / "package.json").read_text())
    result = lint_project.inv("lint.js")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `npm install --package-lock-only` there" in lines[0]
    assert not (web / "node_modules").exists()
