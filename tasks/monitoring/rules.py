"""Pure parts of ``monitoring.test-rules``: the shipped alert rules, the promtool tests that
cover them, the commands that check them, and promtool's failure reports.

Rule files (written to a temp dir, named as the tests' ``rule_files`` name them):

- ``<key>.rules.yaml`` for each ``additionalPrometheusRulesMap`` entry of kube-prometheus-stack's
  values file (the backup alerts: ``flowlet-backups.rules.yaml``);
- ``chart-<env>.rules.yaml``: the Flowlet chart's PrometheusRule as ``inv deploy --env <env>``
  renders it (an environment whose values disable it ships none).

Test files are the ``*.yaml`` files of ``monitoring.rule_tests`` (promtool's unit-test format).
Every alert of every rule file needs a case where it fires and one where it does not, so that
a rule added without tests, a threshold that can never be reached or a label the series never
carry fails here rather than in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.environments import Environment
from tasks.core.errors import OpsError
from tasks.core.steps import Step

PROMTOOL_HINT = "install Prometheus' promtool (Debian/Ubuntu: apt-get install prometheus)"
VALUES_KEY = "additionalPrometheusRulesMap"
RENDER = "render-chart"  # tag of the steps whose stdout holds a rendered chart
# A failed case in promtool's report: "    alertname: X, time: 10m, " or "    expr: ..., time: ..."
_FAILED_ALERT = re.compile(r"^\s*alertname:\s*([^,]+),\s*time:\s*([^,\s]+)")
_FAILED_EXPR = re.compile(r"^\s*expr:\s*(.+?),\s*time:\s*([^,\s]+)")
_EMPTY = re.compile(r"(exp|got):\s*\[\]")


@dataclass(frozen=True)
class RuleTestOptions:
    """What ``monitoring.test-rules`` checks (config resolved, paths absolute)."""

    values_file: Path  # kube-prometheus-stack's values (additionalPrometheusRulesMap)
    chart: Path  # deploy.chart
    tests_dir: Path  # monitoring.rule_tests
    environments: tuple[Environment, ...]  # those with a values_file
    secret_name: str  # deploy.secret.name (what inv deploy renders with)
    timeout: int  # deploy.timeout


@dataclass(frozen=True)
class RuleFile:
    """One rule file promtool reads: ``{"groups": [...]}`` from ``source``."""

    name: str
    source: str
    groups: tuple[Mapping[str, Any], ...]

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(
            str(rule["alert"])
            for group in self.groups
            for rule in group.get("rules") or ()
            if isinstance(rule, Mapping) and "alert" in rule
        )

    def text(self) -> str:
        import yaml  # lazy: keep `inv --list` light

        return str(yaml.safe_dump({"groups": [dict(g) for g in self.groups]}, sort_keys=False))


@dataclass(frozen=True)
class RuleTest:
    """One promtool unit-test file: the rule files it loads, and per alert whether it has a
    case where it fires (non-empty ``exp_alerts``) and one where it does not."""

    path: Path
    rule_files: tuple[str, ...]
    fires: frozenset[str]
    quiet: frozenset[str]


def _groups(doc: Any, source: str) -> tuple[Mapping[str, Any], ...]:
    groups = doc.get("groups") if isinstance(doc, Mapping) else None
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
        raise OpsError(f"{source}: no list of rule groups (groups:)")
    return tuple(groups)


def _load_yaml(text: str, source: str) -> Any:
    import yaml  # lazy: keep `inv --list` light

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OpsError(f"{source}: not YAML: {' '.join(str(exc).split())}") from None


def values_rule_files(text: str, source: str) -> list[RuleFile]:
    """The rule files of kube-prometheus-stack's ``additionalPrometheusRulesMap``."""
    doc = _load_yaml(text, source)
    rules_map = doc.get(VALUES_KEY) if isinstance(doc, Mapping) else None
    if rules_map is None:
        return []
    if not isinstance(rules_map, Mapping):
        raise OpsError(f"{source}: {VALUES_KEY} is not a mapping")
    return [
        RuleFile(f"{key}.rules.yaml", f"{source} {VALUES_KEY}.{key}", _groups(entry, key))
        for key, entry in rules_map.items()
    ]


def chart_rule_files(env: str, rendered: str, source: str) -> list[RuleFile]:
    """``chart-<env>.rules.yaml``: the groups of every PrometheusRule the chart renders."""
    import yaml  # lazy: keep `inv --list` light

    try:
        docs = [d for d in yaml.safe_load_all(rendered) if isinstance(d, Mapping)]
    except yaml.YAMLError as exc:
        raise OpsError(f"{source}: helm's output is not YAML: {exc}") from None
    groups: list[Mapping[str, Any]] = []
    for doc in docs:
        if doc.get("kind") == "PrometheusRule":
            name = (doc.get("metadata") or {}).get("name", "?")
            groups += _groups(doc.get("spec"), f"{source} PrometheusRule {name}")
    if not groups:
        return []
    return [RuleFile(f"chart-{env}.rules.yaml", source, tuple(groups))]


def parse_test(path: Path, text: str) -> RuleTest:
    """A promtool unit-test file, read for what it covers (promtool checks the rest)."""
    doc = _load_yaml(text, str(path))
    if not isinstance(doc, Mapping) or not isinstance(doc.get("rule_files"), list):
        raise OpsError(f"{path}: not a promtool test file (no rule_files: list)")
    fires: set[str] = set()
    quiet: set[str] = set()
    for group in doc.get("tests") or ():
        for case in (group or {}).get("alert_rule_test") or ():
            name = str(case.get("alertname", ""))
            (fires if case.get("exp_alerts") else quiet).add(name)
    return RuleTest(
        path, tuple(str(f) for f in doc["rule_files"]), frozenset(fires), frozenset(quiet)
    )


def coverage_problems(rule_files: Sequence[RuleFile], tests: Sequence[RuleTest]) -> list[str]:
    """What the tests leave uncovered or name wrongly, one message each (empty: all covered)."""
    names = {rf.name: rf for rf in rule_files}
    problems = []
    for test in tests:
        for name in test.rule_files:
            if name not in names:
                shipped = ", ".join(sorted(names)) or "(none)"
                problems.append(
                    f"{test.path}: rule_files names {name}, which is not a shipped rule file "
                    f"(shipped: {shipped})"
                )
    for rule_file in rule_files:
        covering = [t for t in tests if rule_file.name in t.rule_files]
        if not covering:
            problems.append(
                f"{rule_file.name} ({rule_file.source}): no promtool test loads it; add a test "
                f"file naming it in rule_files"
            )
            continue
        for alert in rule_file.alerts:
            for cases, what in ((lambda t: t.fires, "fires"), (lambda t: t.quiet, "stays quiet")):
                if not any(alert in cases(t) for t in covering):
                    problems.append(
                        f"{alert} ({rule_file.name}): no alert_rule_test where it {what}"
                    )
    return problems


def render_steps(options: RuleTestOptions) -> list[Step]:
    """``helm template`` of the Flowlet chart per environment, as ``inv deploy`` renders it."""
    from tasks.deploy.commands import template_argv
    from tasks.deploy.plan import ChartInputs, Target

    steps = []
    for env in options.environments:
        if env.values_file is None:  # resolve keeps only those with one
            continue
        argv = template_argv(
            Target(env.name, env.namespace, "", env.release),
            ChartInputs(options.chart, env.values_file, options.secret_name, options.timeout),
        )
        steps.append(
            Step(
                f"render the Flowlet chart for {env.name}",
                tuple(argv),
                tags=frozenset({RENDER}),
                data=env.name,
            )
        )
    return steps


def promtool_steps(
    workdir: Path, rule_files: Sequence[RuleFile], tests: Sequence[RuleTest]
) -> list[Step]:
    """``promtool check rules`` on every rule file, ``promtool test rules`` per test file (run
    on the copies in ``workdir``, where their rule_files resolve)."""
    steps = [
        Step(
            f"promtool check rules ({len(rule_files)} files)",
            ("promtool", "check", "rules", *(str(workdir / rf.name) for rf in rule_files)),
            detail=", ".join(f"{rf.name}: {rf.source}" for rf in rule_files),
        )
    ]
    steps += [
        Step(
            f"promtool test rules {test.path}",
            ("promtool", "test", "rules", str(workdir / test.path.name)),
            data=test.path,
        )
        for test in tests
    ]
    return steps


def failed_cases(report: str) -> list[str]:
    """The failed cases of a ``promtool test rules`` report, one short text each:
    ``FlowletBackupTooOld at 1h20m (no alert)``."""
    found = []
    lines = report.splitlines()
    for i, line in enumerate(lines):
        alert = _FAILED_ALERT.match(line)
        match = alert or _FAILED_EXPR.match(line)
        if not match:
            continue
        if not alert:
            found.append(f"{match.group(1).strip()} at {match.group(2)} (other result)")
            continue
        block = []
        for following in lines[i + 1 :]:
            if _FAILED_ALERT.match(following) or _FAILED_EXPR.match(following):
                break
            block.append(following)
        empty = {m.group(1) for m in _EMPTY.finditer("\n".join(block))}
        how = {
            frozenset({"got"}): "no alert fired",
            frozenset({"exp"}): "fired, expected none",
        }.get(frozenset(empty), "other labels/annotations")
        found.append(f"{match.group(1).strip()} at {match.group(2)} ({how})")
    return found


def check_failure(report: str) -> str:
    """The first problem ``promtool check rules`` reported (its line after ``FAILED:``)."""
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("FAILED:") and i + 1 < len(lines):
            return lines[i + 1]
    return lines[-1] if lines else "(no output)"


def summary(items: Iterable[str], limit: int = 3) -> str:
    listed = list(items)
    text = "; ".join(listed[:limit])
    return text + (f"; and {len(listed) - limit} more" if len(listed) > limit else "")


def resolve(c: Any) -> RuleTestOptions:
    """The options of ``monitoring.test-rules`` from the config: kube-prometheus-stack's values
    file, the chart and how ``inv deploy`` renders it per environment, the tests directory."""
    from tasks.core.environments import environment_names, resolve_environment
    from tasks.core.settings import Where, load

    settings = load(c, "monitoring")
    deploy = load(c, "deploy")
    kps = settings.components.kube_prometheus_stack
    values_file: Path = settings.values_dir / kps["values"]  # not .values: a dict method
    if not values_file.is_file():
        where = Where("monitoring.components.kube_prometheus_stack.values", c.config)
        raise where.fail(kps["values"], f"a file in monitoring.values_dir ({values_file} is none)")
    tests_dir: Path = settings.rule_tests
    if not tests_dir.is_dir():
        raise Where("monitoring.rule_tests", c.config).fail(
            c.config.monitoring.rule_tests, f"an existing directory ({tests_dir} is none)"
        )
    environments = tuple(
        resolve_environment(c, name, require=("values_file",))
        for name in environment_names(c)
        if load(c, "environments")[name].values_file is not None
    )
    return RuleTestOptions(
        values_file=values_file,
        chart=deploy.chart,
        tests_dir=tests_dir,
        environments=environments,
        secret_name=deploy.secret.name,
        timeout=deploy.timeout,
    )
