"""Observability stack: kube-prometheus-stack, Loki + Alloy, Jaeger v2 (pinned Helm charts).

``setup`` installs or upgrades the stack idempotently; ``status`` shows the app's and the stack's
workloads; ``uninstall`` removes the releases; ``grafana`` / ``jaeger`` port-forward the UIs;
``test-alert`` posts a test alert and reports its receivers; ``test-rules`` unit-tests the
shipped alert rules with promtool.
Every kubectl/helm call is pinned to the environment's kube context (see tasks/kube.py).

Each task is defined once, here. Tasks with the same flags are built from one function per
family (:func:`_change_task`: setup, uninstall; :func:`_ui_task`: grafana, jaeger). Modules:
``settings`` (the schema: every default, and the flag kinds), ``plan`` (pure step builders),
``repos`` (chart repositories), ``workloads`` (parsers of kubectl output), ``rules`` (the rule
files and promtool tests of ``test-rules``), ``alerting`` (the Alertmanager routing),
``testalert`` (``test-alert``), ``run`` (executes
the plans; imported inside the tasks, so ``inv --list`` stays light).
"""

from __future__ import annotations

from typing import Any

from invoke import Collection, Context

from tasks.core.task import task
from tasks.monitoring.settings import (
    RECEIVER_FLAG,
    SCHEMA,
    SEVERITY_FLAG,
    TARGET_FLAGS,
    namespace,
)

TARGET_HELP = {
    "env": "environment from invoke.yaml (development, staging, production); default development",
    "context": "kube context to use instead of environments.<env>.kube_context",
    "mon_namespace": "namespace of the monitoring stack (default: monitoring.namespace)",
}


def _change_task(action: str, doc: str, yes_help: str) -> Any:
    """``monitoring.<action>`` (setup, uninstall): the shared flags plus ``--yes``."""

    def body(
        c: Context,
        env: str | None = None,
        context: str | None = None,
        mon_namespace: str | None = None,
        yes: bool = False,
    ) -> None:
        from tasks.monitoring import run

        where = run.target(c, env, context, mon_namespace, install=action == "setup")
        run.ACTIONS[action](c, where, yes=yes)

    body.__doc__ = doc
    return task(name=action, help={**TARGET_HELP, "yes": yes_help}, flags=TARGET_FLAGS)(body)


def _ui_task(ui: str, doc: str) -> Any:
    """``monitoring.<ui>`` (grafana, jaeger): the shared flags plus ``--port``."""
    key = f"monitoring.local_ports.{ui}"
    port_help = f"local port (default: {key}, {SCHEMA.defaults()['local_ports'][ui]})"

    def body(
        c: Context,
        env: str | None = None,
        context: str | None = None,
        mon_namespace: str | None = None,
        port: int | None = None,
    ) -> None:
        from tasks.monitoring import run

        run.port_forward(c, run.target(c, env, context, mon_namespace, ui=ui), ui, port)

    body.__doc__ = doc
    flags = {**TARGET_FLAGS, "port": key}
    return task(name=ui, help={**TARGET_HELP, "port": port_help}, flags=flags)(body)


setup = _change_task(
    "setup",
    """Install or upgrade the monitoring stack (pinned charts; idempotent).

    Adds/refreshes only the chart repositories that need it, creates the namespace and Grafana's
    admin Secret (from $GRAFANA_ADMIN_PASSWORD on kubectl's stdin, only if missing), applies the
    Prometheus Operator CRDs server-side, then `helm upgrade --install`s each enabled component
    with rollback on failure. Under `inv --dry` every step is printed and nothing touches the
    cluster.
    """,
    "do not ask for confirmation (environments with confirm: true, e.g. production)",
)

uninstall = _change_task(
    "uninstall",
    """Uninstall the monitoring stack's Helm releases (asks first).

    Keeps the namespace, the Grafana admin Secret and the Prometheus Operator CRDs (deleting the
    CRDs would delete every ServiceMonitor and PrometheusRule in the cluster).
    """,
    "do not ask for confirmation",
)

grafana = _ui_task("grafana", "Port-forward Grafana to localhost and print its URL.")
jaeger = _ui_task("jaeger", "Port-forward the Jaeger UI to localhost and print its URL.")


@task(
    help={
        **TARGET_HELP,
        "app_namespace": "namespace of the app (default: environments.<env>.namespace)",
        "json": "print a JSON document instead of the table",
    },
    flags={**TARGET_FLAGS, "app_namespace": namespace()},
)
def status(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    app_namespace: str | None = None,
    mon_namespace: str | None = None,
    json: bool = False,
) -> None:
    """Show the app's and the monitoring stack's workloads; exit 1 if any is not ready.

    One row per Deployment/StatefulSet/DaemonSet: ready/desired, container restarts of its pods,
    age. A namespace without workloads also counts as not ready.
    """
    from tasks.monitoring import run

    where = run.target(c, env, context, mon_namespace)
    run.status(c, where, app_namespace=app_namespace, json=json)


@task(
    help={
        **TARGET_HELP,
        "severity": "critical (pages) or warning (chat); default critical",
        "receiver": "fail unless the alert is routed to this receiver",
        "port": "local port of the port-forward (default: monitoring.local_ports.alertmanager, "
        "9093)",
    },
    flags={
        **TARGET_FLAGS,
        "severity": SEVERITY_FLAG,
        "receiver": RECEIVER_FLAG,
        "port": "monitoring.local_ports.alertmanager",
    },
)
def test_alert(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    severity: str = "critical",
    receiver: str | None = None,
    port: int | None = None,
) -> None:
    """Post a labelled test alert to the installed Alertmanager; print where it was routed.

    Port-forwards the Alertmanager Service, posts FlowletTestAlert (labels severity,
    environment, flowlet_test="true"; it ends by itself after 5 minutes) to its API, and asks
    Alertmanager which receivers its group went to. Exit 1 if it reached no receiver (or not
    --receiver).
    """
    from tasks.monitoring import run, testalert

    where = run.target(c, env, context, mon_namespace)
    testalert.execute(c, where, severity=severity, receiver=receiver, port=port)


@task
def test_rules(c: Context) -> None:
    """Unit-test the shipped alert rules with the real promtool; exit 1 naming a failing rule.

    The backup rules (kube-prometheus-stack values, additionalPrometheusRulesMap) and the Flowlet
    chart's PrometheusRule as `inv deploy` renders it per environment are written to a temp dir;
    `promtool check rules` checks them and `promtool test rules` runs the unit tests in
    monitoring.rule_tests (kubernetes/monitoring/tests). Every alert needs a case where it fires
    and one where it stays quiet. Under `inv --dry` promtool is only printed.
    """
    from tasks.monitoring import rules, run

    run.test_rules(c, rules.resolve(c))


ns = Collection("monitoring", setup, status, uninstall, grafana, jaeger, test_alert, test_rules)
