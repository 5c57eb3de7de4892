"""`inv lint` with the real tools on fixture files with known findings."""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from invoke import Collection

from tasks import lint
from tasks.lint import execute, tools
from tests.conftest import ROOT_NS, fails_with, need, run_task
from tests.fixtures_lint import BAD, CLEAN_PY, INVOKE_YAML, LintProject, summary_rows

pytestmark = pytest.mark.slow
NS = ROOT_NS
SIDE = {"flake8": "python", "black": "python", "isort": "python", "bandit": "python",
        "eslint": "js", "prettier": "js"}  # fmt: skip


def inv(project: LintProject, *argv: str) -> int:
    return run_task(NS, list(argv), config_file=project.root / "invoke.yaml", cwd=project.root)


def test_clean_project_passes(lint_project: LintProject, capsys: pytest.CaptureFixture) -> None:
    assert inv(lint_project, "lint") == 0
    out = capsys.readouterr().out
    assert "installing" not in out  # every tool present: no pip, no npm, no network
    rows = summary_rows(out)
    assert rows == {
        "bandit": (2, "ok"),
        "flake8": (2, "ok"),
        "eslint": (2, "ok"),
        "black": (2, "ok"),
        "prettier": (2, "ok"),
        "isort": (2, "ok"),
    }


@pytest.mark.parametrize("tool", sorted(BAD))
def test_each_tool_reports_its_finding(
    lint_project: LintProject, capsys: pytest.CaptureFixture, tool: str
) -> None:
    rel, text = BAD[tool]
    lint_project.write(rel, text)
    assert inv(lint_project, f"lint.{SIDE[tool]}") == 1
    out = capsys.readouterr().out
    rows = summary_rows(out)
    assert {name for name, (_, result) in rows.items() if result != "ok"} == {tool}
    assert rows[tool][1] == "findings"
    block = out.split(f"── {tool}: ")[1].split("── ")[0]
    assert Path(rel).name in block  # the tool's own output names the file


def test_fix_really_fixes_then_rechecks(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    bad_py = lint_project.write("app/bad.py", "import sys\nimport os\nx = 'a'\nprint(os, sys, x)\n")
    bad_js = lint_project.write(
        "web/src/bad.js", "export function f(x) {\n  if (!!x) {return {a:1}}\n  return null;\n}\n"
    )
    assert inv(lint_project, "lint", "--fix") == 0
    out = capsys.readouterr().out
    assert bad_py.read_text() == 'import os\nimport sys\n\nx = "a"\nprint(os, sys, x)\n'
    assert bad_js.read_text() == (
        "export function f(x) {\n  if (x) {\n    return { a: 1 };\n  }\n  return null;\n}\n"
    )
    assert out.index("── isort --fix") < out.index("── black --fix")
    assert out.index("── eslint --fix") < out.index("── prettier --fix")
    assert set(result for _, result in summary_rows(out).values()) == {"ok", "ran"}
    assert inv(lint_project, "lint") == 0


def test_fix_leaves_what_only_a_human_can_fix(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write(*BAD["flake8"])
    assert inv(lint_project, "lint.python", "--fix") == 1
    rows = summary_rows(capsys.readouterr().out)
    assert rows["flake8"] == (3, "findings")


def test_ruff_engine_same_semantics(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write("app/bad.py", "import sys\nimport os\nx = 'a'\nprint(os, sys, x)\n")
    assert inv(lint_project, "lint.python", "--engine", "ruff") == 1
    rows = summary_rows(capsys.readouterr().out)
    assert rows["ruff-check"][1] == "findings"  # isort's rule (I001)
    assert rows["ruff-format"][1] == "findings"
    assert rows["bandit"][1] == "ok"
    assert inv(lint_project, "lint.python", "--engine", "ruff", "--fix") == 0
    assert inv(lint_project, "lint.python") == 0  # the default engine agrees


@pytest.mark.parametrize(
    "rel,text,tool,code",
    [
        ("web/eslint.config.js", "export default [\n", "eslint", 2),
        ("app/broken.py", "def f(:\n    pass\n", "black", 123),
    ],
    ids=["eslint-broken-config", "black-cannot-parse"],
)
def test_crash_is_an_error_not_findings(
    lint_project: LintProject, capsys: pytest.CaptureFixture, rel: str, text: str, tool: str,
    code: int,
) -> None:  # fmt: skip
    lint_project.write(rel, text)
    assert inv(lint_project, f"lint.{SIDE[tool]}") == 2
    out = capsys.readouterr().out
    assert summary_rows(out)[tool][1] == f"error (exit {code})"
    assert "tool error: see its output above" in out


def test_missing_binary_is_an_error(tmp_path: Path) -> None:
    tool = tools.Tool("ghost", "python", "ghost", "ghost", (), None, "python")
    step = tools.Step(tool, "check", (str(tmp_path / "nope"), "a.py"), tmp_path, ("a.py",))
    (outcome,) = execute.Executor(1).run([[step]])
    assert (outcome.result, outcome.returncode) == ("error", None)
    assert "cannot run" in outcome.stderr


def test_output_blocks_never_interleave(tmp_path: Path) -> None:
    """Two chatty tools at once: each one's lines come out as one contiguous block."""
    chatty = "import sys, time\nfor i in range(40):\n    print(sys.argv[1], i, flush=True)\n"
    chatty += "    time.sleep(0.002)\n"
    (tmp_path / "chatty.py").write_text(chatty)
    steps = []
    for name in ("alpha", "beta", "gamma"):
        tool = tools.Tool(name, "python", "python", "python", (), None, "python")
        argv = (sys.executable, "chatty.py", name)
        steps.append([tools.Step(tool, "check", argv, tmp_path, ("chatty.py",))])
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        outcomes = execute.Executor(3, out=out).run(steps)
    assert [o.result for o in outcomes] == ["ok"] * 3
    owners = [line.split()[0] for line in out_path.read_text().splitlines()]
    blocks = [owner for i, owner in enumerate(owners) if i == 0 or owners[i - 1] != owner]
    # 3 headers ("──") and 3 runs of 40 lines, alternating: header, its tool's lines.
    assert blocks == ["──", blocks[1], "──", blocks[3], "──", blocks[5]]
    assert sorted(blocks[1::2]) == ["alpha", "beta", "gamma"]


# Invoke's local runner (c.run, used for the install) leaves its pipes to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_missing_python_tool_is_installed_into_the_active_virtualenv(
    lint_project: LintProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:  # fmt: skip
    """A virtualenv lacking isort: lint installs the pinned isort into it (from PyPI)."""
    venv = tmp_path / "venv"
    assert os.system(f"{sys.executable} -m venv --without-pip {venv}") == 0  # nosec B605
    here = Path(sys.executable).parent
    for name in ("flake8", "black", "bandit"):
        os.symlink(here / name, venv / "bin" / name)
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    lint_project.write(*BAD["isort"])
    assert inv(lint_project, "lint.python") == 1
    out = capfd.readouterr().out
    assert re.search(r"lint: isort missing from \S+/venv/bin: installing: .*isort==9\.0\.2", out)
    assert (venv / "bin" / "isort").exists()
    assert summary_rows(out)["isort"] == (3, "findings")
    gc.collect()  # let the leaked pipes go while the warning filter above applies


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_missing_node_tools_are_installed_with_npm_ci(
    lint_project: LintProject, capfd: pytest.CaptureFixture
) -> None:
    """No node_modules: `npm ci` in the frontend installs the pinned ESLint and Prettier."""
    need("npm")
    web = lint_project.root / "web"
    (web / "node_modules").unlink()
    frontend = Path(lint.__file__).parents[2] / "examples" / "frontend"
    for name in ("package.json", "package-lock.json"):
        shutil.copy(frontend / name, web)
    assert inv(lint_project, "lint.js") == 0
    out = capfd.readouterr().out
    assert "lint: eslint, prettier missing from" in out
    assert "installing: npm ci --no-audit --no-fund --no-update-notifier" in out
    assert (web / "node_modules" / ".bin" / "eslint").exists()
    assert summary_rows(out) == {"eslint": (2, "ok"), "prettier": (3, "ok")}
    gc.collect()


def test_ctrl_c_stops_the_tools_and_exits_130(tmp_path: Path) -> None:
    tool = tools.Tool("sleeper", "python", "python", "python", (), None, "python")
    argv = (sys.executable, "-c", "import time; time.sleep(30)")
    chains = [[tools.Step(tool, "check", argv, tmp_path, ())] for _ in range(2)]
    executor = execute.Executor(2)

    def interrupt_once_both_run() -> None:
        deadline = time.monotonic() + 20
        while executor.running() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    start = time.perf_counter()
    threading.Thread(target=interrupt_once_both_run, daemon=True).start()
    with fails_with() as stopped:
        executor.run(chains)
    assert stopped.value.code == 130
    assert executor.running() == 0
    assert time.perf_counter() - start < 20


def test_a_tool_killed_by_a_signal_is_an_error(tmp_path: Path) -> None:
    tool = tools.Tool("victim", "python", "python", "python", (), None, "python")
    argv = (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    (outcome,) = execute.Executor(1).run([[tools.Step(tool, "check", argv, tmp_path, ())]])
    assert (outcome.result, outcome.returncode) == ("error", -9)
    assert "victim: killed by signal 9" in outcome.stderr


def test_clean_files_are_remembered_for_flake8_and_bandit(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    assert inv(lint_project, "lint.python") == 0
    capsys.readouterr()
    assert inv(lint_project, "lint.python") == 0
    rows = summary_rows(capsys.readouterr().out)
    assert rows["flake8"] == (0, "ok (+2 cached)") and rows["bandit"] == (0, "ok (+2 cached)")
    assert rows["black"] == (2, "ok") and rows["isort"] == (2, "ok")  # not ours to cache
    lint_project.write("app/ok.py", CLEAN_PY + "\n\nVERSION = 2\n")  # new content: re-checked
    assert inv(lint_project, "lint.python") == 0
    assert summary_rows(capsys.readouterr().out)["flake8"] == (1, "ok (+1 cached)")


def test_findings_are_never_remembered_and_config_changes_forget(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write(*BAD["flake8"])
    # A run with findings remembers nothing: which files were clean is not parsed from output.
    for _ in range(2):
        assert inv(lint_project, "lint.python") == 1
        out = capsys.readouterr().out
        assert summary_rows(out)["flake8"] == (3, "findings")
        assert "app/bad.py:1:1: F401" in out
    lint_project.write(".flake8", "[flake8]\nmax-line-length = 40\n")
    assert inv(lint_project, "lint.python") == 1
    assert summary_rows(capsys.readouterr().out)["flake8"] == (3, "findings")


def test_no_cache_dir_means_no_caches(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write("invoke.yaml", INVOKE_YAML + '  cache_dir: ""\n')
    for _ in range(2):
        assert inv(lint_project, "lint") == 0
        assert summary_rows(capsys.readouterr().out)["flake8"] == (2, "ok")
    assert not (lint_project.root / ".flowlet").exists()
