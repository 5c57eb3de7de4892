"""Every helm and kubectl argv of the deploy tasks (pure functions of a :class:`Target`).

Each command passes the environment's kube context explicitly (:func:`tasks.kube.helm` /
:func:`tasks.kube.kubectl`), so the user's current context never decides where a change goes.
Positional arguments (release, chart, object names) come last, after ``--``: a value is never
read as an option, whatever it spells (the values are validated too).
"""

from __future__ import annotations

from pathlib import Path

from tasks.deploy.plan import ChartInputs, Target, timeout_flag
from tasks.kube import HelmVersion, helm, kubectl, upgrade_safety_flags


def history_argv(t: Target, max_revisions: int = 20) -> list[str]:
    return helm(
        t.context,
        "history",
        "--namespace",
        t.namespace,
        "--max",
        str(max_revisions),
        "--output",
        "json",
        "--",
        t.release,
    )


def status_argv(t: Target) -> list[str]:
    return helm(
        t.context, "status", "--namespace", t.namespace, "--output", "json", "--", t.release
    )


def get_manifest_argv(t: Target) -> list[str]:
    return helm(t.context, "get", "manifest", "--namespace", t.namespace, "--", t.release)


def template_argv(t: Target, chart: ChartInputs, *, hooks: bool = True) -> list[str]:
    """``helm template``: local rendering, no cluster (no context needed, none passed).
    ``hooks=False`` (``--no-hooks``) renders what ``helm get manifest`` shows of a release:
    hooks (the migration Job) are not part of it."""
    return [
        "helm",
        "template",
        *([] if hooks else ["--no-hooks"]),
        "--namespace",
        t.namespace,
        *chart.values_args(),
        "--",
        t.release,
        str(chart.chart),
    ]


def lint_argv(chart: Path, values_file: Path, namespace: str) -> list[str]:
    return [
        "helm",
        "lint",
        "--strict",
        "--namespace",
        namespace,
        "--values",
        str(values_file),
        "--",
        str(chart),
    ]


def diff_plugin_argv(t: Target, chart: ChartInputs, *, show_secrets: bool = False) -> list[str]:
    """``helm diff upgrade`` (the helm-diff plugin), as the upgrade would be run.

    ``--detailed-exitcode``: exit 2 when there are changes. The plugin redacts Secret data
    unless ``--show-secrets``.
    """
    shown = ["--show-secrets"] if show_secrets else []
    return helm(
        t.context,
        "diff",
        "upgrade",
        t.release,
        str(chart.chart),
        "--namespace",
        t.namespace,
        "--allow-unreleased",
        "--detailed-exitcode",
        "--context",
        "5",
        *shown,
        *chart.values_args(),
    )


def upgrade_argv(
    t: Target,
    chart: ChartInputs,
    version: HelmVersion,
    *,
    history_max: int,
    description: str,
    force_conflicts: bool = False,
) -> list[str]:
    """``helm upgrade --install`` with rollback on failure, a real wait, timeout and history.

    ``force_conflicts`` (Helm 4: server-side apply) takes over fields another field manager
    owns (after ``kubectl scale`` / ``kubectl edit``).
    """
    forced = ["--force-conflicts"] if force_conflicts else []
    return helm(
        t.context,
        "upgrade",
        "--install",
        "--namespace",
        t.namespace,
        *chart.values_args(),
        *upgrade_safety_flags(version, timeout_flag(chart.timeout_seconds)),
        *forced,
        "--cleanup-on-fail",
        "--history-max",
        str(history_max),
        "--description",
        description,
        "--",
        t.release,
        str(chart.chart),
    )


def wait_flags(version: HelmVersion) -> list[str]:
    """Wait for readiness on rollback/uninstall, in this Helm major's spelling."""
    return ["--wait=watcher"] if version.major >= 4 else ["--wait"]


def rollback_argv(
    t: Target,
    revision: int,
    version: HelmVersion,
    *,
    timeout_seconds: int,
    history_max: int,
    force_conflicts: bool = False,
) -> list[str]:
    """``helm rollback``; revision 0 means "the previous revision" (Helm's own default)."""
    revision_args = [str(revision)] if revision > 0 else []
    forced = ["--force-conflicts"] if force_conflicts else []
    return helm(
        t.context,
        "rollback",
        "--namespace",
        t.namespace,
        *wait_flags(version),
        "--timeout",
        timeout_flag(timeout_seconds),
        *forced,
        "--cleanup-on-fail",
        "--history-max",
        str(history_max),
        "--",
        t.release,
        *revision_args,
    )


def uninstall_argv(t: Target, version: HelmVersion, *, timeout_seconds: int) -> list[str]:
    return helm(
        t.context,
        "uninstall",
        "--namespace",
        t.namespace,
        *wait_flags(version),
        "--timeout",
        timeout_flag(timeout_seconds),
        "--",
        t.release,
    )


def in_namespace(t: Target, *args: str) -> list[str]:
    """``kubectl --context C --namespace NS ARGS``: a namespaced kubectl argv of ``t``."""
    return kubectl(t.context, "--namespace", t.namespace, *args)


def apply_argv(
    context: str, field_manager: str, namespace: str | None = None, *, force_conflicts: bool = False
) -> list[str]:
    """Server-side apply of YAML on stdin: idempotent; conflicts reported unless forced."""
    ns_args = ["--namespace", namespace] if namespace else []
    forced = ["--force-conflicts"] if force_conflicts else []
    return kubectl(
        context,
        *ns_args,
        "apply",
        "--server-side",
        *forced,
        f"--field-manager={field_manager}",
        "--filename",
        "-",
    )


def secret_render_argv(context: str, namespace: str, name: str) -> list[str]:
    """Render the Secret client-side from the env-file text on stdin (never on argv)."""
    return kubectl(
        context,
        "--namespace",
        namespace,
        "create",
        "secret",
        "generic",
        name,
        "--from-env-file=/dev/stdin",
        "--dry-run=client",
        "--output",
        "yaml",
    )


def secret_get_argv(t: Target, name: str) -> list[str]:
    return in_namespace(t, "get", "secret", name, "--output", "json")


def rollout_argv(t: Target, deployment: str, timeout_seconds: int) -> list[str]:
    return in_namespace(
        t,
        "rollout",
        "status",
        f"deployment/{deployment}",
        f"--timeout={timeout_flag(timeout_seconds)}",
    )


def describe_deployment_argv(t: Target, deployment: str) -> list[str]:
    return in_namespace(t, "describe", f"deployment/{deployment}")


def pods_argv(t: Target, component: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={t.release},app.kubernetes.io/component={component}"
    return in_namespace(
        t,
        "get",
        "pods",
        f"--selector={selector}",
        "--output",
        "json",
    )


def logs_argv(t: Target, pod: str, lines: int) -> list[str]:
    return in_namespace(
        t,
        "logs",
        pod,
        "--all-containers",
        f"--tail={lines}",
        "--prefix",
    )


def workloads_argv(t: Target) -> list[str]:
    return in_namespace(
        t,
        "get",
        "deployments,pods,hpa,pdb",
        f"--selector=app.kubernetes.io/instance={t.release}",
        "--output",
        "wide",
    )


def revision_manifest_argv(t: Target, revision: int) -> list[str]:
    """``helm get manifest --revision N``: what a revision ran (its images)."""
    return helm(
        t.context,
        "get",
        "manifest",
        "--namespace",
        t.namespace,
        "--revision",
        str(revision),
        "--",
        t.release,
    )
