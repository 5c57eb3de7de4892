"""Pure planners for the monitoring tasks: (validated settings, target, flags) -> steps / argv.

A plan is a list of :class:`tasks.core.steps.Step`; :mod:`tasks.monitoring.run` executes it,
``--dry`` prints it, and the tests assert it. Nothing here runs a command or reads a secret.
The parsers of ``helm repo list`` / ``helm search repo`` live in :mod:`tasks.monitoring.repos`,
those of ``kubectl get`` in :mod:`tasks.monitoring.workloads`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.core.environments import Environment
from tasks.core.runner import render
from tasks.core.settings import Settings
from tasks.core.steps import Step
from tasks.kube import HelmVersion, helm, kubectl, upgrade_safety_flags
from tasks.monitoring.alerting import enabled as receivers_enabled
from tasks.monitoring.alerting import helm_args as alerting_helm_args
from tasks.monitoring.alerting import routing_tree
from tasks.monitoring.settings import COMPONENTS

# Tags of the steps the executor treats specially: Grafana's admin Secret (created only if
# missing, the password fed on kubectl's stdin at run time); a step whose stdout only feeds the
# next step (the CRDs: megabytes of YAML).
ADMIN_SECRET = "grafana-admin-secret"  # a step tag, not a password  # nosec B105
RECEIVERS_SECRET = "alertmanager-receivers-secret"  # a step tag  # nosec B105
OUTPUT_HIDDEN = "output-hidden"
KPS = "kube_prometheus_stack"


@dataclass(frozen=True)
class Component:
    """One Helm release of the monitoring stack (an enabled ``monitoring.components`` entry)."""

    key: str
    release: str
    repo: str
    repo_url: str
    chart: str
    version: str
    values: Path

    @property
    def chart_ref(self) -> str:
        return f"{self.repo}/{self.chart}"


@dataclass(frozen=True)
class Target:
    """Where a monitoring task acts: the settings, the environment, its guarded kube context
    and the monitoring namespace (``--mon-namespace`` or ``monitoring.namespace``)."""

    settings: Settings
    environment: Environment
    context: str
    namespace: str

    @property
    def components(self) -> tuple[Component, ...]:
        return enabled_components(self.settings)

    def release(self, key: str) -> str:
        return str(self.settings.components[key].release)


def enabled_components(settings: Settings) -> tuple[Component, ...]:
    """The enabled components, in install order, with their values file paths."""
    values_dir: Path = settings.values_dir
    return tuple(
        Component(
            key=key,
            release=entry.release,
            repo=entry.repo,
            repo_url=settings.repos[entry.repo],
            chart=entry.chart,
            version=entry.version,
            values=values_dir / entry["values"],  # not .values: a dict method
        )
        for key, entry in ((k, settings.components[k]) for k in COMPONENTS)
        if entry.enabled
    )


def helm_duration(seconds: int) -> str:
    """Seconds as Helm's ``--timeout`` spelling: 600 -> ``10m``, 5400 -> ``1h30m``, 90 ->
    ``1m30s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def namespace_manifest(namespace: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


def secret_probe_argv(target: Target) -> list[str]:
    """``kubectl get secret`` of Grafana's admin Secret (does it exist?)."""
    name = target.settings.grafana.admin_secret
    return kubectl(target.context, "--namespace", target.namespace, "get", "secret", name) + [
        "-o",
        "name",
    ]


def admin_secret_step(target: Target) -> Step:
    """Create Grafana's admin Secret; the password is fed on kubectl's stdin, never on argv."""
    grafana = target.settings.grafana
    return Step(
        f"Grafana admin Secret {target.namespace}/{grafana.admin_secret} "
        f"(created from ${grafana.password_env} if missing)",
        tuple(
            kubectl(
                target.context,
                "--namespace",
                target.namespace,
                "create",
                "secret",
                "generic",
                grafana.admin_secret,
                f"--from-literal=admin-user={grafana.admin_user}",
                "--from-file=admin-password=/dev/stdin",
            )
        ),
        detail=f"the password: ${grafana.password_env}, on kubectl's stdin (kept if it exists)",
        tags=frozenset({ADMIN_SECRET}),
    )


def receivers_steps(target: Target) -> list[Step]:
    """The routing tree (printed) and the receivers' Secret (its data fed on kubectl's stdin
    at run time, from the variables the receivers name)."""
    alerting = target.settings.alerting
    names = ", ".join(sorted({f"${r.secret_env}" for r in alerting.receivers.values()}))
    return [
        Step(
            "Alertmanager routing (monitoring.alerting)",
            detail="\n    ".join(routing_tree(alerting)),
        ),
        Step(
            f"Alertmanager receivers Secret {target.namespace}/{alerting.secret} "
            f"(from {names})",
            tuple(kubectl(target.context, "apply", "-f", "-")),
            detail=f"the secrets: {names}, on kubectl's stdin (the config reads them as files)",
            tags=frozenset({RECEIVERS_SECRET}),
        ),
    ]


def plan_setup(target: Target, version: HelmVersion, repo_steps: Sequence[Step]) -> list[Step]:
    """Every step of ``monitoring.setup`` after the repositories are known."""
    ns, context = target.namespace, target.context
    steps = list(repo_steps)
    steps.append(
        Step(
            f"namespace {ns} (created if missing)",
            tuple(kubectl(context, "apply", "-f", "-")),
            stdin=namespace_manifest(ns),
        )
    )
    components = target.components
    kps = next((comp for comp in components if comp.key == KPS), None)
    alerting = target.settings.alerting
    if kps is not None:
        steps.append(admin_secret_step(target))
        if receivers_enabled(alerting):
            steps += receivers_steps(target)
        # Helm installs CRDs on first install only and never upgrades them: apply the pinned
        # chart's CRDs server-side first (too large for client-side apply's annotation).
        steps.append(
            Step(
                f"Prometheus Operator CRDs of {kps.chart_ref} {kps.version}",
                ("helm", "show", "crds", "--version", kps.version, "--", kps.chart_ref),
                tags=frozenset({OUTPUT_HIDDEN}),
            )
        )
        steps.append(
            Step(
                "apply them server-side",
                tuple(kubectl(context, "apply", "--server-side", "--force-conflicts", "-f", "-")),
                pipe_from_previous=True,
            )
        )
    timeout = helm_duration(target.settings.timeout)
    secret = target.settings.grafana.admin_secret
    for comp in components:
        extra = []
        if comp.key == "kube_prometheus_stack":
            extra = ["--set-string", f"grafana.admin.existingSecret={secret}"]
            if receivers_enabled(alerting):
                extra += alerting_helm_args(alerting)
        argv = helm(
            context,
            "upgrade",
            "--install",
            "--version",
            comp.version,
            "--namespace",
            ns,
            "--values",
            str(comp.values),
            *extra,
            *upgrade_safety_flags(version, timeout),
            "--",
            comp.release,
            comp.chart_ref,
        )
        steps.append(Step(f"{comp.release} ({comp.chart_ref} {comp.version})", tuple(argv)))
    return steps


def uninstall_wait_flags(version: HelmVersion, timeout: str) -> list[str]:
    """Wait for the deletion, in the spelling of this Helm major (Helm 4: ``--wait=watcher``)."""
    wait = "--wait=watcher" if version.major >= 4 else "--wait"
    return ["--ignore-not-found", wait, "--timeout", timeout]


def plan_uninstall(target: Target, version: HelmVersion) -> list[Step]:
    """``helm uninstall`` of every enabled release, in reverse install order.

    The namespace, the Grafana admin Secret and the Prometheus Operator CRDs are kept: deleting
    CRDs deletes every ServiceMonitor/PrometheusRule in the cluster, including the apps' own.
    """
    flags = uninstall_wait_flags(version, helm_duration(target.settings.timeout))
    return [
        Step(
            f"uninstall {comp.release}",
            tuple(
                helm(target.context, "uninstall", "--namespace", target.namespace, *flags)
                + ["--", comp.release]
            ),
        )
        for comp in reversed(target.components)
    ]


def chart_fullname(release: str, chart: str) -> str:
    """Helm's conventional ``<chart>.fullname``: the release name if it contains the chart name."""
    return release if chart in release else f"{release}-{chart}"


# What each UI task forwards: (component key, chart whose Service it is, remote port).
UIS = {"grafana": ("kube_prometheus_stack", "grafana", 80), "jaeger": ("jaeger", "jaeger", 16686)}


def port_forward_argv(target: Target, ui: str, port: int) -> list[str]:
    """``kubectl port-forward svc/<service> <port>:<remote>`` for one UI."""
    key, chart, remote = UIS[ui]
    service = chart_fullname(target.release(key), chart)
    return kubectl(
        target.context, "--namespace", target.namespace, "port-forward", f"svc/{service}"
    ) + [f"{port}:{remote}"]


def ui_hint(target: Target, ui: str, port: int) -> str:
    """The line printed before forwarding: the URL and how to log in."""
    url = f"http://127.0.0.1:{port}/"
    if ui == "jaeger":
        return f"{url}  (Jaeger UI; OTLP: 4317/4318; Ctrl-C stops)"
    grafana = target.settings.grafana
    secret = kubectl(
        target.context, "--namespace", target.namespace, "get", "secret", grafana.admin_secret
    )
    password = render([*secret, "-o", "jsonpath={.data.admin-password}"]) + " | base64 -d"
    return f"{url}  (user {grafana.admin_user}; password: {password}; Ctrl-C stops)"
