"""`inv lint --format sarif|github|junit|json [--output FILE]`: the CI documents, their finding
identities (tool, rule, path, line, fingerprint), SARIF checked against the 2.1.0 schema."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET  # nosec B405  # parses our own output

import pytest

from tasks.lint import report
from tasks.lint.findings import PATH
from tasks.lint.report import Finding
from tests.fixtures_lint import AWS_LINE, BAD, LintProject

SCHEMA = Path(__file__).resolve().parent / "data" / "lint" / "sarif-schema-2.1.0.json"
# Every tool objects to one file of its own (all at once: one run, seven findings).
CORPUS = {
    "app/flake.py": BAD["flake8"][1],
    "app/quotes.py": BAD["black"][1],
    "app/order.py": BAD["isort"][1],
    "app/risky.py": BAD["bandit"][1],
    "app/creds.py": AWS_LINE,
    "web/src/unused.js": BAD["eslint"][1],
    "web/src/style.js": BAD["prettier"][1],
}


@pytest.mark.parametrize(
    "tool,status,line,expected",
    [
        ("flake8", "findings", f"{PATH}:1:1: F401 'os' imported but unused",
         ("F401", 1, 1, "error", "'os' imported but unused")),
        ("ruff-check", "findings", f"{PATH}:3:8: F401 [*] `os` imported but unused",
         ("F401", 3, 8, "error", "`os` imported but unused")),
        ("bandit", "findings", f"{PATH}:1:7: B307 [MEDIUM/HIGH] Use of possibly insecure function",
         ("B307", 1, 7, "error", "[MEDIUM] Use of possibly insecure function")),
        ("bandit", "ok", f"{PATH}:12: warning: nosec encountered (B608), but no failed test",
         ("nosec", 12, 0, "note", "nosec encountered (B608), but no failed test")),
        ("eslint", "findings", f"{PATH}:1:7: error 'unused' is assigned a value but never used. "
         "(no-unused-vars)", ("no-unused-vars", 1, 7, "error",
                              "'unused' is assigned a value but never used.")),
        ("eslint", "ok", f"{PATH}:2:1: warning Unexpected console statement. (no-console)",
         ("no-console", 2, 1, "warning", "Unexpected console statement.")),
        ("black", "findings", f"would reformat {PATH}",
         ("would-reformat", 0, 0, "error", "would reformat")),
        ("isort", "findings", f"ERROR: {PATH} Imports are incorrectly sorted and/or formatted.",
         ("unsorted-imports", 0, 0, "error",
          "Imports are incorrectly sorted and/or formatted.")),
        ("prettier", "findings", f"[warn] {PATH}",
         ("unformatted", 0, 0, "error", "not formatted as it would be")),
        ("detect-secrets", "findings", f"{PATH}:4:1: AWS Access Key: AK…LQ (20 characters)",
         ("AWS Access Key", 4, 1, "error", "AWS Access Key: AK…LQ (20 characters)")),
        ("black", "error", f"error: cannot parse: {PATH}:1:6: Cannot parse",
         ("error", 0, 0, "error", "error: cannot parse: :1:6: Cannot parse")),
    ],
    ids=["flake8", "ruff", "bandit", "bandit-nosec", "eslint", "eslint-warning", "black",
         "isort", "prettier", "secret", "black-error"],
)  # fmt: skip
def test_each_tools_line_becomes_rule_location_level_message(
    tool: str, status: str, line: str, expected: tuple[str, int, int, str, str]
) -> None:
    assert report._parse_line(tool, status, line) == expected


def test_a_fingerprint_does_not_move_with_the_line_and_tells_twins_apart() -> None:
    def rows(*lines: int) -> list[Finding]:
        return report.fingerprinted(
            [Finding("flake8", "F401", "a.py", n, 1, "error", "'os' imported") for n in lines]
        )

    before, after = rows(3, 9), rows(5, 12)  # two equal findings, both moved down
    assert [r.fingerprint for r in before] == [r.fingerprint for r in after]
    assert before[0].fingerprint != before[1].fingerprint
    other = report.fingerprinted(
        [Finding("flake8", "F401", "b.py", 3, 1, "error", "'os' imported")]
    )
    assert other[0].fingerprint != before[0].fingerprint


def test_github_annotations_escape_what_would_end_the_command() -> None:
    row = Finding("eslint", "no-x", "web/a,b:c.js", 3, 2, "error", "50% bad\nsecond line")
    assert report.to_github([row]) == (
        "::error file=web/a%2Cb%3Ac.js,line=3,col=2,title=eslint no-x::50%25 bad%0Asecond line\n"
    )
    whole_file = Finding("black", "would-reformat", "app/x.py", 0, 0, "error", "would reformat")
    assert report.to_github([whole_file]) == (
        "::error file=app/x.py,title=black would-reformat::would reformat\n"
    )


@pytest.fixture
def findings_everywhere(lint_project: LintProject) -> LintProject:
    for rel, text in CORPUS.items():
        lint_project.write(rel, text)
    return lint_project


def sarif_errors(document: object) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft4Validator(json.loads(SCHEMA.read_text()))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.slow
def test_sarif_to_a_file_validates_and_names_every_tools_findings(
    findings_everywhere: LintProject,
) -> None:
    result = findings_everywhere.inv("lint", "--format", "sarif", "--output", "lint.sarif")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tool " in result.stdout and result.stderr == ""  # the text report, as always
    document = json.loads((findings_everywhere.root / "lint.sarif").read_text())
    assert sarif_errors(document) == []
    found = {
        (run["tool"]["driver"]["name"], res["ruleId"],
         res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for run in document["runs"] for res in run["results"]
    }  # fmt: skip
    assert found == {
        ("flake8", "F401", "app/flake.py"),
        ("black", "would-reformat", "app/quotes.py"),
        ("isort", "unsorted-imports", "app/order.py"),
        ("bandit", "B307", "app/risky.py"),
        ("detect-secrets", "AWS Access Key", "app/creds.py"),
        ("eslint", "no-unused-vars", "web/src/unused.js"),
        ("prettier", "unformatted", "web/src/style.js"),
    }
    assert "AKIAIOSFODNN7EXAMPLQ" not in json.dumps(document)  # pragma: allowlist secret


@pytest.mark.slow
def test_json_on_stdout_keeps_identities_stable_when_lines_move(
    findings_everywhere: LintProject,
) -> None:
    first = findings_everywhere.inv("lint.python", "--format", "json")
    assert first.returncode == 1
    assert "── flake8: " in first.stderr  # the text went to stderr, the document to stdout
    rows = json.loads(first.stdout)["findings"]
    flake8 = next(r for r in rows if r["tool"] == "flake8")
    assert {k: flake8[k] for k in ("rule", "path", "line", "column")} == {
        "rule": "F401", "path": "app/flake.py", "line": 1, "column": 1
    }  # fmt: skip
    findings_everywhere.write("app/flake.py", '"""Docs."""\n' + BAD["flake8"][1])
    moved = json.loads(findings_everywhere.inv("lint.python", "--format", "json").stdout)
    again = next(r for r in moved["findings"] if r["tool"] == "flake8")
    assert again["line"] == 2 and again["fingerprint"] == flake8["fingerprint"]


@pytest.mark.slow
def test_github_annotations_follow_the_text(findings_everywhere: LintProject) -> None:
    result = findings_everywhere.inv("lint.python", "--format", "github")
    assert result.returncode == 1
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert "::error file=app/flake.py,line=1,col=1,title=flake8 F401::'os' imported but unused" in (
        annotations
    )
    assert any(
        a.startswith("::error file=app/quotes.py,title=black would-reformat::") for a in annotations
    )
    assert result.stdout.index("tool ") < result.stdout.index("::error")


@pytest.mark.slow
def test_junit_has_a_testcase_per_tool_and_file(findings_everywhere: LintProject) -> None:
    result = findings_everywhere.inv("lint.js", "--format", "junit", "--output", "lint.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    root = ET.parse(findings_everywhere.root / "lint.xml").getroot()  # nosec B314  # ours
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"eslint", "prettier", "detect-secrets"}
    failed = {
        (s.get("name"), c.get("name"))
        for s in suites.values() for c in s.iter("testcase") if c.find("failure") is not None
    }  # fmt: skip
    assert failed == {("eslint", "web/src/unused.js"), ("prettier", "web/src/style.js")}
    assert suites["detect-secrets"].get("failures") == "0"


@pytest.mark.slow
def test_a_clean_run_writes_an_empty_document(lint_project: LintProject) -> None:
    result = lint_project.inv("lint", "--format", "sarif", "--output", "clean.sarif")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads((lint_project.root / "clean.sarif").read_text())
    assert sarif_errors(document) == []
    assert [run["results"] for run in document["runs"]] == [[]] * 7
