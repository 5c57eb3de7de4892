"""``inv monitoring.test-rules``: the shipped alert rules unit-tested by the real promtool.

From the command line: it passes on the project as shipped, and fails (exit 1, one line naming
the rule and the evaluation time) when a copy of a rule is broken: a threshold that no longer
fires, a severity the page would not route on, a chart threshold of one environment, a new
rule without tests. Pure tests cover the extraction, the coverage check and the parsing of
promtool's reports. The promtool tests' input series are compared with what
``backup.check --textfile`` really writes, and ``promtool check metrics`` lints the example
backend's /metrics text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, need, readme, run_inv

from tasks.core.errors import OpsError
from tasks.monitoring import rules

pytestmark = pytest.mark.slow

MONITORING = REPO / "kubernetes" / "monitoring"
TESTS = MONITORING / "tests"
CHART = REPO / "kubernetes" / "flowlet-chart"


@pytest.fixture(autouse=True)
def tools() -> None:
    need("promtool", "helm", why="monitoring.test-rules renders the chart and runs promtool")


def only_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def mutated_values(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the monitoring values dir with ``old`` replaced once in the kube-prometheus-stack
    values, and the -f config pointing monitoring.values_dir at it."""
    values_dir = tmp_path / "values"
    shutil.copytree(MONITORING, values_dir, ignore=shutil.ignore_patterns("tests"))
    kps = values_dir / "kube-prometheus-stack.yaml"
    text = kps.read_text()
    assert text.count(old) == 1, old
    kps.write_text(text.replace(old, new))
    config = tmp_path / "mutated.yaml"
    config.write_text(yaml.safe_dump({"monitoring": {"values_dir": str(values_dir)}}))
    return config


# --- from the command line ---------------------------------------------------------------


@readme("inv monitoring.test-rules")
def test_shipped_rules_pass() -> None:
    result = run_inv("inv monitoring.test-rules")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "chart-production.rules.yaml" in out
    assert "Checking flowlet-backups.rules.yaml" in out and "SUCCESS: 4 rules found" in out
    assert out.count("==> ") == 6  # three renders, one check, two test files
    assert out.rstrip().endswith("ok: 2 rule files, 2 test files")


def test_a_threshold_that_never_fires_fails(tmp_path: Path) -> None:
    too_old = "time() - flowlet_backup_last_success_timestamp_seconds > flowlet_backup_max_age"
    config = mutated_values(tmp_path, too_old, too_old.replace("> ", "> 2 * "))
    result = run_inv(["-f", str(config), "monitoring.test-rules"])
    assert result.returncode == 1, result.stdout
    line = only_line(result.stderr)
    assert re.fullmatch(
        r"promtool test rules \S+/kubernetes/monitoring/tests/backups\.test\.yaml: failed: "
        r"FlowletBackupTooOld at 1h20m \(no alert fired\); "
        r"FlowletBackupTooOld at 1h30m \(no alert fired\)",
        line,
    ), line
    assert "got:[]" in result.stdout  # promtool's own report is shown too


def test_a_longer_for_fails(tmp_path: Path) -> None:
    old = "flowlet_backup_last_run_failed == 1 or flowlet_backup_last_verified == 0\n" + (
        "            for: 5m"
    )
    config = mutated_values(tmp_path, old, old.replace("5m", "15m"))
    result = run_inv(["-f", str(config), "monitoring.test-rules"])
    assert result.returncode == 1
    assert "FlowletBackupFailed at 20m (no alert fired)" in only_line(result.stderr)


def test_a_wrong_severity_fails(tmp_path: Path) -> None:
    old = "flowlet_backup_max_age_seconds\n            for: 15m\n            labels:\n" + (
        "              severity: critical"
    )
    config = mutated_values(tmp_path, old, old.replace("critical", "warning"))
    result = run_inv(["-f", str(config), "monitoring.test-rules"])
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert "FlowletBackupTooOld at 1h20m (other labels/annotations)" in line


def test_a_chart_threshold_of_one_environment_fails(tmp_path: Path) -> None:
    values = tmp_path / "values-production.yaml"
    text = (CHART / "values-production.yaml").read_text()
    assert text.count("errorRateThreshold: 0.02") == 1
    values.write_text(text.replace("errorRateThreshold: 0.02", "errorRateThreshold: 0.2"))
    config = tmp_path / "mutated.yaml"
    config.write_text(
        yaml.safe_dump({"environments": {"production": {"values_file": str(values)}}})
    )
    result = run_inv(["-f", str(config), "monitoring.test-rules"])
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert re.fullmatch(
        r"promtool test rules \S+/chart-production\.test\.yaml: failed: FlowletHighErrorRate at "
        r"25m \(no alert fired\)",
        line,
    ), line  # 10% of 5xx is under 20%


def test_a_rule_without_tests_fails(tmp_path: Path) -> None:
    old = "          - alert: FlowletBackupFailed\n"
    new = (
        "          - alert: FlowletBackupTooBig\n"
        "            expr: flowlet_backup_last_size_bytes > 1e12\n"
        "            labels: {severity: warning}\n" + old
    )
    config = mutated_values(tmp_path, old, new)
    result = run_inv(["-f", str(config), "monitoring.test-rules"])
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        "FlowletBackupTooBig (flowlet-backups.rules.yaml): no alert_rule_test where it fires; "
        "FlowletBackupTooBig (flowlet-backups.rules.yaml): no alert_rule_test where it stays quiet"
    )
    assert "promtool" not in result.stdout  # nothing ran past the coverage check


def test_a_rule_that_does_not_parse_fails(tmp_path: Path) -> None:
    old = "expr: flowlet_backup_check_status == 3"
    config = mutated_values(tmp_path, old, "expr: flowlet_backup_check_status ==")
    result = run_inv(["-f", str(config), "monitoring.test-rules"])
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert line.startswith("promtool check rules: flowlet-backups.rules.yaml: "), line
    assert '"FlowletBackupCheckUnknown": could not parse expression' in line


@readme("inv --dry monitoring.test-rules")
def test_dry_prints_promtool_without_running_it() -> None:
    result = run_inv("inv --dry monitoring.test-rules")
    assert result.returncode == 0, result.stderr
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # Invoke colours what --dry echoes
    assert re.search(r"^promtool check rules \S+/flowlet-backups\.rules\.yaml ", out, re.MULTILINE)
    assert re.search(r"^promtool test rules \S+/backups\.test\.yaml$", out, re.MULTILINE)
    assert "SUCCESS" not in out
    assert out.rstrip().endswith("(--dry: promtool did not run)")


# --- the series of the tests are what backup.check writes --------------------------------


def input_series(test_file: Path) -> list[tuple[str, dict[str, str]]]:
    """(metric name, labels) of every input series of a promtool test file."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for group in yaml.safe_load(test_file.read_text())["tests"]:
        for series in group["input_series"]:
            (family,) = text_string_to_metric_families(series["series"] + " 0\n")
            (sample,) = family.samples
            out.append((sample.name, dict(sample.labels)))
    return out


def test_backup_series_are_what_backup_check_writes() -> None:
    """Every input series of backups.test.yaml has the name and labels of a line
    ``backup.check --textfile`` writes for that target (plus the scrape's job and instance)."""
    from prometheus_client.parser import text_string_to_metric_families

    from tasks.backup import freshness
    from tasks.backup.targets import DatabaseTarget

    series = input_series(TESTS / "backups.test.yaml")
    assert series
    import importlib

    drill = importlib.import_module("tasks.backup.drill")  # the package's task is also "drill"
    for name, labels in series:
        scraped = {k: labels.pop(k) for k in ("job", "instance")}
        assert scraped == {"job": "node-exporter", "instance": "bastion:9100"}
        if name.startswith("flowlet_backup_drill_"):  # backup.drill's textfile (drill.py)
            assert name.removeprefix("flowlet_backup_drill_") in dict(drill.METRICS), name
            assert set(labels) == {"environment", "database", "location"}, (name, labels)
            continue
        target = DatabaseTarget(labels["environment"], labels["database"], "postgres", "h", 5432,
                                "d", "u")  # fmt: skip
        result = freshness.Result(target, labels["location"], 0, "", age=1.0, finished=1.0)
        written = {
            (s.name, tuple(sorted(s.labels.items())))
            for family in text_string_to_metric_families(freshness.textfile_text(result, 3600))
            for s in family.samples
        }
        assert (name, tuple(sorted(labels.items()))) in written, (name, labels)


def test_backend_metrics_pass_promtool_check_metrics() -> None:
    """The text the example backend serves on /metrics (its own Metrics class) passes
    ``promtool check metrics`` (names, types, HELP; _total counters), and carries the labels
    the chart's rule tests use."""
    import sys

    sys.path.insert(0, str(REPO / "examples" / "backend"))
    try:
        from flowlet_backend.app import Metrics
    finally:
        sys.path.remove(str(REPO / "examples" / "backend"))
    metrics = Metrics()
    metrics.observe("GET", "/api/accounts", 200, 0.004)
    metrics.observe("POST", "/api/transactions", 503, 0.7)
    text = metrics.render()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    used = {(n, frozenset(labels) - {"namespace", "job", "pod", "instance"})
            for n, labels in input_series(TESTS / "chart-production.test.yaml")
            if n.startswith("flowlet_")}  # fmt: skip
    assert used == {
        ("flowlet_http_requests_total", frozenset({"method", "route", "status"})),
        ("flowlet_http_request_duration_seconds_bucket", frozenset({"method", "route", "le"})),
    }
    assert 'le="0.5"' in text and 'le="1.0"' in text  # the bounds the latency test uses


# --- pure: extraction, coverage, promtool's reports ----------------------------------------


def rule_file(name: str, *alerts: str) -> rules.RuleFile:
    group = {"name": "g", "rules": [{"alert": a, "expr": "up == 0"} for a in alerts]}
    return rules.RuleFile(name, "test", (group,))


def rule_test(path: str, files: tuple[str, ...], fires: set[str], quiet: set[str]) -> Any:
    return rules.RuleTest(Path(path), files, frozenset(fires), frozenset(quiet))


def test_values_rule_files() -> None:
    text = "additionalPrometheusRulesMap:\n  a:\n    groups:\n      - name: g\n        rules:\n" + (
        "          - {alert: X, expr: up == 0}\n          - {record: r, expr: up}\n"
    )
    (found,) = rules.values_rule_files(text, "v.yaml")
    assert found.name == "a.rules.yaml" and found.alerts == ("X",)
    assert yaml.safe_load(found.text())["groups"][0]["rules"][1] == {"record": "r", "expr": "up"}
    assert rules.values_rule_files("grafana: {}\n", "v.yaml") == []
    with pytest.raises(OpsError, match=r"^a: no list of rule groups"):
        rules.values_rule_files("additionalPrometheusRulesMap: {a: {groups: 3}}", "v.yaml")


def test_chart_rule_files_merge_every_prometheus_rule() -> None:
    docs = [
        {"kind": "Service", "metadata": {"name": "s"}},
        {"kind": "PrometheusRule", "metadata": {"name": "a"}, "spec": {"groups": [{"name": "1"}]}},
        {"kind": "PrometheusRule", "metadata": {"name": "b"}, "spec": {"groups": [{"name": "2"}]}},
    ]
    (found,) = rules.chart_rule_files("staging", yaml.safe_dump_all(docs), "chart")
    assert found.name == "chart-staging.rules.yaml"
    assert [g["name"] for g in found.groups] == ["1", "2"]
    assert rules.chart_rule_files("dev", yaml.safe_dump_all(docs[:1]), "chart") == []


def test_parse_test_reads_fire_and_quiet_cases(tmp_path: Path) -> None:
    parsed = rules.parse_test(
        TESTS / "backups.test.yaml", (TESTS / "backups.test.yaml").read_text()
    )
    assert parsed.rule_files == ("flowlet-backups.rules.yaml",)
    every = {"FlowletBackupTooOld", "FlowletBackupFailed", "FlowletBackupCheckUnknown",
             "FlowletBackupCheckNotRunning", "FlowletBackupDrillFailed",
             "FlowletBackupDrillStale"}  # fmt: skip
    assert parsed.fires == every and parsed.quiet == every
    with pytest.raises(OpsError, match=r"not a promtool test file"):
        rules.parse_test(tmp_path / "x.yaml", "tests: []\n")
    with pytest.raises(OpsError, match=r"x\.yaml: not YAML"):
        rules.parse_test(tmp_path / "x.yaml", "rule_files: [a\n")


@pytest.mark.parametrize(
    "tests, expected",
    [
        ([rule_test("t.yaml", ("a.rules.yaml",), {"A", "B"}, {"A", "B"})], []),
        (
            [rule_test("t.yaml", ("a.rules.yaml",), {"A"}, {"A", "B"})],
            ["B (a.rules.yaml): no alert_rule_test where it fires"],
        ),
        (
            [
                rule_test("t.yaml", ("a.rules.yaml",), {"A", "B"}, {"A"}),
                rule_test("u.yaml", ("a.rules.yaml",), set(), {"B"}),
            ],
            [],
        ),
        (
            [rule_test("t.yaml", ("b.rules.yaml",), {"A", "B"}, {"A", "B"})],
            [
                (
                    "t.yaml: rule_files names b.rules.yaml, which is not a shipped rule file "
                    "(shipped: a.rules.yaml)"
                ),
                (
                    "a.rules.yaml (test): no promtool test loads it; add a test file naming it "
                    "in rule_files"
                ),
            ],
        ),
    ],
    ids=["covered", "never-fires", "split-over-two-files", "wrong-rule-file"],
)
def test_coverage_problems(tests: list[rules.RuleTest], expected: list[str]) -> None:
    assert rules.coverage_problems([rule_file("a.rules.yaml", "A", "B")], tests) == expected


REPORT = """  FAILED:
    alertname: A, time: 10m,
        exp:[
            0:
              Labels:{alertname="A", severity="warning"}
              Annotations:{}
            ],
        got:[]
    alertname: B, time: 1h,
        exp:[],
        got:[
            0:
              Labels:{alertname="B"}
              Annotations:{}
            ]
    alertname: C, time: 5m,
        exp:[
            0:
              Labels:{alertname="C", severity="warning"}
              Annotations:{}
            ],
        got:[
            0:
              Labels:{alertname="C", severity="critical"}
              Annotations:{}
            ]
    expr: "up == 0", time: 2m,
        exp: "{} 1"
        got: "nil"
"""  # promtool ends its case lines with ", " (the real reports: tests above)


def test_failed_cases_of_a_promtool_report() -> None:
    assert rules.failed_cases(REPORT) == [
        "A at 10m (no alert fired)",
        "B at 1h (fired, expected none)",
        "C at 5m (other labels/annotations)",
        '"up == 0" at 2m (other result)',
    ]
    assert rules.summary(["a", "b", "c", "d", "e"]) == "a; b; c; and 2 more"


def test_check_failure_is_the_line_after_failed() -> None:
    report = 'Checking x.yaml\n  FAILED:\nx.yaml: 1:45: group "g", rule 1, "B": bad\n'
    assert rules.check_failure(report) == 'x.yaml: 1:45: group "g", rule 1, "B": bad'
    assert rules.check_failure("") == "(no output)"
