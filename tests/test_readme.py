"""README's contract: every command line README.md shows is run, as written, by a test.

The tests that run them are marked ``@readme("<command line>")`` (conftest.readme); this test
finds those marks in the test sources (without running them) and compares both ways: a README
command no test runs fails, and so does a mark naming a command README no longer shows.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO
from readme_commands import commands, is_synopsis

TESTS = Path(__file__).resolve().parent


def marked_commands() -> dict[str, list[str]]:
    """``{command: [test module:function, ...]}`` from every ``readme("...")`` call in tests/."""
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and getattr(decorator.func, "id", None) == "readme"
                ):
                    for arg in decorator.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            found.setdefault(arg.value, []).append(f"{path.name}:{node.name}")
    return found


def test_every_readme_command_is_run_by_a_test() -> None:
    shown = [c for c in commands(REPO / "README.md") if not is_synopsis(c)]
    marked = marked_commands()
    missing = [c for c in shown if c not in marked]
    assert not missing, "README commands no test runs (mark one with @readme):\n" + "\n".join(
        missing
    )


def test_every_readme_mark_names_a_command_readme_shows() -> None:
    shown = set(commands(REPO / "README.md"))
    stale = {c: where for c, where in marked_commands().items() if c not in shown}
    assert not stale, f"@readme marks for commands README does not show: {stale}"


def test_the_two_first_commands_are_install_and_run_and_install_and_test() -> None:
    text = (REPO / "README.md").read_text()
    blocks = [b for b in text.split("```sh\n")[1:3]]
    first, second = (b.split("```")[0].strip() for b in blocks)
    assert first == (
        "python3 -m pip install -e '.[dev]' && inv setup --env development"
        " && inv dev.start --detach"
    )
    assert second == "bash .ci/install && python3 -m pytest"
    ci = (REPO / ".ci" / "run").read_text()
    assert "\nbash .ci/install && python3 -m pytest\n" in ci
