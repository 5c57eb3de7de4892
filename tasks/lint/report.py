"""The CI formats of ``inv lint --format``: SARIF 2.1.0, GitHub annotations, JUnit XML, JSON.

Pure functions: the check outcomes (each tool's per-file results, :mod:`tasks.lint.findings`)
become :class:`Finding` rows with a stable identity -- tool, rule, path, line and a
*fingerprint* that does not move when lines above the finding do (a hash of the tool, rule,
path, the message without its location, and the finding's rank among equal ones in that file,
as trunk's and GitHub code scanning's fingerprints) -- and the rows become a document.
A tool's crash (or a file it could not read) is a finding of rule ``error`` at level error, so
a CI job sees it as its exit code 2 says.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tasks.lint.findings import PATH
from tasks.lint.plan import Outcome
from tasks.lint.tools import ERROR, FINDINGS

FORMATS = ("text", "sarif", "github", "junit", "json")
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
FINGERPRINT_KEY = "flowletLint/v1"
_LOCATED = re.compile(r"^\0:(\d+)(?::(\d+))?:? ?(.*)$", re.S)
_CODE = re.compile(r"^([A-Z]+[0-9]+)\b\s*(.*)$", re.S)
_ESLINT = re.compile(r"^(error|warning) (.*?)(?: \(([^()\s]+)\))?$", re.S)
_BANDIT = re.compile(r"^(B\d+) \[(\w+)/(\w+)\] (.*)$", re.S)
_SECRET = re.compile(r"^([^:]+): (.*)$", re.S)
# findings that name no line: what a rule id is for each tool's whole-file complaint
WHOLE_FILE = {
    "black": "would-reformat",
    "isort": "unsorted-imports",
    "prettier": "unformatted",
    "ruff-format": "unformatted",
}


@dataclass(frozen=True)
class Finding:
    """One finding, with its identity (tool, rule, path, line, fingerprint)."""

    tool: str
    rule: str
    path: str
    line: int  # 0: the whole file (or no file)
    column: int
    level: str  # "error", "warning" or "note"
    message: str
    fingerprint: str = ""


def _parse_line(tool: str, status: str, text: str) -> tuple[str, int, int, str, str]:
    """(rule, line, column, level, message) of one result line (``PATH`` where the file goes)."""
    line = column = 0
    located = _LOCATED.match(text)
    rest = located.group(3) if located else " ".join(text.replace(PATH, "").split())
    if located:
        line, column = int(located.group(1)), int(located.group(2) or 0)
    level = "error" if status in (FINDINGS, ERROR) else "warning"
    if status == ERROR:
        return "error", line, column, "error", rest
    if tool == "eslint" and (match := _ESLINT.match(rest)):
        kind, message, rule = match.groups()
        return rule or "eslint", line, column, kind, message
    if tool == "bandit" and (match := _BANDIT.match(rest)):
        test, severity, _confidence, message = match.groups()
        rank = {"HIGH": "error", "MEDIUM": "error", "LOW": "warning"}
        return test, line, column, rank.get(severity, "warning"), f"[{severity}] {message}"
    if tool == "bandit" and rest.startswith("warning: "):
        return "nosec", line, column, "note", rest[len("warning: ") :]
    if tool == "detect-secrets" and (match := _SECRET.match(rest)):
        return match.group(1), line, column, "error", match.group(0)
    if match := _CODE.match(rest):  # flake8, ruff check: "F401 'os' imported but unused"
        return match.group(1), line, column, level, match.group(2).removeprefix("[*] ")
    rest = rest.removeprefix("ERROR: ").removeprefix("[warn]").strip()  # isort, prettier
    return WHOLE_FILE.get(tool, tool), line, column, level, rest or "not formatted as it would be"


def collect(outcomes: Sequence[Outcome]) -> list[Finding]:
    """Every finding of the check outcomes, in report order, fingerprinted."""
    rows: list[Finding] = []
    for outcome in outcomes:
        if outcome.step.mode != "check":
            continue
        tool = outcome.step.tool.name
        for display, result in outcome.results:
            for text in result.lines:
                rule, line, column, level, message = _parse_line(tool, result.status, text)
                if result.status == "ok" and level == "error":
                    level = "warning"  # lines a tool printed without failing the file
                rows.append(Finding(tool, rule, display, line, column, level, message))
        if outcome.result == ERROR and outcome.other:
            message = "\n".join(outcome.other)
            rows.append(Finding(tool, "error", "", 0, 0, "error", message))
    return fingerprinted(rows)


def fingerprinted(rows: Sequence[Finding]) -> list[Finding]:
    """Each row with its fingerprint: tool, rule, path, message and rank among equal rows."""
    seen: dict[tuple[str, str, str, str], int] = {}
    out = []
    for row in rows:
        key = (row.tool, row.rule, row.path, row.message)
        rank = seen[key] = seen.get(key, -1) + 1
        digest = hashlib.sha256("\0".join((*key, str(rank))).encode()).hexdigest()[:32]
        out.append(Finding(**{**asdict(row), "fingerprint": digest}))
    return out


def to_json(rows: Sequence[Finding], outcomes: Sequence[Outcome]) -> str:
    tools = [
        {"tool": o.step.label, "files": len(o.step.files), "cached": o.cached,
         "result": o.result, "seconds": round(o.seconds, 3)}
        for o in outcomes
    ]  # fmt: skip
    document = {"version": 1, "findings": [asdict(r) for r in rows], "tools": tools}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def to_sarif(rows: Sequence[Finding], outcomes: Sequence[Outcome]) -> str:
    """One SARIF run per tool that ran (a clean tool: a run with no results)."""
    names = list(dict.fromkeys(o.step.tool.name for o in outcomes if o.step.mode == "check"))
    runs = []
    for name in names:
        mine = [r for r in rows if r.tool == name]
        rules = sorted({r.rule for r in mine})
        results = []
        for row in mine:
            result: dict[str, object] = {
                "ruleId": row.rule,
                "ruleIndex": rules.index(row.rule),
                "level": row.level,
                "message": {"text": row.message or row.rule},
                "partialFingerprints": {FINGERPRINT_KEY: row.fingerprint},
            }
            if row.path:
                physical: dict[str, object] = {"artifactLocation": {"uri": row.path}}
                if row.line > 0:
                    region = {"startLine": row.line}
                    if row.column > 0:
                        region["startColumn"] = row.column
                    physical["region"] = region
                result["locations"] = [{"physicalLocation": physical}]
            results.append(result)
        driver = {"name": name, "rules": [{"id": rule} for rule in rules]}
        runs.append({"tool": {"driver": driver}, "results": results})
    document = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(rows: Sequence[Finding]) -> str:
    """GitHub Actions workflow commands: ``::error file=...,line=...,col=...,title=...::msg``."""
    lines = []
    for row in rows:
        command = {"error": "error", "warning": "warning"}.get(row.level, "notice")
        props = []
        if row.path:
            props.append(f"file={_escape_property(row.path)}")
            if row.line > 0:
                props.append(f"line={row.line}")
                if row.column > 0:
                    props.append(f"col={row.column}")
        props.append(f"title={_escape_property(f'{row.tool} {row.rule}')}")
        lines.append(f"::{command} {','.join(props)}::{_escape_data(row.message or row.rule)}")
    return "".join(line + "\n" for line in lines)


def to_junit(rows: Sequence[Finding], outcomes: Sequence[Outcome]) -> str:
    """One testsuite per tool, one testcase per file it checked (failure: its findings)."""
    from xml.etree import ElementTree as ET  # nosec B405  # writes XML, parses none

    root = ET.Element("testsuites", name="lint")
    for outcome in outcomes:
        if outcome.step.mode != "check":
            continue
        tool = outcome.step.tool.name
        mine = [r for r in rows if r.tool == tool]
        suite = ET.SubElement(root, "testsuite", name=outcome.step.label)
        failures = errors = 0
        for display, result in outcome.results:
            case = ET.SubElement(suite, "testcase", classname=tool, name=display)
            found = [r for r in mine if r.path == display and r.level == "error"]
            if found:
                kind = "error" if result.status == ERROR else "failure"
                failures += kind == "failure"
                errors += kind == "error"
                text = "\n".join(
                    f"{r.path}:{r.line}:{r.column}: {r.rule} {r.message}" for r in found
                )
                element = ET.SubElement(case, kind, message=f"{len(found)} finding(s)", type=tool)
                element.text = text
        loose = [r for r in mine if not r.path]
        if loose:
            case = ET.SubElement(suite, "testcase", classname=tool, name="(tool)")
            element = ET.SubElement(case, "error", message="tool error", type=tool)
            element.text = "\n".join(r.message for r in loose)
            errors += 1
        suite.set("tests", str(len(suite)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("time", f"{outcome.seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def render(fmt: str, outcomes: Sequence[Outcome]) -> str:
    """The document of format ``fmt`` (not "text") for ``outcomes``."""
    rows = collect(outcomes)
    if fmt == "sarif":
        return to_sarif(rows, outcomes)
    if fmt == "github":
        return to_github(rows)
    if fmt == "junit":
        return to_junit(rows, outcomes)
    return to_json(rows, outcomes)
