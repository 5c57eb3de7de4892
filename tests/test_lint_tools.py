"""`inv lint` with the real tools on fixture files with known findings."""

from __future__ import annotations

import gc
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tasks.lint import plan, tools
from tasks.lint.parallel import Executor
from tests.conftest import ROOT_NS, need, run_task
from tests.fixtures_lint import (
    BAD,
    CLEAN_PY,
    INVOKE_YAML,
    TOKEN_LINE,
    LintProject,
    blocks,
    summary_rows,
    summary_table,
)

pytestmark = pytest.mark.slow
SIDE = {"flake8": "python", "black": "python", "isort": "python", "bandit": "python",
        "eslint": "js", "prettier": "js", "detect-secrets": "python"}  # fmt: skip
JS_ONLY_CONFIG = """import js from "@eslint/js";

export default [js.configs.recommended, { files: ["**/*.js"] }];
"""


def inv(project: LintProject, *argv: str) -> int:
    return run_task(ROOT_NS, list(argv), config_file=project.root / "invoke.yaml", cwd=project.root)


def test_clean_project_passes(lint_project: LintProject, capsys: pytest.CaptureFixture) -> None:
    assert inv(lint_project, "lint") == 0
    out = capsys.readouterr().out
    assert "installing" not in out  # every tool present: no pip, no npm, no network
    assert summary_rows(out) == {
        "bandit": (2, "ok"),
        "flake8": (2, "ok"),
        "eslint": (2, "ok"),
        "black": (2, "ok"),
        "prettier": (2, "ok"),
        "isort": (2, "ok"),
        "detect-secrets": (4, "ok"),
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
    block = out.split(f"── {tool}: ")[1].split("── ")[0]
    assert rel in block  # named from the project root, whichever directory the tool ran in


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
    assert summary_rows(capsys.readouterr().out)["flake8"] == (3, "findings")


def test_ruff_engine_same_semantics(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write("app/bad.py", "import sys\nimport os\nx = 'a'\nprint(os, sys, x)\n")
    assert inv(lint_project, "lint.python", "--engine", "ruff") == 1
    out = capsys.readouterr().out
    rows = summary_rows(out)
    assert rows["ruff-check"][1] == "findings"  # isort's rule (I001)
    assert rows["ruff-format"][1] == "findings"
    assert rows["bandit"][1] == "ok"
    assert "app/bad.py:1:1: I001" in out and "app/bad.py:3:1: unformatted" in out
    assert inv(lint_project, "lint.python", "--engine", "ruff", "--fix") == 0
    assert inv(lint_project, "lint.python") == 0  # the default engine agrees


@pytest.mark.parametrize(
    "rel,text,tool,shown",
    [
        ("web/eslint.config.js", "export default [\n", "eslint", "error (exit 2)"),
        ("app/broken.py", "def f(:\n    pass\n", "black", "error (exit 123)"),
        ("app/broken.py", "def f(:\n    pass\n", "bandit", "error"),  # skipped: not "ok"
    ],
    ids=["eslint-broken-config", "black-cannot-parse", "bandit-cannot-parse"],
)
def test_a_crash_or_an_unreadable_file_is_an_error(
    lint_project: LintProject, capsys: pytest.CaptureFixture, rel: str, text: str, tool: str,
    shown: str,
) -> None:  # fmt: skip
    lint_project.write(rel, text)
    assert inv(lint_project, f"lint.{SIDE[tool]}") == 2
    out = capsys.readouterr().out
    assert summary_rows(out)[tool][1] == shown
    assert "tool error: see its output above" in out
    if tool == "bandit":
        assert "app/broken.py: error: Bandit could not scan this file" in out


def test_missing_binary_is_an_error(tmp_path: Path) -> None:
    tool = tools.Tool("ghost", "python", "ghost", "ghost", (), None, "python", "flake8")
    step = plan.Step(
        tool, "check", str(tmp_path / "nope"), tmp_path, tmp_path, ("a.py",), ("a.py",)
    )
    (tmp_path / "a.py").write_text("")
    (outcome,) = Executor(1).run([[step]])
    assert (outcome.result, outcome.returncode, outcome.shown) == ("error", None, "error (not run)")
    assert "cannot start" in "\n".join(outcome.body)


def test_a_tool_killed_by_a_signal_is_an_error(tmp_path: Path) -> None:
    script = tmp_path / "victim"
    script.write_text(
        f"#!{sys.executable}\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    script.chmod(0o755)
    (tmp_path / "a.py").write_text("")
    tool = tools.Tool("victim", "python", "victim", "victim", (), None, "python", "flake8")
    step = plan.Step(tool, "check", str(script), tmp_path, tmp_path, ("a.py",), ("a.py",))
    (outcome,) = Executor(1).run([[step]])
    assert (outcome.result, outcome.returncode) == ("error", -9)
    assert "victim: killed by signal 9" in outcome.body


def test_blocks_come_whole_and_in_plan_order(tmp_path: Path) -> None:
    """Three chatty tools at once: each block is contiguous, and the order is the plan's."""
    chatty = tmp_path / "chatty"
    chatty.write_text(
        f"#!{sys.executable}\nimport sys, time\nfor i in range(40):\n"
        "    print(sys.argv[-1], i, flush=True)\n    time.sleep(0.002)\nsys.exit(1)\n"
    )
    chatty.chmod(0o755)
    chains = []
    for name in ("gamma", "alpha", "beta"):
        (tmp_path / name).write_text("")
        tool = tools.Tool(name, "python", "chatty", "chatty", (), None, "python", "flake8")
        step = plan.Step(tool, "check", str(chatty), tmp_path, tmp_path, (name,), (name,))
        chains.append([step])
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        outcomes = Executor(3, out=out).run(chains)
    assert [o.result for o in outcomes] == ["error"] * 3  # exit 1 with no finding it understood
    owners = [line.split()[0] for line in out_path.read_text().splitlines()]
    runs = [owner for i, owner in enumerate(owners) if i == 0 or owners[i - 1] != owner]
    assert runs == ["──", "gamma", "──", "alpha", "──", "beta"]


# Invoke's local runner (c.run, used for the install) leaves its pipes to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_missing_python_tool_is_installed_into_the_active_virtualenv(
    lint_project: LintProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:  # fmt: skip
    """A virtualenv lacking isort: lint installs the pinned isort into it (from PyPI), hashes
    checked against the lock."""
    venv = tmp_path / "venv"
    assert os.system(f"{sys.executable} -m venv --without-pip {venv}") == 0  # nosec B605
    here = Path(shutil.which("flake8") or "").parent
    for name in ("flake8", "black", "bandit", "detect-secrets"):
        os.symlink(here / name, venv / "bin" / name)
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    lint_project.write(*BAD["isort"])
    assert inv(lint_project, "lint.python") == 1
    out = capfd.readouterr().out
    assert re.search(
        r"lint: isort missing from \S+/venv/bin: installing \(hashes from \S+requirements-lint"
        r"\.txt\): .* install --require-hashes --only-binary :all: ",
        out,
    )
    assert list((venv / "lib").glob("python3*/site-packages/isort-9.0.2.dist-info"))
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
    frontend = Path(__file__).resolve().parents[1] / "examples" / "frontend"
    for name in ("package.json", "package-lock.json"):
        shutil.copy(frontend / name, web)
    assert inv(lint_project, "lint.js") == 0
    out = capfd.readouterr().out
    assert "lint: eslint, prettier missing from" in out
    assert "installing: npm ci --no-audit --no-fund --no-update-notifier" in out
    assert (web / "node_modules" / ".bin" / "eslint").exists()
    assert summary_rows(out) == {
        "eslint": (2, "ok"), "prettier": (3, "ok"), "detect-secrets": (3, "ok")
    }  # fmt: skip
    gc.collect()


def test_typescript_is_linted_and_formatted(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write("web/src/money.ts", "export const cents = (n: number): number => n * 100;\n")
    lint_project.write("web/src/view.tsx", "export const V = (p: { n: string }) => <b>{p.n}</b>;\n")
    assert inv(lint_project, "lint.js") == 0
    assert summary_rows(capsys.readouterr().out) == {
        "eslint": (4, "ok"), "prettier": (4, "ok"), "detect-secrets": (4, "ok")
    }  # fmt: skip
    lint_project.write("web/src/bad.ts", "export const loose: any = {a:1};\n")
    assert inv(lint_project, "lint.js") == 1
    out = capsys.readouterr().out
    assert "web/src/bad.ts:1:21: error Unexpected any." in out
    assert "(@typescript-eslint/no-explicit-any)" in out
    assert "[warn] web/src/bad.ts" in out  # Prettier formats TypeScript too
    assert summary_rows(out)["eslint"] == (5, "findings")


def test_a_file_the_eslint_config_does_not_cover_is_an_error(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write("web/eslint.config.js", JS_ONLY_CONFIG)
    lint_project.write("web/src/types.ts", "export type Cents = number;\n")
    assert inv(lint_project, "lint.js") == 2
    out = capsys.readouterr().out
    assert summary_rows(out)["eslint"] == (3, "error")
    assert (
        "web/src/types.ts: error: ESLint has no configuration for this file: add a config object "
        "whose `files` pattern matches it"
    ) in out


def test_files_named_like_options_are_files(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write("web/--list-different.md", "# Notes\n\n* one\n")
    lint_project.write("app/--help.py", "import os\n")
    assert inv(lint_project, "lint") == 1
    out = capsys.readouterr().out
    assert "[warn] web/--list-different.md" in out
    assert "app/--help.py:1:1: F401" in out
    rows = summary_rows(out)
    assert rows["prettier"] == (3, "findings") and rows["flake8"] == (3, "findings")
    assert {result for _, result in rows.values()} <= {"ok", "findings"}


CORPUS = {
    "app/flake.py": "import os\n",
    "app/quotes.py": "x = 'a'\n",
    "app/order.py": "import sys\nimport os\n\nprint(os, sys)\n",
    "app/risky.py": 'print(eval("1 + 1"))\n',
    "app/clean.py": CLEAN_PY,
    "web/src/unused.js": "const unused = 1;\n",
    "web/src/style.js": "export const a = {b:1};\n",
    "web/src/loose.ts": "export const loose: any = 1;\n",
    "web/src/token.js": TOKEN_LINE,
}


def test_a_warm_run_prints_what_a_cold_run_prints(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    """Standing findings in every tool: the warm run runs no tool and prints the same blocks."""
    for rel, text in CORPUS.items():
        lint_project.write(rel, text)
    assert inv(lint_project, "lint") == 1
    cold = capsys.readouterr().out
    assert {r for _, r in summary_rows(cold).values()} == {"findings"}
    assert inv(lint_project, "lint") == 1
    warm = capsys.readouterr().out
    assert blocks(warm) == blocks(cold)
    table = summary_table(warm)
    assert all(row["cached"] == row["files"] for row in table.values()), table
    lint_project.write("app/clean.py", CLEAN_PY + "\n\nVERSION = 2\n")  # one new content
    assert inv(lint_project, "lint") == 1
    again = capsys.readouterr().out
    assert blocks(again) == blocks(cold)
    table = summary_table(again)
    assert table["flake8"]["cached"] == str(int(table["flake8"]["files"]) - 1)
    assert table["eslint"]["cached"] == table["eslint"]["files"]
    lint_project.write(".flake8", "[flake8]\nmax-line-length = 100\nselect = F\n")  # config
    assert inv(lint_project, "lint.python") == 1
    table = summary_table(capsys.readouterr().out)
    assert table["flake8"]["cached"] == "0" and table["bandit"]["cached"] != "0"


def test_no_cache_dir_means_no_cache(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    lint_project.write("invoke.yaml", INVOKE_YAML + '  cache_dir: ""\n')
    for _ in range(2):
        assert inv(lint_project, "lint") == 0
        assert summary_table(capsys.readouterr().out)["flake8"]["cached"] == "0"
    assert not (lint_project.root / ".flowlet").exists()


@pytest.mark.parametrize(
    "how,source",
    [("flag", "--skip"), ("env", "SKIP"), ("config", "lint.skip")],
    ids=["flag", "SKIP", "config"],
)
def test_skipped_tools_are_shown(
    lint_project: LintProject, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
    how: str, source: str,
) -> None:  # fmt: skip
    lint_project.write(*BAD["bandit"])
    argv = ["lint"]
    if how == "flag":
        argv += ["--skip", "bandit,eslint"]
    elif how == "env":
        monkeypatch.setenv("SKIP", "bandit,eslint")
    else:
        lint_project.write("invoke.yaml", INVOKE_YAML + "  skip: [bandit, eslint]\n")
    assert inv(lint_project, *argv) == 0
    out = capsys.readouterr().out
    rows = summary_table(out)
    assert rows["bandit"]["result"] == rows["eslint"]["result"] == f"skipped ({source})"
    assert "── bandit" not in out and rows["flake8"]["result"] == "ok"


def test_a_file_an_eslint_ignores_pattern_matches_is_an_error_too(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    config = lint_project.root / "web" / "eslint.config.js"
    text = config.read_text().replace('ignores: ["node_modules/**"]', 'ignores: ["vendor/**"]')
    config.write_text(text)
    lint_project.write("web/vendor/lib.js", "var x = 1\n")
    lint_project.write("web/.prettierignore", "vendor\n")
    assert inv(lint_project, "lint.js") == 2
    out = capsys.readouterr().out
    assert (
        "web/vendor/lib.js: error: ESLint's config ignores this file (an `ignores` pattern of "
        "eslint.config.js), so nothing checked it: remove the pattern, or leave the file out of "
        "lint.js_paths"
    ) in out
    assert summary_rows(out)["eslint"] == (3, "error")


def other_repo(root: Path) -> Path:
    """A second repository beside the project, with its own flake8 config (40 columns)."""
    other = root.parent / "other repo"
    (other / "src").mkdir(parents=True)
    (other / ".flake8").write_text("[flake8]\nmax-line-length = 40\n")
    (other / "src" / "long.py").write_text("VALUE = 'a string that is a bit long: 47 chars'\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "other"]):
        assert os.system(f"git -C {str(other)!r} {' '.join(argv)}") == 0  # nosec B605
    return other


def test_paths_outside_the_project_use_their_own_repository_and_config(
    lint_project: LintProject, capsys: pytest.CaptureFixture
) -> None:
    other = other_repo(lint_project.root)
    relative = INVOKE_YAML.replace(
        "python_paths: [app, bin]", 'python_paths: ["../other repo/src"]'
    )
    for config in (relative, INVOKE_YAML.replace("[app, bin]", f'["{other / "src"}"]')):
        lint_project.write("invoke.yaml", config)
        assert inv(lint_project, "lint.python", "--skip", "black") == 1
        out = capsys.readouterr().out
        assert f"{other}/src/long.py:1:41: E501 line too long (47 > 40 characters)" in out
    assert inv(lint_project, "lint.python", "--changed", "--base", "main") == 0  # git runs there
    assert "nothing to lint (changed files" in capsys.readouterr().out
    (other / "src" / "new.py").write_text("import os\n")  # untracked in the other repository
    assert inv(lint_project, "lint.python", "--changed", "--base", "main") == 1
    out = capsys.readouterr().out
    assert f"{other}/src/new.py:1:1: F401" in out and summary_rows(out)["flake8"] == (1, "findings")
