"""Pure parts of `inv lint`: tools, plans, exit codes, the report, file selection, the output
parsers, pre-push refs, pins, the hook script. No tool runs here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tasks.lint import findings, hook, install, plan, tools
from tasks.lint.files import Layout, Target, Tree, discover, is_python, select
from tasks.lint.findings import PATH, FileResult
from tasks.lint.git import parse_pre_push
from tests.conftest import fails_with

ROOT = Path("/p")


def all_tools(engine: str = "default") -> list[tools.Tool]:
    return [*tools.python_tools(engine, bandit_config=None, ruff_select="E,F"), *tools.js_tools()]


def layout_of(root: Path, python: tuple[str, ...] = ("app",), js: tuple[str, ...] = ("web",)):
    paths = {root / p: ("python_paths", p) for p in python}
    paths.update({root / p: ("js_paths", p) for p in js})
    return Layout(
        root,
        tuple(root / p for p in python),
        tuple(root / p for p in js),
        root / "web",
        paths,
    )


TARGET = Target(Tree(ROOT, ROOT), python=("app/a.py",), js=("web/src/x.js", "web/src/r.md"))


def steps(engine: str = "default", mode: str = "check") -> list[plan.Step]:
    chosen = all_tools(engine)
    binaries = {t.name: t.binary for t in chosen}
    return plan.steps_for(TARGET, chosen, mode, layout_of(ROOT), binaries, ())


def test_default_engine_is_the_six_tools() -> None:
    names = sorted(t.name for t in all_tools())
    assert names == ["bandit", "black", "eslint", "flake8", "isort", "prettier"]


def test_ruff_engine_replaces_flake8_isort_black() -> None:
    names = sorted(t.name for t in all_tools("ruff"))
    assert names == ["bandit", "eslint", "prettier", "ruff-check", "ruff-format"]


def test_check_plan_is_read_only_costliest_first_and_files_follow_a_double_dash() -> None:
    chains = plan.plan_check(steps())
    assert all(len(chain) == 1 for chain in chains)
    assert [chain[0].argv() for chain in chains] == [  # no files on disk: by start-up cost
        ("eslint", "--format", "json", "--", "src/x.js"),
        ("prettier", "--list-different", "--", "src/x.js", "src/r.md"),
        ("black", "--check", "--", "app/a.py"),
        ("bandit", "-q", "-f", "json", "--", "app/a.py"),
        ("flake8", "--format=default", "--", "app/a.py"),
        ("isort", "--check-only", "--", "app/a.py"),
    ]
    js = [chain[0] for chain in chains if chain[0].tool.side == "js"]
    assert {s.cwd for s in js} == {ROOT / "web"}
    assert js[0].display == ("web/src/x.js",)  # named from the project root, not the frontend


def test_check_plan_skips_tools_without_files() -> None:
    only_python = Target(Tree(ROOT, ROOT), python=("app/a.py",))
    chosen = all_tools()
    binaries = {t.name: t.binary for t in chosen}
    planned = plan.steps_for(only_python, chosen, "check", layout_of(ROOT), binaries, ())
    names = [c[0].tool.name for c in plan.plan_check(planned)]
    assert names == ["black", "bandit", "flake8", "isort"]


ESLINT_FIX = ("eslint", "--fix", "--format", "json", "--", "src/x.js")
PRETTIER_WRITE = ("prettier", "--write", "--log-level", "warn", "--", "src/x.js", "src/r.md")
RUFF_CHECK_FIX = ("ruff", "check", "--no-cache", "--fix", "--quiet", "--select", "E,F", "--",
                  "app/a.py")  # fmt: skip


@pytest.mark.parametrize(
    "engine,expected",
    [
        ("default", [[("isort", "--quiet", "--", "app/a.py"),
                      ("black", "--quiet", "--", "app/a.py")], [ESLINT_FIX, PRETTIER_WRITE]]),
        ("ruff", [[RUFF_CHECK_FIX, ("ruff", "format", "--no-cache", "--quiet", "--", "app/a.py")],
                  [ESLINT_FIX, PRETTIER_WRITE]]),
    ],
    ids=["isort-before-black", "ruff-check-before-format"],
)  # fmt: skip
def test_fix_plan_orders_writers_of_the_same_files(engine: str, expected: list) -> None:
    chains = plan.plan_fix(steps(engine, "fix"))
    assert [[s.argv() for s in chain] for chain in chains] == expected


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


def outcome(result: str, label: str = "flake8", files: tuple[str, ...] = ("a.py",)) -> plan.Outcome:
    tool = {t.name: t for t in all_tools()}[label]
    step = plan.Step(tool, "check", tool.binary, ROOT, ROOT, files, files)
    return plan.Outcome(step, 0, 0.25, result, cached=1)


@pytest.mark.parametrize(
    "results,code",
    [(["ok", "ok"], 0), (["ok", "findings"], 1), (["findings", "error"], 2)],
    ids=["clean", "findings", "crash-wins"],
)
def test_exit_code(results: list[str], code: int) -> None:
    assert plan.exit_code([outcome(r) for r in results]) == code


def test_summary_names_tool_files_cache_result_fix_and_skipped_tools() -> None:
    outcomes = [outcome("findings", "black", ("a.py", "b.py")), outcome("findings"),
                outcome("error", "eslint", ("x.js",))]  # fmt: skip
    table = plan.summary(outcomes, {"bandit": "SKIP"}, "inv lint --fix").splitlines()
    assert table[0].split() == ["tool", "files", "cached", "seconds", "findings", "result", "fix"]
    assert table[1].split() == ["black", "2", "1", "0.25", "0", "findings", "inv", "lint", "--fix"]
    assert "fix by hand" in table[2]
    assert "error" in table[3] and "see its output above" in table[3]
    assert table[4].split() == ["bandit", "-", "-", "-", "-", "skipped", "(SKIP)"]


def test_summary_counts_findings_per_tool_and_in_all() -> None:
    step = outcome("findings").step
    results = (
        ("a.py", FileResult("findings", (f"{PATH}:1:1: F401 x", f"{PATH}:2:1: E231 y"))),
        ("b.py", FileResult("ok")),
    )
    flake8 = plan.Outcome(step, 1, 0.5, "findings", results=results)
    clean = plan.Outcome(outcome("ok", "isort").step, 0, 0.5, "ok")
    table = plan.summary([flake8, clean], {}, "inv lint --fix").splitlines()
    assert table[1].split()[:6] == ["flake8", "1", "0", "0.50", "2", "findings"]
    assert table[2].split() == ["isort", "1", "0", "0.50", "0", "ok"]
    assert table[-2:] == ["", "lint: 2 findings"]


def test_a_block_holds_no_timing_so_warm_and_cold_print_the_same() -> None:
    done = plan.Outcome(outcome("findings").step, 1, 3.5, "findings", ("a.py:1:1: F401 x",), 0)
    warm = plan.Outcome(done.step, None, 0.01, "findings", done.body, 1)
    assert done.block == warm.block == "── flake8: 1 file, findings ──\na.py:1:1: F401 x\n"


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
    assert is_python(script) is expected


def test_discover_and_select_sort_files_per_side(tmp_path: Path) -> None:
    for rel in [
        "app/a.py", "app/tests/t.py", "app/script", "web/src/x.js", "web/index.html",
        "web/package-lock.json", "web/node_modules/m/i.js", "docs/d.py", "web/y.py",
    ]:  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("#!/usr/bin/env python\n" if rel.endswith("script") else "")
    layout = layout_of(tmp_path)
    (everything,) = discover(layout, ("python", "js"))
    assert everything.python == ("app/a.py", "app/script", "app/tests/t.py")
    assert everything.js == ("web/index.html", "web/src/x.js")
    tree = Tree(tmp_path, tmp_path)
    changed = select(layout, tree, ["app/a.py", "docs/d.py", "gone.py"], ("python", "js"))
    assert (changed.python, changed.js) == (("app/a.py",), ())
    chosen = all_tools()
    binaries = {t.name: t.binary for t in chosen}
    planned = {
        s.tool.name: s.files
        for s in plan.steps_for(everything, chosen, "check", layout, binaries, ("tests",))
    }
    assert planned["bandit"] == ("app/a.py", "app/script")  # its exclude_dirs: tests
    assert planned["eslint"] == ("src/x.js",) and planned["prettier"] == ("index.html", "src/x.js")


def test_bandit_gets_the_files_its_exclude_dirs_leave() -> None:
    assert plan.bandit_excluded("app/tests/t.py", ["tests"])
    assert plan.bandit_excluded("gen/build/x.py", ["build"])
    assert plan.bandit_excluded("app/sub/x.py", ["app/sub"])
    assert not plan.bandit_excluded("app/a.py", ["tests"])


def test_a_configured_path_without_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "notes.txt").write_text("no python here\n")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "a.js").write_text("")
    with fails_with(match=r"^lint\.python_paths: 'app' matches no Python file$"):
        discover(layout_of(tmp_path), ("python", "js"))


def collector_parse(parser: str, names: list[str], stdout: str = "", stderr: str = ""):
    parsed = findings.parse(parser, names, "/p", stdout, stderr)
    assert parsed is not None
    return parsed


def test_flake8_output_is_split_per_file() -> None:
    out = "app/a b.py:1:1: F401 'os' imported but unused\napp/c.py:3:9: E231 missing\n"
    parsed = collector_parse("flake8", ["app/a b.py", "app/c.py", "app/ok.py"], out)
    assert parsed.files["app/a b.py"] == FileResult(
        "findings", (f"{PATH}:1:1: F401 'os' imported but unused",)
    )
    assert parsed.files["app/ok.py"] == FileResult("ok")
    assert findings.render(parsed.files["app/c.py"], "x/c.py") == ["x/c.py:3:9: E231 missing"]


def test_black_errors_keep_their_continuation_lines() -> None:
    err = (
        "would reformat b.py\nerror: cannot parse: e.py:1:6\n    def f(:\n         ^\n"
        "ParseError: bad input\nwould reformat c.py\n\nOh no! 💥 💔 💥\n"
        "2 files would be reformatted, 1 file would fail to reformat.\n"
    )
    parsed = collector_parse("black", ["b.py", "c.py", "e.py"], stderr=err)
    assert parsed.files["b.py"].lines == (f"would reformat {PATH}",)
    assert parsed.files["e.py"] == FileResult(
        "error",
        (f"error: cannot parse: {PATH}:1:6", "    def f(:", "         ^", "ParseError: bad input"),
    )
    assert parsed.other == []


def test_black_parse_errors_for_a_target_version_name_their_file() -> None:
    err = (
        "error: cannot parse for target version Python 3.15: app/e.py:1:6: bad\n    def f(:\n"
        "         ^\nwould reformat app/b.py\n\nOh no! 💥 💔 💥\n"
        "1 file would be reformatted, 1 file would fail to reformat.\n"
    )
    parsed = collector_parse("black", ["app/b.py", "app/e.py"], stderr=err)
    assert parsed.files["app/e.py"] == FileResult(
        "error",
        (f"error: cannot parse for target version Python 3.15: {PATH}:1:6: bad",
         "    def f(:", "         ^"),
    )  # fmt: skip
    assert parsed.files["app/b.py"].lines == (f"would reformat {PATH}",)
    assert parsed.other == []


def test_isort_absolute_paths_map_back() -> None:
    err = "ERROR: /p/app/c.py Imports are incorrectly sorted and/or formatted.\n"
    parsed = collector_parse("isort", ["app/c.py"], "Skipped 1 files\n", err)
    assert parsed.files["app/c.py"].status == "findings" and parsed.other == []


def test_bandit_unparseable_file_is_an_error() -> None:
    report = {
        "errors": [{"filename": "./e.py", "reason": "syntax error while parsing AST from file"}],
        "results": [{"filename": "./d.py", "line_number": 1, "col_offset": 6, "test_id": "B307",
                     "issue_severity": "MEDIUM", "issue_confidence": "HIGH",
                     "issue_text": "Use of possibly insecure function."}],
    }  # fmt: skip
    parsed = collector_parse("bandit", ["d.py", "e.py"], json.dumps(report))
    assert parsed.files["e.py"].status == "error"
    assert "could not scan" in parsed.files["e.py"].lines[0]
    assert parsed.files["d.py"].lines == (
        f"{PATH}:1:7: B307 [MEDIUM/HIGH] Use of possibly insecure function.",
    )


def test_eslint_file_without_configuration_is_an_error_saying_how_to_configure_it() -> None:
    results = [
        {"filePath": "/p/src/x.ts", "messages": [{"ruleId": None, "severity": 1,
         "message": "File ignored because no matching configuration was supplied."}]},
        {"filePath": "/p/src/y.js", "messages": [{"ruleId": "eqeqeq", "severity": 2, "line": 2,
         "column": 12, "message": "Expected '===' and instead saw '=='."}]},
    ]  # fmt: skip
    parsed = collector_parse("eslint", ["src/x.ts", "src/y.js"], json.dumps(results))
    assert parsed.files["src/x.ts"].status == "error"
    assert (
        "add a config object whose `files` pattern matches it" in parsed.files["src/x.ts"].lines[0]
    )
    assert parsed.files["src/y.js"].lines == (
        f"{PATH}:2:12: error Expected '===' and instead saw '=='. (eqeqeq)",
    )


def test_prettier_lists_files_and_errors() -> None:
    err = "[error] b.js: SyntaxError: Unexpected token (1:10)\n[error] > 1 | function (\n"
    parsed = collector_parse("prettier", ["--x.md", "b.js", "c.js"], "--x.md\n", err)
    assert parsed.files["--x.md"].lines == (f"[warn] {PATH}",)
    assert parsed.files["b.js"].status == "error" and len(parsed.files["b.js"].lines) == 2
    assert parsed.files["c.js"].status == "ok"


def test_unreadable_output_is_none() -> None:
    assert findings.parse("eslint", ["a.js"], "/p", "Oops! Something went wrong", "") is None


def test_cache_results_round_trip() -> None:
    result = FileResult("findings", (f"{PATH}:1:1: F401",))
    assert FileResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert FileResult.from_json(["error", []]) is None  # errors are never kept


@pytest.mark.parametrize(
    "text,expected",
    [
        ("refs/heads/f " + "a" * 40 + " refs/heads/f " + "b" * 40 + "\n", 1),
        ("(delete) " + "0" * 40 + " refs/heads/old " + "b" * 40 + "\n", 0),
        ("", 0),
    ],
    ids=["update", "delete-skipped", "nothing"],
)
def test_parse_pre_push(text: str, expected: int) -> None:
    assert len(parse_pre_push(text)) == expected


def test_parse_pre_push_rejects_garbage() -> None:
    with fails_with(match="--pre-push: expected"):
        parse_pre_push("refs/heads/x abc\n")


def test_skip_names_must_be_tools_except_under_pre_commit() -> None:
    assert plan.parse_skip("flake8, bandit", "--skip") == ("flake8", "bandit")
    with fails_with(match=r"^SKIP: 'pylint' is not a lint tool; valid: bandit, black"):
        plan.parse_skip("pylint", "SKIP")
    assert plan.parse_skip("check-yaml,black", "SKIP", lenient=True) == ("black",)


def test_pins_come_from_the_lint_extra() -> None:
    text = '[project.optional-dependencies]\nlint = [\n  "flake8==7.5.0",\n  "black==26.10.1",\n]\n'
    text += 'dev = ["pytest==8.0"]\n'
    assert install.lint_pins(text) == {"flake8": "7.5.0", "black": "26.10.1"}


def test_project_pins_match_the_installed_tools() -> None:
    pins = install.find_pins(Path(__file__).resolve().parent.parent)
    assert set(pins) == {"flake8", "black", "isort", "bandit", "ruff", "detect-secrets"}


def test_pip_install_targets_the_active_virtualenv(tmp_path: Path) -> None:
    env = install.python_env({"VIRTUAL_ENV": str(tmp_path / "venv")})
    assert env.bin_dir == tmp_path / "venv" / "bin"
    isort = next(t for t in all_tools() if t.name == "isort")
    lock = install.LIBRARY_LOCK
    plan_ = install.plan_pip_install(
        [isort], {"isort": "9.0.2"}, lock.read_text(), lock, env, tmp_path / "req.txt"
    )
    assert plan_.argv == [sys.executable, "-m", "pip", "--python", str(env.python), "install",
                          "--require-hashes", "--only-binary", ":all:", "--no-input",
                          "-r", str(tmp_path / "req.txt")]  # fmt: skip


def test_npm_install_is_npm_ci_from_the_lockfile(tmp_path: Path) -> None:
    (tmp_path / "package-lock.json").write_text("{}")
    assert install.plan_npm_install(tmp_path) == [
        "npm", "ci", "--no-audit", "--no-fund", "--no-update-notifier", "--ignore-scripts",
    ]  # fmt: skip


def test_npm_install_without_a_lockfile_is_refused(tmp_path: Path) -> None:
    with fails_with(match=r"^lint: ESLint/Prettier are missing and .* has no package-lock\.json: "
                    r"run `npm install --package-lock-only` there"):  # fmt: skip
        install.plan_npm_install(tmp_path)


def test_hook_script_reads_refs_and_carries_the_marker() -> None:
    script = hook.hook_script("/venv/bin/python", "sub dir")
    assert script.startswith("#!/bin/sh\n")
    assert hook.HOOK_MARKER in script
    assert "cd \"$(git rev-parse --show-toplevel)\"/'sub dir'" in script
    assert 'toplevel)" || exit 1' in hook.hook_script("/venv/bin/python", ".")
    assert 'exec "$PYTHON" -m invoke lint --pre-push "$1"' in script


def test_the_costliest_step_goes_first(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "big.py").write_text("x = 1\n" * 20000)  # 117 KB of Python
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "a.js").write_text("")
    target = Target(Tree(tmp_path, tmp_path), python=("app/big.py",), js=("web/a.js",))
    chosen = all_tools()
    binaries = {t.name: t.binary for t in chosen}
    planned = plan.steps_for(target, chosen, "check", layout_of(tmp_path), binaries, ())
    order = [c[0].tool.name for c in plan.plan_check(planned)]
    assert order[0] == "flake8" and order[-1] == "isort"


def test_bandit_log_warnings_go_with_their_file() -> None:
    report = json.dumps({"errors": [], "results": []})
    err = (
        "[tester]\tWARNING\tnosec encountered (B608), but no failed test on file ./a.py:7\n"
        "[manager]\tWARNING\tTest in comment: argv is not a test name or id, ignoring\n"
    )
    parsed = collector_parse("bandit", ["a.py"], report, err)
    assert parsed.files["a.py"] == FileResult(
        "ok", (f"{PATH}:7: warning: nosec encountered (B608), but no failed test",)
    )
    assert parsed.other == []  # nothing left over: the results can be cached
