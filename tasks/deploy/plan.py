"""Pure planning for deploys: what a deploy does (its steps) and every helm/kubectl argv.

Nothing here runs a command. :mod:`tasks.deploy.run` walks these plans; unit tests assert them
directly. The deploy lock's commands are in :mod:`tasks.deploy.lock`, the manifests renderer
in :mod:`tasks.deploy.manifests`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.steps import Step
from tasks.kube import HelmVersion, helm, kubectl, upgrade_safety_flags

# What --dry shows where the Secret's digest would be (it is read or computed when it runs).
DRY_CHECKSUM = "SHA256_OF_THE_SECRET_DATA"


def progress_deadline(timeout_seconds: int) -> int:
    """The Deployments' progressDeadlineSeconds: 80% of the deploy timeout (capped at 1h).

    A rollout that stops progressing is then marked failed by Kubernetes *before* Helm's wait
    times out, so Helm sees a failed Deployment and rolls back instead of just timing out.
    """
    return min(timeout_seconds * 4 // 5, 3600)


@dataclass(frozen=True)
class Target:
    """Where a release lives: everything a helm/kubectl argv needs besides its verb."""

    environment: str
    namespace: str
    context: str
    release: str


@dataclass(frozen=True)
class Options:
    """What the flags of one deploy-family task ask for (defaults already applied)."""

    operation: str  # deploy | setup | rollback | recover | unlock | diff | status | history
    context: str | None = None  # --context (None: environments.<env>.kube_context)
    yes: bool = False
    allow_dirty: bool = False
    diff: bool = True
    image_tag: str = ""
    image_digests: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 600
    force_conflicts: bool = False
    revision: int = 0
    force: bool = False


@dataclass(frozen=True)
class ChartInputs:
    """What is rendered: chart, values file and the overrides ``inv deploy`` always sets."""

    chart: Path
    values_file: Path
    secret_name: str
    timeout_seconds: int
    image_tag: str = ""
    image_digests: Mapping[str, str] = field(default_factory=dict)
    secret_checksum: str = ""  # sha256 of the Secret's data: a changed Secret rolls the pods

    def values_args(self) -> list[str]:
        args = ["--values", str(self.values_file)]
        args += ["--set-string", f"existingSecret={self.secret_name}"]
        args += ["--set", f"progressDeadlineSeconds={progress_deadline(self.timeout_seconds)}"]
        if self.image_tag:
            args += ["--set-string", f"image.tag={self.image_tag}"]
        for component, digest in sorted(self.image_digests.items()):
            args += ["--set-string", f"{component}.image.digest={digest}"]
        if self.secret_checksum:
            args += ["--set-string", f"secretChecksum={self.secret_checksum}"]
        return args


def timeout_flag(seconds: int) -> str:
    return f"{seconds}s"


def image_digests(items: tuple[str, ...] | None, configured: Mapping[str, str]) -> dict[str, str]:
    """``--image-digest backend=sha256:...`` items over ``deploy.image_digests``."""
    digests = dict(configured)
    for item in items or ():
        component, _, digest = item.partition("=")
        digests[component] = digest
    return digests


# -- the steps of a deploy ------------------------------------------------------------------------


def deploy_steps(options: Options, target: Target, *, secret_name: str, lease: str) -> list[Step]:
    """The steps of ``inv deploy`` (and ``inv setup --env <cluster>``), in order.

    ``tags`` name the step for the executor; ``"finally"`` steps run on every exit path once
    the operation has started (the lock is held). The pending check comes after the lock:
    nothing can start between it and the upgrade.
    """
    setup = options.operation == "setup"
    ns = target.namespace
    how = "rendered from deploy.secret" if setup else "read from the cluster"
    steps = [
        Step("prerequisites: kubectl and helm", tags=frozenset({"prerequisites"})),
        Step("context guard", tags=frozenset({"context"})),
        Step("guards: git tree and confirmation", tags=frozenset({"guards"})),
        Step(f"secret {secret_name}: digest of its data ({how})", tags=frozenset({"digest"})),
    ]
    if options.diff:
        steps.append(Step("diff against the deployed release", tags=frozenset({"diff"})))
    steps += [
        Step("confirmation", tags=frozenset({"confirm"})),
        Step(f"namespace {ns}: manifests", tags=frozenset({"namespace"})),
        Step(f"deploy lock: lease {lease} in {ns}", tags=frozenset({"lock"})),
        Step(f"release state: {target.release} in {ns}", tags=frozenset({"state"})),
    ]
    if setup:
        steps.append(Step(f"secret {secret_name}: server-side apply", tags=frozenset({"secret"})))
    return steps + [
        Step("helm upgrade --install", tags=frozenset({"upgrade"})),
        Step("rollout verification", tags=frozenset({"rollout"})),
        Step("audit record", tags=frozenset({"audit", "finally"})),
        Step("deploy lock: release", tags=frozenset({"unlock", "finally"})),
    ]


# -- helm ------------------------------------------------------------------------------------------


def history_argv(t: Target, max_revisions: int = 20) -> list[str]:
    return helm(t.context, "history", t.release, "--namespace", t.namespace,
                "--max", str(max_revisions), "--output", "json")  # fmt: skip


def status_argv(t: Target) -> list[str]:
    return helm(t.context, "status", t.release, "--namespace", t.namespace, "--output", "json")


def get_manifest_argv(t: Target) -> list[str]:
    return helm(t.context, "get", "manifest", t.release, "--namespace", t.namespace)


def template_argv(t: Target, chart: ChartInputs) -> list[str]:
    """``helm template``: local rendering, no cluster (no context needed, none passed)."""
    return ["helm", "template", t.release, str(chart.chart), "--namespace", t.namespace,
            *chart.values_args()]  # fmt: skip


def lint_argv(chart: Path, values_file: Path, namespace: str) -> list[str]:
    return ["helm", "lint", "--strict", str(chart), "--namespace", namespace,
            "--values", str(values_file)]  # fmt: skip


def diff_plugin_argv(t: Target, chart: ChartInputs, *, show_secrets: bool = False) -> list[str]:
    """``helm diff upgrade`` (the helm-diff plugin), as the upgrade would be run.

    ``--detailed-exitcode``: exit 2 when there are changes. The plugin redacts Secret data
    unless ``--show-secrets``.
    """
    shown = ["--show-secrets"] if show_secrets else []
    return helm(t.context, "diff", "upgrade", t.release, str(chart.chart), "--namespace",
                t.namespace, "--allow-unreleased", "--detailed-exitcode", "--context", "5",
                *shown, *chart.values_args())  # fmt: skip


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
    return helm(t.context, "upgrade", t.release, str(chart.chart), "--install", "--namespace",
                t.namespace, *chart.values_args(),
                *upgrade_safety_flags(version, timeout_flag(chart.timeout_seconds)), *forced,
                "--cleanup-on-fail", "--history-max", str(history_max),
                "--description", description)  # fmt: skip


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
    return helm(t.context, "rollback", t.release, *revision_args, "--namespace", t.namespace,
                *wait_flags(version), "--timeout", timeout_flag(timeout_seconds), *forced,
                "--cleanup-on-fail", "--history-max", str(history_max))  # fmt: skip


def uninstall_argv(t: Target, version: HelmVersion, *, timeout_seconds: int) -> list[str]:
    return helm(t.context, "uninstall", t.release, "--namespace", t.namespace,
                *wait_flags(version), "--timeout", timeout_flag(timeout_seconds))  # fmt: skip


def describe_change(*, environment: str, git_sha: str, user: str, when: str) -> str:
    """The release ``--description``: who deployed what from where."""
    return f"flowlet-ops deploy env={environment} git={git_sha} user={user} at={when}"


# -- kubectl ---------------------------------------------------------------------------------------


def apply_argv(
    context: str, field_manager: str, namespace: str | None = None, *, force_conflicts: bool = False
) -> list[str]:
    """Server-side apply of YAML on stdin: idempotent; conflicts reported unless forced."""
    ns_args = ["--namespace", namespace] if namespace else []
    forced = ["--force-conflicts"] if force_conflicts else []
    return kubectl(context, *ns_args, "apply", "--server-side", *forced,
                   f"--field-manager={field_manager}", "--filename", "-")  # fmt: skip


def secret_render_argv(context: str, namespace: str, name: str) -> list[str]:
    """Render the Secret client-side from the env-file text on stdin (never on argv)."""
    return kubectl(context, "--namespace", namespace, "create", "secret", "generic", name,
                   "--from-env-file=/dev/stdin", "--dry-run=client", "--output", "yaml")  # fmt: skip


def secret_get_argv(t: Target, name: str) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "get", "secret", name,
                   "--output", "json")  # fmt: skip


def deployment_name(release: str, component: str) -> str:
    """The chart names objects ``<release>-<component>`` (see _helpers.tpl)."""
    return f"{release}-{component}"


def rollout_argv(t: Target, deployment: str, timeout_seconds: int) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "rollout", "status",
                   f"deployment/{deployment}", f"--timeout={timeout_flag(timeout_seconds)}")  # fmt: skip


def describe_deployment_argv(t: Target, deployment: str) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "describe", f"deployment/{deployment}")


def pods_argv(t: Target, component: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={t.release},app.kubernetes.io/component={component}"
    return kubectl(t.context, "--namespace", t.namespace, "get", "pods",
                   f"--selector={selector}", "--output", "json")  # fmt: skip


def logs_argv(t: Target, pod: str, lines: int) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "logs", pod, "--all-containers",
                   f"--tail={lines}", "--prefix")  # fmt: skip


def workloads_argv(t: Target) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "get", "deployments,pods,hpa,pdb",
                   f"--selector=app.kubernetes.io/instance={t.release}", "--output", "wide")  # fmt: skip
