"""Executes the monitoring plans through :mod:`tasks.core.runner` (imported when a task runs).

Every command goes through the runner: ``probe`` for what decides the plan (runs under
``--dry`` too), ``run`` for what changes the cluster (only printed under ``--dry``). No child
gets ``$GRAFANA_ADMIN_PASSWORD`` (``monitoring.grafana.password_env``) in its environment: the
one kubectl that needs the password reads it on its stdin, so it never touches the disk, argv,
the output or ``--dry``.
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from invoke import Context

from tasks.core.environments import resolve_environment
from tasks.core.errors import CommandFailed, ConfigError, OpsError
from tasks.core.prompt import confirm
from tasks.core.runner import is_dry, probe, require_tools, run
from tasks.core.settings import Settings, Where, load
from tasks.core.steps import Progress, Step
from tasks.kube import KUBE_TOOLS, guard_context, kubectl, require_kube_tools, resolve_context
from tasks.monitoring import plan, repos, rules
from tasks.monitoring.alerting import enabled as receivers_enabled
from tasks.monitoring.alerting import missing_env, require_env, secret_manifest
from tasks.monitoring.plan import Target


def target(
    c: Context,
    env: str | None,
    context: str | None,
    mon_namespace: str | None,
    *,
    install: bool = False,
    ui: str | None = None,
) -> Target:
    """The validated settings, the environment and its guarded kube context (one probe).

    ``install``: every enabled component's values file must exist (``monitoring.setup``);
    ``ui``: the component serving that UI must be enabled. Both are checked before any command.
    """
    settings = load(c, "monitoring")
    if install:
        check_values_files(c, settings)
        if _receivers(settings) and not is_dry(c):
            require_env(settings.alerting, os.environ)  # before any command runs
    if ui is not None:
        key = plan.UIS[ui][0]
        if not settings.components[key].enabled:
            raise ConfigError(f"monitoring.components.{key}.enabled: false (no {ui} to forward)")
    environment = resolve_environment(c, env)
    kube_context, source = resolve_context(environment, context)
    guard_context(c, kube_context, source)
    namespace = settings.namespace if mon_namespace is None else mon_namespace
    return Target(settings, environment, kube_context, namespace)


def _receivers(settings: Settings) -> bool:
    """Receivers configured, and kube-prometheus-stack (their Alertmanager) enabled."""
    return receivers_enabled(settings.alerting) and settings.components[plan.KPS].enabled


def check_values_files(c: Context, settings: Settings) -> None:
    """Something to install, and every enabled component's values file exists."""
    components = plan.enabled_components(settings)
    if not components:
        raise ConfigError("monitoring.components: every component is disabled; nothing to install")
    if not settings.values_dir.is_dir():
        raw = c.config.monitoring.values_dir
        raise Where("monitoring.values_dir", c.config).fail(
            raw, f"an existing directory ({settings.values_dir} does not exist)"
        )
    for comp in components:
        if not comp.values.is_file():
            where = Where(f"monitoring.components.{comp.key}.values", c.config)
            state = "is not a file" if comp.values.exists() else "does not exist"
            raise where.fail(
                settings.components[comp.key]["values"],
                f"a file in monitoring.values_dir ({comp.values} {state})",
            )


def _admin_password(c: Context, target: Target) -> str | None:
    """The password to create Grafana's admin Secret with, or None if the Secret exists."""
    grafana = target.settings.grafana
    password = os.environ.get(grafana.password_env, "")
    if is_dry(c):
        if not password:
            Progress.note(f"(--dry: ${grafana.password_env} is not set; needed if it is missing)")
        return None
    argv = plan.secret_probe_argv(target)
    found = probe(c, argv)
    if found.exited == 0:
        Progress.note("exists: kept (the password is never replaced by setup)")
        return None
    if "NotFound" not in found.stderr:
        raise CommandFailed(argv, found.exited, found.stderr, what="kubectl get secret")
    if not password:
        raise OpsError(
            f"${grafana.password_env}: not set, and the Grafana admin Secret "
            f"{target.namespace}/{grafana.admin_secret} does not exist yet; export it "
            f"(e.g. read -rs {grafana.password_env}; export {grafana.password_env}) and run again"
        )
    return password


def execute(c: Context, steps: Sequence[Step], target: Target) -> None:
    """Print and run ``steps`` in order (under ``--dry`` the runner only prints the commands)."""
    progress = Progress()
    previous = ""
    for step in steps:
        progress(step.title)
        if step.detail:
            progress.note(step.detail)
        if step.argv is None:  # every monitoring step is a command
            continue
        stdin = previous if step.pipe_from_previous else step.stdin
        if plan.ADMIN_SECRET in step.tags:
            stdin = _admin_password(c, target)
            if stdin is None and not is_dry(c):
                continue
        if plan.RECEIVERS_SECRET in step.tags and not is_dry(c):
            alerting = target.settings.alerting
            stdin = secret_manifest(alerting, target.namespace, os.environ)
        hide = "out" if plan.OUTPUT_HIDDEN in step.tags else None
        if stdin is None:  # never the user's stdin
            result = run(c, step.argv, echo=True, hide=hide, in_stream=False)
        else:
            result = run(c, step.argv, stdin=stdin, echo=True, echo_stdin=False, hide=hide)
        previous = result.stdout


def setup(c: Context, target: Target, *, yes: bool) -> None:
    """``inv monitoring.setup`` (documented on the task)."""
    version = require_kube_tools(c)
    listed = probe(c, repos.LIST_ARGV)
    if listed.exited != 0:
        raise CommandFailed(repos.LIST_ARGV, listed.exited, listed.stderr, what="helm repo list")
    present = repos.parse_repo_list(listed.stdout)
    components = target.components
    cached = {
        comp.chart_ref
        for comp in components
        if comp.repo in present
        and repos.chart_in_index(
            probe(c, repos.search_argv(comp)).stdout, comp.chart_ref, comp.version
        )
    }
    alerting = target.settings.alerting
    missing = missing_env(alerting, os.environ) if _receivers(target.settings) else []
    if missing:  # only under --dry: target() refused it otherwise
        names = ", ".join(f"${name}" for name in missing)
        Progress.note(f"(--dry: {names} not set; needed for the Alertmanager receivers)")
    steps = plan.plan_setup(target, version, repos.plan_repos(components, present, cached))
    if target.environment.confirm:
        confirm(
            f"Install/upgrade the monitoring stack in {target.context}/{target.namespace}?",
            yes=yes,
            dry=is_dry(c),
        )
    execute(c, steps, target)


def uninstall(c: Context, target: Target, *, yes: bool) -> None:
    """``inv monitoring.uninstall`` (documented on the task)."""
    version = require_kube_tools(c)
    steps = plan.plan_uninstall(target, version)
    releases = ", ".join(comp.release for comp in target.components)
    question = f"Uninstall {releases} from {target.context}/{target.namespace}?"
    confirm(question, yes=yes, dry=is_dry(c))
    execute(c, steps, target)


def status(c: Context, target: Target, *, app_namespace: str | None, json: bool) -> None:
    """``inv monitoring.status`` (documented on the task)."""
    from tasks.monitoring.workloads import load_list, parse_workloads, render_table, summary

    require_tools({"kubectl": KUBE_TOOLS["kubectl"]})
    app_ns = target.environment.namespace if app_namespace is None else app_namespace
    now = datetime.now(timezone.utc)
    rows, empty = [], []
    for ns in dict.fromkeys([app_ns, target.namespace]):
        lists = []
        for what in ("deployments,statefulsets,daemonsets", "pods"):
            argv = kubectl(target.context, "--namespace", ns, "get", what, "-o", "json")
            result = probe(c, argv)
            if result.exited != 0:
                what_failed = f"kubectl get {what} -n {ns}"
                raise CommandFailed(argv, result.exited, result.stderr, what=what_failed)
            lists.append(load_list(result.stdout, f"kubectl get {what} -n {ns}"))
        found = parse_workloads(lists[0], lists[1], now)
        rows += found
        if not found:
            empty.append(ns)
    report = summary(rows, empty)
    print(jsonlib.dumps(report, indent=2) if json else render_table(rows, empty), flush=True)
    if not report["ok"]:
        bad = sum(1 for w in rows if not w.ok) + len(empty)
        raise OpsError("" if json else f"{bad} not ready", code=1)


def port_forward(c: Context, target: Target, ui: str, port: int | None) -> None:
    """``inv monitoring.grafana`` / ``monitoring.jaeger``: forward until Ctrl-C.

    The runner starts kubectl in its own process group; Ctrl-C (or SIGTERM) is forwarded to it
    once, we wait for it to exit, and the boundary reports the interrupt (exit 130/143).
    """
    local = target.settings.local_ports[ui] if port is None else port
    require_tools({"kubectl": KUBE_TOOLS["kubectl"]})
    print(plan.ui_hint(target, ui, local), flush=True)
    run(c, plan.port_forward_argv(target, ui, local), echo=True, in_stream=False)


def test_rules(c: Context, options: rules.RuleTestOptions) -> None:
    """``inv monitoring.test-rules`` (documented on the task).

    The chart renders are probes (read-only; they run under ``--dry`` too, since the rule files
    come from them); promtool only reads the temp dir, but under ``--dry`` it is only printed.
    """
    require_tools({"helm": KUBE_TOOLS["helm"], "promtool": rules.PROMTOOL_HINT})
    progress = Progress()
    source = str(options.values_file)
    rule_files = rules.values_rule_files(options.values_file.read_text(), source)
    for step in rules.render_steps(options):
        progress(step.title)
        progress.note(step.describe())
        if step.argv is None:  # every render step is a command
            continue
        result = probe(c, step.argv)
        if result.exited != 0:
            raise CommandFailed(step.argv, result.exited, result.stderr, what="helm template")
        found = rules.chart_rule_files(step.data, result.stdout, f"{options.chart} ({step.data})")
        progress.note(", ".join(rf.name for rf in found) or "no PrometheusRule (disabled)")
        rule_files += found
    paths = sorted(options.tests_dir.glob("*.yaml"))
    tests = [rules.parse_test(path, path.read_text()) for path in paths]
    problems = rules.coverage_problems(rule_files, tests)
    if problems:
        raise OpsError(rules.summary(problems))
    with tempfile.TemporaryDirectory(prefix="flowlet-rules-") as tmp:
        workdir = Path(tmp)
        for rule_file in rule_files:
            (workdir / rule_file.name).write_text(rule_file.text())
        for test in tests:
            shutil.copyfile(test.path, workdir / test.path.name)
        for step in rules.promtool_steps(workdir, rule_files, tests):
            progress(step.title)
            if step.argv is None:  # every promtool step is a command
                continue
            if is_dry(c):
                run(c, step.argv, in_stream=False)
                continue
            result = probe(c, step.argv)
            report = (result.stdout + result.stderr).replace(f"{workdir}/", "")
            if result.exited == 0:
                for line in report.splitlines():
                    if line.strip():
                        progress.note(line.strip())
                continue
            print(re.sub(r"\n\s*\n+", "\n", report).rstrip(), flush=True)
            if step.data is None:
                raise OpsError(f"promtool check rules: {rules.check_failure(report)}")
            failed = rules.failed_cases(report) or [rules.check_failure(report)]
            raise OpsError(f"promtool test rules {step.data}: failed: {rules.summary(failed)}")
    counts = f"{len(rule_files)} rule files, {len(tests)} test files"
    print(f"{counts} (--dry: promtool did not run)" if is_dry(c) else f"ok: {counts}", flush=True)


ACTIONS = {"setup": setup, "uninstall": uninstall}
