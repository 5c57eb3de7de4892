"""Pure parts of `inv lint`: tool selection, plans, exit-code classification, file selection,
pre-push refs, pins, the hook script. No tools run here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from invoke import Collection

from tasks import lint
from tasks.lint import execute, files, hook, install, tools
from tests.conftest import ROOT_NS, fails_with, run_task

ROOT = Path("/p")
CWDS = {"python": ROOT, "js": ROOT / "web"}
FILESET = tools.FileSet(python=("a.py",), bandit=("a.py",), eslint=("x.js",), prettier=("x.js",))


def all_tools(engine: str = "default") -> list[tools.Tool]:
    return [*tools.python_tools(engine, bandit_config=None, ruff_select="E,F"), *tools.js_tools()]


def binaries(chosen: list[tools.Tool]) -> dict[str, str]:
    return {t.name: t.binary for t in chosen}


def test_default_engine_is_the_six_tools() -> None:
    names = sorted(t.name for t in all_tools())
    assert names == ["bandit", "black", "eslint", "flake8", "isort", "prettier"]


def test_ruff_engine_replaces_flake8_isort_black() -> None:
    names = sorted(t.name for t in all_tools("ruff"))
    assert names == ["bandit", "eslint", "prettier", "ruff-check", "ruff-format"]


def test_check_plan_is_read_only_and_heaviest_first() -> None:
    chosen = all_tools()
    chains = tools.plan_check(chosen, FILESET, binaries(chosen), CWDS)
    argvs = [chain[0].argv for chain in chains]
    assert all(len(chain) == 1 for chain in chains)
    assert argvs == [
        ("bandit", "-q", "a.py"),
        ("flake8", "a.py"),
        ("eslint", "--no-warn-ignored", "x.js"),
        ("black", "--check", "a.py"),
        ("prettier", "--check", "x.js"),
        ("isort", "--check-only", "a.py"),
    ]
    assert {chain[0].cwd for chain in chains if chain[0].tool.side == "js"} == {ROOT / "web"}


def test_check_plan_skips_tools_without_files() -> None:
    chosen = all_tools()
    only_python = tools.FileSet(python=("a.py",))
    chains = tools.plan_check(chosen, only_python, binaries(chosen), CWDS)
    assert [c[0].tool.name for c in chains] == ["flake8", "black", "isort"]


@pytest.mark.parametrize(
    "engine,expected",
    [
        (
            "default",
            [
                [("isort", "--quiet", "a.py"), ("black", "--quiet", "a.py")],
                [("eslint", "--fix", "--no-warn-ignored", "x.js"),
                 ("prettier", "--write", "--log-level", "warn", "x.js")],
            ],
        ),
        (
            "ruff",
            [
                [("ruff", "check", "--fix", "--select", "E,F", "a.py"), ("ruff", "format", "a.py")],
                [("eslint", "--fix", "--no-warn-ignored", "x.js"),
                 ("prettier", "--write", "--log-level", "warn", "x.js")],
            ],
        ),
    ],
    ids=["isort-before-black", "ruff-check-before-format"],
)  # fmt: skip
def test_fix_plan_orders_writers_of_the_same_files(engine: str, expected: list) -> None:
    chosen = all_tools(engine)
    chains = tools.plan_fix(chosen, FILESET, binaries(chosen), CWDS)
    assert [[s.argv for s in chain] for chain in chains] == expected


@pytest.mark.parametrize(
    "tool,code,stderr,result",
    [
        ("flake8", 0, "", "ok"),
        ("flake8", 1, "", "findings"),
        ("flake8", 1, "Traceback (most recent call last):\n  ...", "error"),
        ("flake8", 2, "", "error"),
        ("black", 1, "", "findings"),
        ("black", 123, "", "error"),
        ("isort", 1, "", "findings"),
        ("bandit", 1, "", "findings"),
        ("bandit", 2, "", "error"),
        ("eslint", 1, "", "findings"),
        ("eslint", 2, "", "error"),
        ("prettier", 1, "", "findings"),
        ("prettier", 2, "", "error"),
        ("black", -9, "", "error"),
        ("eslint", None, "", "error"),
    ],
    ids=[
        "clean", "flake8-findings", "flake8-traceback", "flake8-usage", "black-reformat",
        "black-internal-error", "isort-unsorted", "bandit-issues", "bandit-usage",
        "eslint-findings", "eslint-crash", "prettier-unformatted", "prettier-crash",
        "killed-by-signal", "binary-missing",
    ],
)  # fmt: skip
def test_classify(tool: str, code: int | None, stderr: str, result: str) -> None:
    by_name = {t.name: t for t in all_tools()}
    assert tools.classify(by_name[tool], code, stderr) == result


@pytest.mark.parametrize(
    "results,code",
    [(["ok", "ok"], 0), (["ok", "findings"], 1), (["findings", "error"], 2)],
    ids=["clean", "findings", "crash-wins"],
)
def test_exit_code(results: list[str], code: int) -> None:
    chosen = all_tools()[0]
    step = tools.Step(chosen, "check", ("x",), ROOT, ())
    outcomes = [execute.Outcome(step, 0, 0.0, "", "", r) for r in results]
    assert execute.exit_code(outcomes) == code


def test_summary_names_tool_files_result_and_fix() -> None:
    by_name = {t.name: t for t in all_tools()}
    outcomes = [
        execute.Outcome(
            tools.Step(by_name["black"], "check", (), ROOT, ("a.py", "b.py")), 1, 0.5, "", "",
            "findings",
        ),
        execute.Outcome(
            tools.Step(by_name["flake8"], "check", (), ROOT, ("a.py",)), 1, 0.25, "", "",
            "findings",
        ),
        execute.Outcome(tools.Step(by_name["eslint"], "check", (), ROOT, ("x.js",)), 2, 1.0, "",
                        "", "error"),
    ]  # fmt: skip
    table = execute.summary(outcomes, "inv lint --fix").splitlines()
    assert table[0].split() == ["tool", "files", "seconds", "result", "fix"]
    assert table[1].split() == ["black", "2", "0.50", "findings", "inv", "lint", "--fix"]
    assert "fix by hand" in table[2]
    assert "error (exit 2)" in table[3] and "see its output above" in table[3]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("#!/usr/bin/env python3\n", True),
        ("#!/usr/bin/python\nprint()\n", True),
        ("#!/bin/sh\necho\n", False),
        ("print()\n", False),
    ],
    ids=["env-python3", "python", "shell", "no-shebang"],
)
def test_python_shebang_detection(tmp_path: Path, text: str, expected: bool) -> None:
    script = tmp_path / "script"
    script.write_text(text)
    assert files.is_python(script) is expected


def test_select_files_sorts_candidates_per_tool(tmp_path: Path) -> None:
    for rel in [
        "app/a.py",
        "app/tests/t.py",
        "app/script",
        "web/src/x.js",
        "web/index.html",
        "web/package-lock.json",
        "web/node_modules/m/i.js",
        "docs/d.py",
        "web/y.py",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("#!/usr/bin/env python\n" if rel.endswith("script") else "")
    layout = files.Layout(tmp_path, ("app",), ("web",), "web", ("tests",))
    everything = files.all_files(layout, ("python", "js"))
    assert everything == tools.FileSet(
        python=("app/a.py", "app/script", "app/tests/t.py"),
        bandit=("app/a.py", "app/script"),
        eslint=("src/x.js",),
        prettier=("index.html", "src/x.js"),
    )
    changed = files.select_files(layout, ["app/a.py", "docs/d.py", "gone.py"], ("python", "js"))
    assert changed == tools.FileSet(python=("app/a.py",), bandit=("app/a.py",))
    assert files.all_files(layout, ("js",)).python == ()


ZERO = "0" * 40
SHA_A, SHA_B = "a" * 40, "b" * 40


@pytest.mark.parametrize(
    "text,expected",
    [
        (f"refs/heads/f {SHA_A} refs/heads/f {SHA_B}\n", [("refs/heads/f", SHA_A, SHA_B)]),
        (f"refs/heads/n {SHA_A} refs/heads/n {ZERO}\n", [("refs/heads/n", SHA_A, ZERO)]),
        (f"(delete) {ZERO} refs/heads/old {SHA_B}\n", []),
        ("", []),
    ],
    ids=["update", "new-branch", "delete-skipped", "nothing"],
)
def test_parse_pre_push(text: str, expected: list[tuple[str, str, str]]) -> None:
    refs = files.parse_pre_push(text)
    assert [(r.local_ref, r.local_sha, r.remote_sha) for r in refs] == expected


def test_parse_pre_push_rejects_garbage() -> None:
    with fails_with(match="--pre-push: expected"):
        files.parse_pre_push("refs/heads/x abc\n")


def test_pins_come_from_the_lint_extra() -> None:
    text = '[project.optional-dependencies]\nlint = [\n  "flake8==7.5.0",\n  "black==26.10.1",\n]\n'
    text += 'dev = ["pytest==8.0"]\n'
    assert install.lint_pins(text) == {"flake8": "7.5.0", "black": "26.10.1"}


def test_project_pins_match_the_installed_tools() -> None:
    pins = install.find_pins(Path(__file__).resolve().parent.parent)
    assert set(pins) == {"flake8", "black", "isort", "bandit", "ruff"}


def test_pip_install_targets_the_active_virtualenv(tmp_path: Path) -> None:
    env = install.python_env({"VIRTUAL_ENV": str(tmp_path / "venv")})
    assert env.bin_dir == tmp_path / "venv" / "bin"
    isort = next(t for t in all_tools() if t.name == "isort")
    argv = install.plan_pip_install([isort], {"isort": "9.0.2"}, env)
    assert argv == [sys.executable, "-m", "pip", "--python", str(env.python), "install",
                    "isort==9.0.2"]  # fmt: skip


@pytest.mark.parametrize("lockfile,verb", [(True, "ci"), (False, "install")], ids=["ci", "install"])
def test_npm_install_uses_the_lockfile(tmp_path: Path, lockfile: bool, verb: str) -> None:
    if lockfile:
        (tmp_path / "package-lock.json").write_text("{}")
    assert install.plan_npm_install(tmp_path) == [
        "npm",
        verb,
        "--no-audit",
        "--no-fund",
        "--no-update-notifier",
    ]


def test_hook_script_reads_refs_and_carries_the_marker() -> None:
    script = hook.hook_script("/venv/bin/python", "sub dir")
    assert script.startswith("#!/bin/sh\n")
    assert hook.HOOK_MARKER in script
    assert "cd \"$(git rev-parse --show-toplevel)\"/'sub dir'" in script
    assert 'toplevel)" || exit 1' in hook.hook_script("/venv/bin/python", ".")
    assert 'exec "$PYTHON" -m invoke lint --changed --pre-push "$1"' in script


def test_bad_engine_is_refused(tmp_path: Path) -> None:
    code = run_task(ROOT_NS, ["lint", "--engine", "fast"], cwd=tmp_path)
    assert code == 1


def test_bad_engine_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_task(ROOT_NS, ["lint.python", "--engine", "fast"], cwd=tmp_path)
    assert "--engine: 'fast' is not valid; valid: default, ruff" in capsys.readouterr().err


def test_bad_engine_in_config_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("lint:\n  engine: turbo\n")
    assert run_task(ROOT_NS, ["lint"], config_file=config, cwd=tmp_path) == 1
    assert "lint.engine: 'turbo' is not valid; valid: default, ruff" in capsys.readouterr().err


def test_paths_must_be_a_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("lint:\n  python_paths: app\n")
    assert run_task(ROOT_NS, ["lint"], config_file=config, cwd=tmp_path) == 1
    assert "lint.python_paths: 'app' is not a list of paths" in capsys.readouterr().err


def test_js_paths_must_be_inside_the_frontend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("lint:\n  js_paths: [web, scripts]\n  frontend: web\n")
    assert run_task(ROOT_NS, ["lint"], config_file=config, cwd=tmp_path) == 1
    assert "lint.js_paths: 'scripts' is outside lint.frontend 'web'" in capsys.readouterr().err


def test_dry_prints_the_plan_and_runs_nothing(
    lint_project: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = lint_project.root  # type: ignore[attr-defined]
    code = run_task(ROOT_NS, ["--dry", "lint", "--fix"], root / "invoke.yaml", root)
    out = capsys.readouterr().out
    assert code == 0
    assert "isort --quiet app/ok.py bin/tool" in out
    assert "black --check app/ok.py bin/tool" in out
    cache = root / ".flowlet" / "lint-cache"
    assert f"eslint --fix --no-warn-ignored --cache --cache-location {cache}/eslint/ " in out
    assert f"prettier --check --cache --cache-location {cache}/prettier.json " in out
    assert "seconds" not in out  # no summary table: nothing ran
