"""Observability stack: kube-prometheus-stack, Loki + Alloy, Jaeger v2 (pinned Helm charts).

``setup`` installs or upgrades the stack idempotently; ``status`` shows the app's and the stack's
workloads; ``uninstall`` removes the releases; ``grafana`` / ``jaeger`` port-forward the UIs.
Every kubectl/helm call is pinned to the environment's kube context (see tasks/kube.py).

Modules: ``defaults`` (config defaults), ``config`` (settings), ``plan`` (pure step builders),
``workloads`` (parsers of kubectl output), ``flows`` (the task bodies, imported inside the tasks).
"""

from __future__ import annotations

from invoke import Collection, Context

from tasks.core.task import task

TARGET_HELP = {
    "env": "environment from invoke.yaml (development, staging, production); default development",
    "context": "kube context to use instead of environments.<env>.kube_context",
    "mon_namespace": "namespace of the monitoring stack (default: monitoring.namespace)",
}


@task(
    help={
        **TARGET_HELP,
        "yes": "do not ask for confirmation (environments with confirm: true, e.g. production)",
    }
)
def setup(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    yes: bool = False,
) -> None:
    """Install or upgrade the monitoring stack (pinned charts; idempotent).

    Adds/refreshes only the chart repositories that need it, creates the namespace and Grafana's
    admin Secret (from $GRAFANA_ADMIN_PASSWORD, only if missing), applies the Prometheus Operator
    CRDs server-side, then `helm upgrade --install`s each enabled component with rollback on
    failure. Under `inv --dry` every step is printed and nothing touches the cluster.
    """
    from tasks.monitoring import flows

    flows.setup(c, env, context, mon_namespace, yes)


@task(
    help={
        **TARGET_HELP,
        "app_namespace": "namespace of the app (default: environments.<env>.namespace)",
        "json": "print a JSON document instead of the table",
    }
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
    from tasks.monitoring import flows

    flows.status(c, env, context, app_namespace, mon_namespace, json)


@task(help={**TARGET_HELP, "yes": "do not ask for confirmation"})
def uninstall(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    yes: bool = False,
) -> None:
    """Uninstall the monitoring stack's Helm releases (asks first).

    Keeps the namespace, the Grafana admin Secret and the Prometheus Operator CRDs (deleting the
    CRDs would delete every ServiceMonitor and PrometheusRule in the cluster).
    """
    from tasks.monitoring import flows

    flows.uninstall(c, env, context, mon_namespace, yes)


@task(help={**TARGET_HELP, "port": "local port (default 3000)"})
def grafana(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    port: int = 3000,
) -> None:
    """Port-forward Grafana to localhost and print its URL."""
    from tasks.monitoring import flows

    flows.grafana(c, env, context, mon_namespace, port)


@task(help={**TARGET_HELP, "port": "local port (default 16686)"})
def jaeger(
    c: Context,
    env: str | None = None,
    context: str | None = None,
    mon_namespace: str | None = None,
    port: int = 16686,
) -> None:
    """Port-forward the Jaeger UI to localhost and print its URL."""
    from tasks.monitoring import flows

    flows.jaeger(c, env, context, mon_namespace, port)


ns = Collection("monitoring", setup, status, uninstall, grafana, jaeger)
