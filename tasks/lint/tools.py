"""The linters: what each one is, the argv it gets, and what its exit code means.

Pure functions only: :func:`python_tools` / :func:`js_tools` define the tools,
:func:`plan_check` / :func:`plan_fix` turn tools and files into :class:`Step` chains (what
``--dry`` prints and what the tests assert), :func:`classify` turns an exit code into a result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ENGINES = ("default", "ruff")
SIDES = ("python", "js")

# Results of one tool run.
OK, FINDINGS, ERROR = "ok", "findings", "error"


@dataclass(frozen=True)
class Tool:
    """One linter: ``binary`` plus ``check`` (read-only) or ``fix`` arguments, then files."""

    name: str
    side: str  # "python" or "js"
    binary: str  # console script (Python) or node_modules/.bin name (JS)
    package: str  # what pip / npm installs
    check: tuple[str, ...]
    fix: tuple[str, ...] | None  # None: the tool reports only, fix by hand
    files: str  # which file list it gets: "python", "bandit", "eslint" or "prettier"
    findings_codes: frozenset[int] = frozenset({1})
    weight: int = 1  # expected cost: heavier tools start first
    hint: str = ""  # how to fix findings when the tool has no fixer


def python_tools(engine: str, *, bandit_config: str | None, ruff_select: str) -> list[Tool]:
    """The Python tools of ``engine`` (Bandit in both: Ruff's S rules are not Bandit)."""
    bandit = Tool(
        name="bandit", side="python", binary="bandit", package="bandit",
        check=("-q", *(("-c", bandit_config) if bandit_config else ())), fix=None,
        files="bandit", weight=4, hint="fix by hand, or '# nosec BXXX' with a reason",
    )  # fmt: skip
    if engine == "ruff":
        select = ("--select", ruff_select) if ruff_select else ()
        return [
            bandit,
            Tool(name="ruff-check", side="python", binary="ruff", package="ruff",
                 check=("check", *select), fix=("check", "--fix", *select), files="python"),
            Tool(name="ruff-format", side="python", binary="ruff", package="ruff",
                 check=("format", "--check"), fix=("format",), files="python"),
        ]  # fmt: skip
    return [
        bandit,
        Tool(name="flake8", side="python", binary="flake8", package="flake8", check=(),
             fix=None, files="python", weight=3, hint="fix by hand (flake8 reports only)"),
        Tool(name="black", side="python", binary="black", package="black", check=("--check",),
             fix=("--quiet",), files="python", weight=2),
        Tool(name="isort", side="python", binary="isort", package="isort",
             check=("--check-only",), fix=("--quiet",), files="python"),
    ]  # fmt: skip


def js_tools(cache_dir: Path | None = None) -> list[Tool]:
    """ESLint and Prettier, from the frontend's node_modules (exit 2 = crash for both).

    With ``cache_dir`` both keep their caches there (keyed by file content and config, so a
    re-run only re-checks what changed): the biggest saving on a pre-push.
    """
    eslint_cache: tuple[str, ...] = ()
    prettier_cache: tuple[str, ...] = ()
    if cache_dir is not None:
        eslint_cache = ("--cache", "--cache-location", f"{cache_dir / 'eslint'}{os.sep}")
        prettier_cache = ("--cache", "--cache-location", str(cache_dir / "prettier.json"))
    return [
        Tool(name="eslint", side="js", binary="eslint", package="eslint",
             check=("--no-warn-ignored", *eslint_cache),
             fix=("--fix", "--no-warn-ignored", *eslint_cache), files="eslint", weight=3),
        Tool(name="prettier", side="js", binary="prettier", package="prettier",
             check=("--check", *prettier_cache),
             fix=("--write", "--log-level", "warn", *prettier_cache), files="prettier", weight=2),
    ]  # fmt: skip


# Tools that write the same files run in this order in --fix (isort before black, as the
# black profile of isort expects black to have the last word).
FIX_ORDER = ("isort", "black", "ruff-check", "ruff-format", "eslint", "prettier")


@dataclass(frozen=True)
class Step:
    """One command: a tool in check or fix mode on files, run in ``cwd``."""

    tool: Tool
    mode: str  # "check" or "fix"
    argv: tuple[str, ...]
    cwd: Path
    files: tuple[str, ...]
    cached: int = 0  # files left out because they were clean last time (cache.CleanCache)

    @property
    def label(self) -> str:
        return self.tool.name if self.mode == "check" else f"{self.tool.name} --fix"


@dataclass(frozen=True)
class FileSet:
    """Files per tool input, relative to the project root (JS ones to the frontend dir)."""

    python: tuple[str, ...] = ()
    bandit: tuple[str, ...] = ()
    eslint: tuple[str, ...] = ()
    prettier: tuple[str, ...] = ()

    def for_tool(self, tool: Tool) -> tuple[str, ...]:
        return tuple(getattr(self, tool.files))

    @property
    def empty(self) -> bool:
        return not (self.python or self.bandit or self.eslint or self.prettier)


def step(tool: Tool, mode: str, files: FileSet, binary: str, cwd: Path) -> Step:
    args = tool.check if mode == "check" else tool.fix
    assert args is not None  # nosec B101  # plan_fix passes fixers only
    chosen = files.for_tool(tool)
    return Step(tool, mode, (binary, *args, *chosen), cwd, chosen)


def plan_check(
    tools: Sequence[Tool], files: FileSet, binaries: dict[str, str], cwds: dict[str, Path]
) -> list[list[Step]]:
    """One single-step chain per tool that has files, heaviest first (they run in parallel)."""
    chains = [
        [step(t, "check", files, binaries[t.name], cwds[t.side])]
        for t in sorted(tools, key=lambda t: -t.weight)
        if files.for_tool(t)
    ]
    return chains


def plan_fix(
    tools: Sequence[Tool], files: FileSet, binaries: dict[str, str], cwds: dict[str, Path]
) -> list[list[Step]]:
    """One chain per side: its fixers in :data:`FIX_ORDER`, one after another."""
    chains: list[list[Step]] = []
    for side in SIDES:
        fixers = [t for t in tools if t.side == side and t.fix is not None and files.for_tool(t)]
        fixers.sort(key=lambda t: FIX_ORDER.index(t.name))
        if fixers:
            chains.append([step(t, "fix", files, binaries[t.name], cwds[side]) for t in fixers])
    return chains


def classify(tool: Tool, returncode: int | None, stderr: str) -> str:
    """``ok``, ``findings`` (the tool's own "found problems" code) or ``error`` (it crashed).

    A missing binary (``None``), a signal (negative code), any code the tool does not use for
    findings (Black 123, ESLint/Prettier/Ruff 2, usage errors), or a Python traceback on stderr
    behind a findings code (flake8, isort and bandit exit 1 on an uncaught exception) is a crash.
    """
    if returncode == 0:
        return OK
    if returncode is None or returncode < 0 or returncode not in tool.findings_codes:
        return ERROR
    if tool.side == "python" and "Traceback (most recent call last)" in stderr:
        return ERROR
    return FINDINGS


def fix_hint(tool: Tool, result: str, fix_command: str) -> str:
    """The summary's last column: what to run (or do) about a failed tool."""
    if result == OK:
        return ""
    if result == ERROR:
        return "tool error: see its output above"
    if tool.fix is None:
        return tool.hint
    return fix_command
