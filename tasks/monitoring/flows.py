"""The bodies of the monitoring tasks (imported inside the tasks so ``inv --list`` stays light)."""

from __future__ import annotations

import io
import json as jsonlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from invoke import Context
from tasks.core.errors import OpsError

from tasks.core import environments
from tasks.core.environments import Environment
from tasks.kube import KUBE_TOOLS, guard_context, kubectl, require_kube_tools, resolve_context
from tasks.monitoring import config as mconfig
from tasks.monitoring.plan import (
    PASSWORD_FILE,
    Step,
    chart_in_index,
    parse_repo_list,
    plan_repos,
    plan_setup,
    plan_uninstall,
    search_argv,
)
from tasks.monitoring.workloads import load_list, parse_workloads, render_table, summary
from tasks.core.prompt import confirm
from tasks.core.runner import is_dry, probe, render, require_tools, run
from tasks.core.secrets import private_temp_file


def _target(c: Context, env: str | None, context: str | None) -> tuple[Environment, str]:
    """The environment and its guarded kube context."""
    environment = environments.resolve_environment(c, env)
    kube_context, source = resolve_context(environment, context)
    guard_context(c, kube_context, source)
    return environment, kube_context


def _ensure_admin_secret(
    c: Context, step: Step, settings: mconfig.MonitoringSettings, context: str
) -> None:
    """Create Grafana's admin Secret from ``$<password_env>`` unless it exists (never argv)."""
    password = os.environ.get(settings.password_env, "")
    if is_dry(c):
        if not password:
            print(
                f"    (--dry: ${settings.password_env} is not set; needed if the Secret is missing)"
            )
        run(c, step.argv, echo=True)
        return
    found = probe(
        c,
        kubectl(context, "--namespace", settings.namespace, "get", "secret", settings.admin_secret)
        + ["-o", "name"],
    )
    if found.exited == 0:
        print("    exists: kept (the password is never replaced by setup)")
        return
    if "NotFound" not in found.stderr:
        raise OpsError(f"kubectl get secret failed (exit {found.exited}): {found.stderr.strip()}")
    if not password:
        raise OpsError(
            f"${settings.password_env}: not set, and the Grafana admin Secret "
            f"{settings.namespace}/{settings.admin_secret} does not exist yet; export it "
            "(e.g. read -rs GRAFANA_ADMIN_PASSWORD; export GRAFANA_ADMIN_PASSWORD) and run again"
        )
    with private_temp_file(password, prefix="flowlet-grafana-") as path:
        run(c, [a.replace(PASSWORD_FILE, path) for a in step.argv], echo=True)


def execute(
    c: Context, steps: Sequence[Step], settings: mconfig.MonitoringSettings, context: str
) -> None:
    """Print and run ``steps`` in order (under ``--dry`` Invoke only prints the commands)."""
    previous = ""
    for step in steps:
        print(f"==> {step.title}", flush=True)
        if step.only_if_secret_missing:
            _ensure_admin_secret(c, step, settings, context)
            continue
        kwargs: dict[str, Any] = {"echo": True}
        stdin = previous if step.pipe_from_previous else step.stdin
        if stdin is not None and not is_dry(c):
            kwargs["in_stream"] = io.StringIO(stdin)
        if step.argv[:3] == ("helm", "show", "crds"):
            kwargs["hide"] = "out"
        result = run(c, step.argv, **kwargs)
        previous = result.stdout if result is not None else ""


def _interruptible(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise OpsError(code=130) from None


def setup(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    yes: bool = False,
) -> None:
    """Body of ``inv monitoring.setup`` (documented on the task)."""
    settings = mconfig.read_settings(c, mon_namespace)
    if not settings.components:
        raise OpsError("monitoring.components: every component is disabled; nothing to install")
    environment, kube_context = _target(c, env, context)
    version = require_kube_tools(c)
    listed = probe(c, ["helm", "repo", "list", "-o", "json"])
    if listed.exited != 0:
        raise OpsError(f"helm repo list failed (exit {listed.exited}): {listed.stderr.strip()}")
    present = parse_repo_list(listed.stdout)
    cached = {
        comp.chart_ref
        for comp in settings.components
        if comp.repo in present
        and chart_in_index(probe(c, search_argv(comp)).stdout, comp.chart_ref, comp.version)
    }
    steps = plan_setup(
        settings, kube_context, version, plan_repos(settings.components, present, cached)
    )
    if environment.confirm and not is_dry(c):
        confirm(
            f"Install/upgrade the monitoring stack in {kube_context}/{settings.namespace}?",
            yes=yes,
        )
    _interruptible(execute, c, steps, settings, kube_context)


def status(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    app_namespace: str | None = None,
    mon_namespace: str | None = None,
    json: bool = False,
) -> None:
    """Body of ``inv monitoring.status`` (documented on the task)."""
    settings = mconfig.read_settings(c, mon_namespace, check_files=False)
    if app_namespace is not None:
        environments.validate_namespace(app_namespace, source="--app-namespace")
    environment, kube_context = _target(c, env, context)
    require_tools({"kubectl": KUBE_TOOLS["kubectl"]})
    app_ns = environment.namespace if app_namespace is None else app_namespace
    now = datetime.now(timezone.utc)
    rows = []
    empty = []
    for ns in dict.fromkeys([app_ns, settings.namespace]):
        lists = []
        for what in ("deployments,statefulsets,daemonsets", "pods"):
            result = probe(c, kubectl(kube_context, "--namespace", ns, "get", what, "-o", "json"))
            if result.exited != 0:
                raise OpsError(
                    f"kubectl get {what} -n {ns} failed (exit {result.exited}): "
                    f"{result.stderr.strip()}",
                    code=result.exited,
                )
            lists.append(load_list(result.stdout, f"kubectl get {what} -n {ns}"))
        found = parse_workloads(lists[0], lists[1], now)
        rows += found
        if not found:
            empty.append(ns)
    report = summary(rows, empty)
    print(jsonlib.dumps(report, indent=2) if json else render_table(rows, empty))
    if not report["ok"]:
        bad = sum(1 for w in rows if not w.ok) + len(empty)
        raise OpsError(None if json else f"{bad} not ready", code=1)


def uninstall(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    yes: bool = False,
) -> None:
    """Body of ``inv monitoring.uninstall`` (documented on the task)."""
    settings = mconfig.read_settings(c, mon_namespace, check_files=False)
    _, kube_context = _target(c, env, context)
    version = require_kube_tools(c)
    steps = plan_uninstall(settings, kube_context, version)
    if not is_dry(c):
        releases = ", ".join(comp.release for comp in settings.components)
        confirm(
            f"Uninstall {releases} from {kube_context}/{settings.namespace}?",
            yes=yes,
        )
    _interruptible(execute, c, steps, settings, kube_context)


def chart_fullname(release: str, chart: str) -> str:
    """Helm's conventional ``<chart>.fullname``: the release name if it contains the chart name."""
    return release if chart in release else f"{release}-{chart}"


def _port_forward(c: Context, argv: list[str], url: str, hint: str) -> None:
    port = int(argv[-1].split(":")[0])
    if not 0 < port < 65536:
        raise OpsError(f"--port: {port} is not valid; valid: 1-65535")
    require_tools({"kubectl": KUBE_TOOLS["kubectl"]})
    print(f"{url}  ({hint}; Ctrl-C stops)", flush=True)
    _interruptible(lambda: run(c, argv, echo=True))


def grafana(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    port: int = 3000,
) -> None:
    """Body of ``inv monitoring.grafana`` (documented on the task)."""
    settings = mconfig.read_settings(c, mon_namespace, check_files=False)
    if settings.component("kube_prometheus_stack") is None:
        raise OpsError("monitoring.components.kube_prometheus_stack.enabled: false (no Grafana)")
    _, kube_context = _target(c, env, context)
    service = chart_fullname(settings.all_releases["kube_prometheus_stack"], "grafana")
    argv = kubectl(
        kube_context, "--namespace", settings.namespace, "port-forward", f"svc/{service}"
    )
    secret = kubectl(
        kube_context, "--namespace", settings.namespace, "get", "secret", settings.admin_secret
    )
    hint = f"user {settings.admin_user}; password: " + render(
        [*secret, "-o", "jsonpath={.data.admin-password}"]
    )
    _port_forward(c, [*argv, f"{port}:80"], f"http://127.0.0.1:{port}/", hint + " | base64 -d")


def jaeger(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    port: int = 16686,
) -> None:
    """Body of ``inv monitoring.jaeger`` (documented on the task)."""
    settings = mconfig.read_settings(c, mon_namespace, check_files=False)
    if settings.component("jaeger") is None:
        raise OpsError("monitoring.components.jaeger.enabled: false (no Jaeger)")
    _, kube_context = _target(c, env, context)
    service = chart_fullname(settings.all_releases["jaeger"], "jaeger")
    argv = kubectl(
        kube_context, "--namespace", settings.namespace, "port-forward", f"svc/{service}"
    )
    _port_forward(
        c, [*argv, f"{port}:16686"], f"http://127.0.0.1:{port}/", "Jaeger UI; OTLP: 4317/4318"
    )
