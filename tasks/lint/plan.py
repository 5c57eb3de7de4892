"""Pure planning and reporting: targets and tools -> steps; outcomes -> blocks, table, code.

A :class:`Step` is one tool in check or fix mode on some files of one tree (what ``--dry``
prints and the tests assert). :func:`plan_check` gives one single-step chain per tool and tree
(they run in parallel, heaviest first); :func:`plan_fix` one chain per tree and side, its fixers
in :data:`~tasks.lint.tools.FIX_ORDER`. The report is deterministic: blocks come in plan order
and hold no timings, so a warm run prints the same blocks as a cold one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tasks.lint import tools as tools_
from tasks.lint.files import ESLINT_SUFFIXES, Layout, Target, under
from tasks.lint.findings import FileResult
from tasks.lint.tools import ERROR, FINDINGS, OK, Tool

SKIP_SOURCES = ("--skip", "SKIP", "lint.skip")


@dataclass(frozen=True)
class Step:
    """One command: a tool in check or fix mode on files (relative to ``cwd``)."""

    tool: Tool
    mode: str  # "check" or "fix"
    binary: str
    cwd: Path
    tree_root: Path
    files: tuple[str, ...]
    display: tuple[str, ...]  # the files' names in the output, in the same order
    suffix: str = ""  # which tree, when there are several (" [feature]")
    kilobytes: tuple[float, ...] = ()  # the files' sizes, in the same order (for estimate)

    @property
    def label(self) -> str:
        return self.tool.name + (" --fix" if self.mode == "fix" else "") + self.suffix

    def estimate(self, files: Sequence[str] | None = None) -> float:
        """Expected CPU seconds on ``files`` (all: None): the tool's start plus its input."""
        start, per_kb = self.tool.cost
        if files is None:
            return start + per_kb * sum(self.kilobytes)
        chosen = set(files)
        size = sum(kb for name, kb in zip(self.files, self.kilobytes) if name in chosen)
        return start + per_kb * size

    def argv(self, files: Sequence[str] | None = None) -> tuple[str, ...]:
        chosen = self.files if files is None else tuple(files)
        return tools_.argv(self.tool, self.mode, self.binary, chosen)


def bandit_excluded(rel: str, excludes: Sequence[str]) -> bool:
    """Bandit's ``exclude_dirs``: a path component, or a path prefix."""
    parts = Path(rel).parts
    path = Path(rel)
    return any(e in parts or under(path, [Path(e)]) for e in excludes)


def tool_files(
    tool: Tool, target: Target, layout: Layout, bandit_excludes: Sequence[str]
) -> tuple[Path, tuple[str, ...], tuple[str, ...]]:
    """(cwd, files relative to it, display names) of ``tool`` on ``target``."""
    tree = target.tree
    if tool.files == "secrets":  # every file linted, from the top of the tree
        rels = (*target.python, *target.js)
        return tree.root, rels, tuple(layout.display(tree.origin / r) for r in rels)
    if tool.side == "python":
        rels = target.python
        if tool.files == "bandit":
            rels = tuple(r for r in rels if not bandit_excluded(r, bandit_excludes))
        cwd, files = tree.root, rels
    else:
        rels = target.js
        if tool.files == "eslint":
            rels = tuple(r for r in rels if Path(r).suffix in ESLINT_SUFFIXES)
        cwd = tree.frontend(layout)
        files = tuple(os.path.relpath(tree.root / r, cwd) for r in rels)
    return cwd, files, tuple(layout.display(tree.origin / r) for r in rels)


def steps_for(
    target: Target,
    chosen: Sequence[Tool],
    mode: str,
    layout: Layout,
    binaries: Mapping[str, str],
    bandit_excludes: Sequence[str],
    suffix: str = "",
) -> list[Step]:
    steps = []
    for tool in chosen:
        if mode == "fix" and tool.fix is None:
            continue
        cwd, files, display = tool_files(tool, target, layout, bandit_excludes)
        if files:
            binary, sizes = binaries[tool.name], tuple(_kilobytes(cwd / f) for f in files)
            steps.append(
                Step(tool, mode, binary, cwd, target.tree.root, files, display, suffix, sizes)
            )
    return steps


def _kilobytes(path: Path) -> float:
    try:
        return path.stat().st_size / 1024
    except OSError:
        return 0.0


def plan_check(steps: Sequence[Step]) -> list[list[Step]]:
    """One single-step chain per step, the most expensive first (they run in parallel: the
    longest first is what keeps both CPUs busy to the end)."""
    return [[s] for s in sorted(steps, key=lambda s: (-s.estimate(), s.label))]


def plan_fix(steps: Sequence[Step]) -> list[list[Step]]:
    """One chain per tree and side: its fixers in FIX_ORDER, one after another."""
    chains: dict[tuple[Path, str], list[Step]] = {}
    for step in steps:
        chains.setdefault((step.tree_root, step.tool.side), []).append(step)
    return [
        sorted(chain, key=lambda s: tools_.FIX_ORDER.index(s.tool.name))
        for chain in chains.values()
    ]


def parse_skip(text: str, source: str, *, lenient: bool = False) -> tuple[str, ...]:
    """``a,b`` tool names; an unknown one fails naming ``source`` (``lenient``: ignored --
    under pre-commit, SKIP also names other hooks)."""
    from tasks.core.errors import ConfigError
    from tasks.lint.settings import TOOL_NAMES

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in TOOL_NAMES]
    if unknown and not lenient:
        raise ConfigError(
            f"{source}: {unknown[0]!r} is not a lint tool; valid: {', '.join(TOOL_NAMES)}"
        )
    return tuple(n for n in names if n in TOOL_NAMES)


@dataclass(frozen=True)
class Outcome:
    """What one step did: its result, its report block, how many files came from the cache."""

    step: Step
    returncode: int | None  # None: not run (every file cached, or could not start)
    seconds: float
    result: str
    body: tuple[str, ...] = ()
    cached: int = 0
    detail: str = field(default="", compare=False)  # e.g. "exit 2", "not run"
    # a check's per-file results (display name, result) and its lines about no one file: what
    # the CI formats (tasks.lint.report) are made of
    results: tuple[tuple[str, FileResult], ...] = field(default=(), compare=False)
    other: tuple[str, ...] = field(default=(), compare=False)

    @property
    def block(self) -> str:
        n = len(self.step.files)
        head = f"── {self.step.label}: {n} file{'' if n == 1 else 's'}, {self.shown} ──"
        return "\n".join([head, *self.body]) + "\n"

    @property
    def shown(self) -> str:
        if self.step.mode == "fix" and self.result != ERROR:
            return "ran"
        if self.result == ERROR and self.detail:
            return f"error ({self.detail})"
        return self.result


def finding_counts(outcomes: Sequence[Outcome]) -> dict[int, int]:
    """How many findings each check outcome reported (by its index): its error-level rows of
    :func:`tasks.lint.report.collect` (a crash counts in no column: its result says it)."""
    from tasks.lint import report

    counts: dict[int, int] = {}
    for index, outcome in enumerate(outcomes):
        if outcome.step.mode == "check":
            rows = report.collect([outcome])
            counts[index] = sum(r.level == "error" and r.rule != "error" for r in rows)
    return counts


def summary(outcomes: Sequence[Outcome], skipped: Mapping[str, str], fix_command: str) -> str:
    """The table: tool, files, from the cache, seconds, findings, result, what to do about it;
    then the total of findings."""
    rows = [("tool", "files", "cached", "seconds", "findings", "result", "fix")]
    counts = finding_counts(outcomes)
    for index, o in enumerate(outcomes):
        hint = "" if o.step.mode == "fix" else tools_.fix_hint(o.step.tool, o.result, fix_command)
        found = str(counts[index]) if index in counts else "-"
        rows.append(
            (o.step.label, str(len(o.step.files)), str(o.cached), f"{o.seconds:.2f}", found,
             o.shown, hint)
        )  # fmt: skip
    for name, source in skipped.items():
        rows.append((name, "-", "-", "-", "-", f"skipped ({source})", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [row[i].rjust(widths[i]) for i in (1, 2, 3, 4)]
        cells += [row[5].ljust(widths[5]), row[6]]
        lines.append("  ".join(cells).rstrip())
    total = sum(counts.values())
    if total:
        lines += ["", f"lint: {total} finding{'' if total == 1 else 's'}"]
    return "\n".join(lines) + "\n"


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """0 clean, 1 findings, 2 if any tool crashed (crashes win: they hide findings). Fixers
    count only when they crashed (the re-check after them says what is left)."""
    results = {o.result for o in outcomes if o.step.mode == "check" or o.result == ERROR}
    if ERROR in results:
        return 2
    if FINDINGS in results:
        return 1
    assert results <= {OK}  # nosec B101  # the three results are exhaustive
    return 0


def fix_command(sides: Sequence[str], changed: bool, engine: str) -> str:
    name = "lint" if len(sides) == 2 else f"lint.{sides[0]}"
    extra = (" --changed" if changed else "") + (" --engine ruff" if engine == "ruff" else "")
    return f"inv {name} --fix{extra}"


def dry_lines(
    chains: Sequence[Sequence[Step]], render: Callable[[Sequence[str]], str]
) -> list[str]:
    """What ``--dry`` prints: each chain's commands, ``&&``-joined, with their directories."""
    return [" && ".join(f"(cd {s.cwd} && {render(s.argv())})" for s in chain) for chain in chains]
