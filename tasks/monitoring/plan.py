"""Pure planners for ``monitoring.setup`` / ``monitoring.uninstall`` and the probe parsers they use.

A plan is a list of :class:`Step`; the tasks print and execute it, ``--dry`` prints it, and the
tests assert it. Nothing here runs a command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tasks.core.errors import OpsError

from tasks.kube import HelmVersion, helm, kubectl, upgrade_safety_flags
from tasks.monitoring.config import Component, MonitoringSettings

# Placeholder (not a password) in the Secret step's argv, replaced at run time by the path of
# a 0600 temp file.
PASSWORD_FILE = "{password_file}"  # nosec B105


@dataclass(frozen=True)
class Step:
    """One command of a plan.

    ``stdin`` is fed to the command (a manifest, never a secret); ``pipe_from_previous`` feeds it
    the previous step's stdout instead (``helm show crds`` -> ``kubectl apply -f -``);
    ``only_if_secret_missing`` marks the Grafana admin Secret step (skipped if it exists).
    """

    title: str
    argv: tuple[str, ...]
    stdin: str | None = None
    pipe_from_previous: bool = False
    only_if_secret_missing: bool = False


def parse_repo_list(text: str) -> dict[str, str]:
    """Parse ``helm repo list -o json`` (``[{"name": ..., "url": ...}]``) into ``{name: url}``."""
    try:
        rows = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise OpsError(f"helm repo list: cannot parse its JSON output ({exc.msg})") from None
    return {str(row["name"]): str(row["url"]) for row in rows or []}


def chart_in_index(text: str, chart_ref: str, version: str) -> bool:
    """True if ``helm search repo <chart_ref> --version <v> -o json`` lists exactly that chart."""
    try:
        rows = json.loads(text or "[]")
    except json.JSONDecodeError:
        return False
    return any(r.get("name") == chart_ref and r.get("version") == version for r in rows or [])


def search_argv(component: Component) -> list[str]:
    return [
        "helm",
        "search",
        "repo",
        component.chart_ref,
        "--version",
        component.version,
        "-o",
        "json",
    ]


def plan_repos(
    components: Sequence[Component], present: Mapping[str, str], cached: set[str]
) -> list[Step]:
    """``helm repo add`` for missing repositories, ``helm repo update`` only for stale ones.

    ``present`` is the parsed ``helm repo list``; ``cached`` the chart refs whose pinned version
    the local index already has. A repository present under another URL is an error (we would
    install someone else's chart under the configured name).
    """
    steps: list[Step] = []
    stale: list[str] = []
    for repo, url in dict.fromkeys((c.repo, c.repo_url) for c in components):
        if repo not in present:
            steps.append(Step(f"add chart repository {repo}", ("helm", "repo", "add", repo, url)))
        elif present[repo].rstrip("/") != url.rstrip("/"):
            raise OpsError(
                f"monitoring.repos.{repo}: helm already has repository {repo!r} at "
                f"{present[repo]}, not {url}; remove it (helm repo remove {repo}) or rename it"
            )
    for component in components:
        if component.repo in present and component.chart_ref not in cached:
            stale.append(component.repo)
    if stale:
        names = list(dict.fromkeys(stale))
        steps.append(
            Step(f"refresh index of {', '.join(names)}", ("helm", "repo", "update", *names))
        )
    return steps


def namespace_manifest(namespace: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


def plan_setup(
    settings: MonitoringSettings, context: str, version: HelmVersion, repo_steps: Sequence[Step]
) -> list[Step]:
    """Every step of ``monitoring.setup`` after the repositories are known."""
    ns = settings.namespace
    steps = list(repo_steps)
    steps.append(
        Step(
            f"namespace {ns} (created if missing)",
            tuple(kubectl(context, "apply", "-f", "-")),
            stdin=namespace_manifest(ns),
        )
    )
    kps = settings.component("kube_prometheus_stack")
    if kps is not None:
        steps.append(
            Step(
                f"Grafana admin Secret {ns}/{settings.admin_secret} "
                f"(created from ${settings.password_env} if missing)",
                tuple(
                    kubectl(
                        context,
                        "--namespace",
                        ns,
                        "create",
                        "secret",
                        "generic",
                        settings.admin_secret,
                        f"--from-literal=admin-user={settings.admin_user}",
                        f"--from-file=admin-password={PASSWORD_FILE}",
                    )
                ),
                only_if_secret_missing=True,
            )
        )
        # Helm installs CRDs on first install only and never upgrades them: apply the pinned
        # chart's CRDs server-side first (too large for client-side apply's annotation).
        steps.append(
            Step(
                f"Prometheus Operator CRDs of {kps.chart_ref} {kps.version}",
                ("helm", "show", "crds", kps.chart_ref, "--version", kps.version),
            )
        )
        steps.append(
            Step(
                "apply them server-side",
                tuple(kubectl(context, "apply", "--server-side", "--force-conflicts", "-f", "-")),
                pipe_from_previous=True,
            )
        )
    for component in settings.components:
        extra: list[str] = []
        if component.key == "kube_prometheus_stack":
            extra = ["--set-string", f"grafana.admin.existingSecret={settings.admin_secret}"]
        argv = helm(
            context,
            "upgrade",
            "--install",
            component.release,
            component.chart_ref,
            "--version",
            component.version,
            "--namespace",
            ns,
            "--values",
            str(component.values),
            *extra,
            *upgrade_safety_flags(version, settings.timeout),
        )
        steps.append(
            Step(f"{component.release} ({component.chart_ref} {component.version})", tuple(argv))
        )
    return steps


def uninstall_wait_flags(version: HelmVersion, timeout: str) -> list[str]:
    """Wait for the deletion, in the spelling of this Helm major (Helm 4: ``--wait=watcher``)."""
    wait = "--wait=watcher" if version.major >= 4 else "--wait"
    return ["--ignore-not-found", wait, "--timeout", timeout]


def plan_uninstall(settings: MonitoringSettings, context: str, version: HelmVersion) -> list[Step]:
    """``helm uninstall`` of every enabled release, in reverse install order.

    The namespace, the Grafana admin Secret and the Prometheus Operator CRDs are kept: deleting
    CRDs deletes every ServiceMonitor/PrometheusRule in the cluster, including the apps' own.
    """
    return [
        Step(
            f"uninstall {component.release}",
            tuple(
                helm(
                    context,
                    "uninstall",
                    component.release,
                    "--namespace",
                    settings.namespace,
                    *uninstall_wait_flags(version, settings.timeout),
                )
            ),
        )
        for component in reversed(settings.components)
    ]
