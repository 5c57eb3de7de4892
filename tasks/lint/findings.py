"""Parsers of the tools' check output: one :class:`FileResult` per file the tool was given.

Splitting the output per file is what lets the result cache keep findings (a warm run prints a
file's findings from the cache, exactly as a cold run prints them from the tool) and what lets
a snapshot of a commit be reported with the repository's paths: a result's lines hold
:data:`PATH` where the file's name goes, and :func:`render` puts the display name there.
Pure functions: text in, results out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tasks.lint.tools import ERROR, FINDINGS, OK

PATH = "\0"  # where the file's display name goes in a result line
_LOCATION = re.compile(r":(\d+):(\d+): ")


@dataclass(frozen=True)
class FileResult:
    """What one tool said about one file."""

    status: str  # ok, findings or error
    lines: tuple[str, ...] = ()

    def to_json(self) -> list[object]:
        return [self.status, list(self.lines)]

    @classmethod
    def from_json(cls, data: object) -> FileResult | None:
        if not (isinstance(data, list) and len(data) == 2 and data[0] in (OK, FINDINGS)):
            return None
        status, lines = data
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            return None
        return cls(status, tuple(lines))


@dataclass
class Parsed:
    """Per-file results (every file given: ok unless the output says otherwise) and the lines
    that are about no one file (shown, never cached)."""

    files: dict[str, FileResult]
    other: list[str] = field(default_factory=list)


def render(result: FileResult, display: str) -> list[str]:
    return [line.replace(PATH, display) for line in result.lines]


class _Collector:
    def __init__(self, names: Sequence[str], cwd: str) -> None:
        self.names = set(names)
        self.cwd = cwd
        self.lines: dict[str, list[str]] = {}
        self.status: dict[str, str] = {}
        self.other: list[str] = []
        real = os.path.realpath(cwd)
        self.by_abs = {os.path.normpath(os.path.join(real, n)): n for n in names}
        self.by_abs.update({os.path.normpath(os.path.join(cwd, n)): n for n in names})

    def name_of(self, path: str) -> str | None:
        """A path as a tool printed it (as given, ``./``-prefixed or absolute) -> our name."""
        if path in self.names:
            return path
        if os.path.isabs(path):
            return self.by_abs.get(os.path.normpath(path)) or self.by_abs.get(
                os.path.normpath(os.path.realpath(path))
            )
        norm = os.path.normpath(path)
        return norm if norm in self.names else None

    def add(self, name: str, status: str, line: str) -> None:
        self.lines.setdefault(name, []).append(line)
        rank = (OK, FINDINGS, ERROR)
        if rank.index(status) >= rank.index(self.status.get(name, OK)):
            self.status[name] = status

    def located(self, line: str) -> tuple[str, str] | None:
        """``<path>:<line>:<col>: rest`` -> (name, ``PATH:line:col: rest``)."""
        for match in _LOCATION.finditer(line):
            name = self.name_of(line[: match.start()])
            if name is not None:
                return name, PATH + line[match.start() :]
        return None

    def result(self) -> Parsed:
        files = {
            name: FileResult(self.status.get(name, OK), tuple(self.lines.get(name, ())))
            for name in self.names
        }
        return Parsed(files, self.other)


def _keep(lines: Iterable[str], drop: re.Pattern[str]) -> list[str]:
    return [line for line in lines if line.strip() and not drop.match(line)]


def flake8(out: _Collector, stdout: str, stderr: str) -> None:
    for line in _keep(stdout.splitlines(), re.compile(r"^$")):
        hit = out.located(line)
        if hit:
            out.add(hit[0], FINDINGS, hit[1])
        else:
            out.other.append(line)
    out.other.extend(_keep(stderr.splitlines(), re.compile(r"^$")))


_BLACK_SUMMARY = re.compile(r"^(All done!|Oh no!|\d+ files? (would|reformatted|left|failed))")


_BLACK_TARGET = re.compile(r"^error: cannot parse for target version [^:]+: ")


def _black_error(out: _Collector, line: str) -> tuple[str, str] | None:
    """``error: cannot format <path>: ...`` / ``error: cannot parse: <path>:1:6`` /
    ``error: cannot parse for target version Python 3.12: <path>:1:6`` (a target version set
    in pyproject.toml, or inferred from ``requires-python``)."""
    target = _BLACK_TARGET.match(line)
    heads = (target.group(0),) if target else ("error: cannot format ", "error: cannot parse: ")
    for head in heads:
        if line.startswith(head):
            rest = line[len(head) :]
            for colon in re.finditer(":", rest):
                name = out.name_of(rest[: colon.start()])
                if name is not None:
                    return name, head + PATH + rest[colon.start() :]
    return None


def black(out: _Collector, stdout: str, stderr: str) -> None:
    current: str | None = None  # an error's continuation lines (the source, a caret) follow it
    for line in (stdout + "\n" + stderr).splitlines():
        if not line.strip() or _BLACK_SUMMARY.match(line):
            current = None
            continue
        reformat = line.startswith("would reformat ")
        name = out.name_of(line[len("would reformat ") :]) if reformat else None
        if name is not None:
            out.add(name, FINDINGS, "would reformat " + PATH)
            current = None
            continue
        error = _black_error(out, line) if line.startswith("error: ") else None
        if error is not None:
            current = error[0]
            out.add(current, ERROR, error[1])
        elif current is not None:
            out.add(current, ERROR, line)
        else:
            out.other.append(line)


_ISORT = re.compile(r"^ERROR: (.+) Imports are incorrectly sorted and/or formatted\.$")


def isort(out: _Collector, stdout: str, stderr: str) -> None:
    for line in _keep((stdout + "\n" + stderr).splitlines(), re.compile(r"^Skipped \d+ files?$")):
        match = _ISORT.match(line)
        name = out.name_of(match.group(1)) if match else None
        if name is not None:
            out.add(
                name, FINDINGS, f"ERROR: {PATH} Imports are incorrectly sorted and/or formatted."
            )
        else:
            out.other.append(line)


_BANDIT_LOG = re.compile(r"^\[\w+\]\s+WARNING\s+(.*)$")
_BANDIT_ON_FILE = re.compile(r",? on file (.+):(\d+)$")


def bandit(out: _Collector, stdout: str, stderr: str) -> None:
    report = json.loads(stdout)  # ValueError: not a report (the caller: a crash)
    for error in report.get("errors", []):
        name = out.name_of(str(error.get("filename", "")))
        reason = error.get("reason", "?")
        if name is None:
            out.other.append(f"{error.get('filename')}: not scanned: {reason}")
        else:
            out.add(name, ERROR, f"{PATH}: error: Bandit could not scan this file: {reason}")
    for item in report.get("results", []):
        name = out.name_of(str(item.get("filename", "")))
        text = (
            f"{item.get('test_id')} [{item.get('issue_severity')}/"
            f"{item.get('issue_confidence')}] {item.get('issue_text')}"
        )
        where = f"{item.get('line_number')}:{int(item.get('col_offset') or 0) + 1}"
        if name is None:
            out.other.append(f"{item.get('filename')}:{where}: {text}")
        else:
            out.add(name, FINDINGS, f"{PATH}:{where}: {text}")
    for line in _keep(stderr.splitlines(), re.compile(r"^$")):
        log = _BANDIT_LOG.match(line)
        on_file = _BANDIT_ON_FILE.search(log.group(1)) if log else None
        name = out.name_of(on_file.group(1)) if on_file else None
        if log and on_file and name is not None:  # "nosec encountered ... on file ./x.py:12"
            text = log.group(1)[: on_file.start()]
            out.add(name, OK, f"{PATH}:{on_file.group(2)}: warning: {text}")
        elif log and log.group(1).startswith("Test in comment: "):
            continue  # words after a nosec marker that name no test: no file named, nothing changes
        else:
            out.other.append(line)


_RUFF_SUMMARY = re.compile(
    r"^(Found \d+ errors?|\[\*\] \d+ fix|No fixes available|All checks passed|"
    r"\d+ files? (would be|already|left|reformatted))"
)


def ruff(out: _Collector, stdout: str, stderr: str, *, formatter: bool) -> None:
    for line in _keep((stdout + "\n" + stderr).splitlines(), _RUFF_SUMMARY):
        hit = out.located(line)
        if hit is None:
            out.other.append(line)
            continue
        name, text = hit
        status = FINDINGS
        if formatter and ": unformatted: " not in text:
            status = ERROR  # invalid-syntax and the like: the formatter could not read it
        out.add(name, status, text)


ESLINT_UNCONFIGURED = (
    "error: ESLint has no configuration for this file: add a config object whose `files` "
    "pattern matches it to the frontend's eslint.config.js (for .ts/.tsx: typescript-eslint's "
    "configs), or leave it out of lint.js_paths"
)
ESLINT_EXTERNAL = (
    "error: ESLint cannot lint this file: it is outside the directory of its eslint.config.js "
    "(lint.frontend); move it there or leave it out of lint.js_paths"
)
ESLINT_IGNORED = (
    "error: ESLint's config ignores this file (an `ignores` pattern of eslint.config.js), so "
    "nothing checked it: remove the pattern, or leave the file out of lint.js_paths"
)


def eslint(out: _Collector, stdout: str, stderr: str) -> None:
    results = json.loads(stdout)  # ValueError: not a report (the caller: a crash)
    if not isinstance(results, list):
        raise ValueError("not a list of results")
    for item in results:
        path = str(item.get("filePath", ""))
        name = out.name_of(path)
        for message in item.get("messages", []):
            text = " ".join(str(message.get("message", "")).split())
            severity = message.get("severity")
            if message.get("ruleId") is None and text.startswith("File ignored "):
                if "no matching configuration" in text:
                    status, line = ERROR, f"{PATH}: {ESLINT_UNCONFIGURED}"
                elif "outside of base path" in text:
                    status, line = ERROR, f"{PATH}: {ESLINT_EXTERNAL}"
                else:
                    status, line = ERROR, f"{PATH}: {ESLINT_IGNORED}"
            else:
                kind = "error" if severity == 2 else "warning"
                rule = f" ({message['ruleId']})" if message.get("ruleId") else ""
                where = f"{message.get('line', 0)}:{message.get('column', 0)}"
                status = FINDINGS if severity == 2 else OK
                line = f"{PATH}:{where}: {kind} {text}{rule}"
            if name is None:
                out.other.append(line.replace(PATH, path))
            else:
                out.add(name, status, line)
    out.other.extend(_keep(stderr.splitlines(), re.compile(r"^$")))


def prettier(out: _Collector, stdout: str, stderr: str) -> None:
    for line in _keep(stdout.splitlines(), re.compile(r"^$")):
        name = out.name_of(line.strip())
        if name is not None:
            out.add(name, FINDINGS, "[warn] " + PATH)
        else:
            out.other.append(line)
    current: str | None = None
    for line in _keep(stderr.splitlines(), re.compile(r"^$")):
        if line.startswith("[error] "):
            rest = line[len("[error] ") :]
            head = rest.split(": ", 1)[0] if ": " in rest else ""
            name = out.name_of(head) if head else None
            if name is not None:
                current = name
                out.add(name, ERROR, "[error] " + PATH + rest[len(head) :])
                continue
            if current is not None:
                out.add(current, ERROR, line)
                continue
        current = None
        out.other.append(line)


PARSERS: dict[str, Callable[[_Collector, str, str], None]] = {
    "flake8": flake8,
    "black": black,
    "isort": isort,
    "bandit": bandit,
    "ruff-check": lambda out, o, e: ruff(out, o, e, formatter=False),
    "ruff-format": lambda out, o, e: ruff(out, o, e, formatter=True),
    "detect-secrets": flake8,  # path:line:1: <type>: <masked> (tasks/lint/scanner)
    "eslint": eslint,
    "prettier": prettier,
}


def parse(parser: str, names: Sequence[str], cwd: str, stdout: str, stderr: str) -> Parsed | None:
    """Per-file results of one check run on ``names`` (relative to ``cwd``); None when the
    output is not what the tool prints (a crash, a tool of another version)."""
    out = _Collector(names, cwd)
    try:
        PARSERS[parser](out, stdout, stderr)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    return out.result()
