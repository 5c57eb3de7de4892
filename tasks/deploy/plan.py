"""Pure planning for deploys: flag/config validation and every helm/kubectl argv we run.

Nothing here runs a command. The executor (:mod:`tasks.deploy.execute`) walks these plans; unit
tests assert them directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.errors import OpsError

from tasks.kube import HelmVersion, helm, kubectl, upgrade_safety_flags

MIN_TIMEOUT_SECONDS = 60
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_timeout(value: str, *, source: str) -> int:
    """``10m``, ``300s``, ``1h30m`` -> seconds; at least a minute."""
    match = _DURATION.match(value.strip())
    if not value.strip() or not match:
        raise OpsError(f"{source}: {value!r} is not a duration; valid: e.g. 300s, 10m, 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total < MIN_TIMEOUT_SECONDS:
        raise OpsError(f"{source}: {value!r} is too short; valid: at least {MIN_TIMEOUT_SECONDS}s")
    return total


def progress_deadline(timeout_seconds: int) -> int:
    """The Deployments' progressDeadlineSeconds: 80% of the deploy timeout (capped at 1h).

    A rollout that stops progressing is then marked failed by Kubernetes *before* Helm's wait
    times out, so Helm sees a failed Deployment and rolls back instead of just timing out.
    """
    return min(timeout_seconds * 4 // 5, 3600)


def validate_image_tag(value: str, *, source: str) -> str:
    if not _IMAGE_TAG.match(value):
        raise OpsError(
            f"{source}: {value!r} is not a valid image tag; valid: letters, digits, '_', '.', '-' "
            "(at most 128, not starting with '.' or '-'), e.g. a git SHA"
        )
    return value


@dataclass(frozen=True)
class Target:
    """Where a release lives: everything a helm/kubectl argv needs besides its verb."""

    environment: str
    namespace: str
    context: str
    release: str


@dataclass(frozen=True)
class ChartInputs:
    """What is rendered: chart, values file and the overrides ``inv deploy`` always sets."""

    chart: Path
    values_file: Path
    secret_name: str
    timeout_seconds: int
    image_tag: str = ""

    def values_args(self) -> list[str]:
        args = ["--values", str(self.values_file)]
        args += ["--set-string", f"existingSecret={self.secret_name}"]
        args += ["--set", f"progressDeadlineSeconds={progress_deadline(self.timeout_seconds)}"]
        if self.image_tag:
            args += ["--set-string", f"image.tag={self.image_tag}"]
        return args


def timeout_flag(seconds: int) -> str:
    return f"{seconds}s"


def history_argv(t: Target, max_revisions: int = 20) -> list[str]:
    return helm(
        t.context,
        "history",
        t.release,
        "--namespace",
        t.namespace,
        "--max",
        str(max_revisions),
        "--output",
        "json",
    )


def status_argv(t: Target) -> list[str]:
    return helm(t.context, "status", t.release, "--namespace", t.namespace, "--output", "json")


def get_manifest_argv(t: Target) -> list[str]:
    return helm(t.context, "get", "manifest", t.release, "--namespace", t.namespace)


def template_argv(t: Target, chart: ChartInputs) -> list[str]:
    """``helm template``: local rendering, no cluster (no context needed, none passed)."""
    return [
        "helm",
        "template",
        t.release,
        str(chart.chart),
        "--namespace",
        t.namespace,
        *chart.values_args(),
    ]


def lint_argv(chart: Path, values_file: Path, namespace: str) -> list[str]:
    return [
        "helm",
        "lint",
        "--strict",
        str(chart),
        "--namespace",
        namespace,
        "--values",
        str(values_file),
    ]


def diff_plugin_argv(t: Target, chart: ChartInputs) -> list[str]:
    """``helm diff upgrade`` (the helm-diff plugin), as the upgrade would be run."""
    return helm(
        t.context,
        "diff",
        "upgrade",
        t.release,
        str(chart.chart),
        "--namespace",
        t.namespace,
        "--allow-unreleased",
        "--context",
        "5",
        *chart.values_args(),
    )


def upgrade_argv(
    t: Target,
    chart: ChartInputs,
    version: HelmVersion,
    *,
    history_max: int,
    description: str,
) -> list[str]:
    """``helm upgrade --install`` with rollback on failure, a real wait, timeout and history."""
    return helm(
        t.context,
        "upgrade",
        t.release,
        str(chart.chart),
        "--install",
        "--namespace",
        t.namespace,
        *chart.values_args(),
        *upgrade_safety_flags(version, timeout_flag(chart.timeout_seconds)),
        "--cleanup-on-fail",
        "--history-max",
        str(history_max),
        "--description",
        description,
    )


def wait_flags(version: HelmVersion) -> list[str]:
    """Wait for readiness on rollback/uninstall, in this Helm major's spelling."""
    return ["--wait=watcher"] if version.major >= 4 else ["--wait"]


def rollback_argv(
    t: Target, revision: int, version: HelmVersion, *, timeout_seconds: int, history_max: int
) -> list[str]:
    """``helm rollback``; revision 0 means "the previous revision" (Helm's own default)."""
    revision_args = [str(revision)] if revision > 0 else []
    return helm(
        t.context,
        "rollback",
        t.release,
        *revision_args,
        "--namespace",
        t.namespace,
        *wait_flags(version),
        "--timeout",
        timeout_flag(timeout_seconds),
        "--cleanup-on-fail",
        "--history-max",
        str(history_max),
    )


def uninstall_argv(t: Target, version: HelmVersion, *, timeout_seconds: int) -> list[str]:
    return helm(
        t.context,
        "uninstall",
        t.release,
        "--namespace",
        t.namespace,
        *wait_flags(version),
        "--timeout",
        timeout_flag(timeout_seconds),
    )


def apply_argv(context: str, field_manager: str, namespace: str | None = None) -> list[str]:
    """Server-side apply of YAML on stdin: idempotent, conflicts reported, not overwritten."""
    ns_args = ["--namespace", namespace] if namespace else []
    return kubectl(
        context,
        *ns_args,
        "apply",
        "--server-side",
        f"--field-manager={field_manager}",
        "--filename",
        "-",
    )


def deployment_name(release: str, component: str) -> str:
    """The chart names objects ``<release>-<component>`` (see _helpers.tpl)."""
    return f"{release}-{component}"


def rollout_argv(t: Target, deployment: str, timeout_seconds: int) -> list[str]:
    return kubectl(
        t.context,
        "--namespace",
        t.namespace,
        "rollout",
        "status",
        f"deployment/{deployment}",
        f"--timeout={timeout_flag(timeout_seconds)}",
    )


def describe_deployment_argv(t: Target, deployment: str) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "describe", f"deployment/{deployment}")


def pods_argv(t: Target, component: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={t.release},app.kubernetes.io/component={component}"
    return kubectl(
        t.context,
        "--namespace",
        t.namespace,
        "get",
        "pods",
        f"--selector={selector}",
        "--output",
        "json",
    )


def logs_argv(t: Target, pod: str, lines: int) -> list[str]:
    return kubectl(
        t.context,
        "--namespace",
        t.namespace,
        "logs",
        pod,
        "--all-containers",
        f"--tail={lines}",
        "--prefix",
    )


def workloads_argv(t: Target) -> list[str]:
    return kubectl(
        t.context,
        "--namespace",
        t.namespace,
        "get",
        "deployments,pods,hpa,pdb",
        f"--selector=app.kubernetes.io/instance={t.release}",
        "--output",
        "wide",
    )


def secret_create_argv(context: str, namespace: str, name: str, env_file: str) -> list[str]:
    """Render the Secret client-side from an env file (values stay in the file, never argv)."""
    return kubectl(
        context,
        "--namespace",
        namespace,
        "create",
        "secret",
        "generic",
        name,
        f"--from-env-file={env_file}",
        "--dry-run=client",
        "--output",
        "yaml",
    )


def describe_change(*, environment: str, git_sha: str, user: str, when: str) -> str:
    """The release ``--description``: who deployed what from where."""
    return f"flowlet-ops deploy env={environment} git={git_sha} user={user} at={when}"


# -- namespace manifests ------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedManifests:
    text: str
    files: Sequence[str] = field(default_factory=tuple)


def manifest_params(
    params: Mapping[str, Any], environment: str, namespace: str, *, source: str
) -> dict[str, str]:
    """Merge the environment's block of params.yaml with the namespace and environment name."""
    block = params.get(environment)
    if not isinstance(block, Mapping):
        valid = ", ".join(sorted(params)) or "none"
        raise OpsError(f"{source}: no parameters for environment {environment!r}; found: {valid}")
    return {
        **{str(k): str(v) for k, v in block.items()},
        "namespace": namespace,
        "environment": environment,
    }


def render_manifests(templates: Mapping[str, str], values: Mapping[str, str]) -> RenderedManifests:
    """Substitute ``${name}`` in each template (sorted by file name) into one YAML stream.

    Only ``${name}`` is a placeholder: any other ``$`` is left alone.
    """
    documents = []
    for name in sorted(templates):
        text = templates[name]
        unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
        if unknown:
            raise OpsError(
                f"{name}: unknown placeholder ${{{unknown[0]}}}; known: {', '.join(sorted(values))}"
            )
        body = _PLACEHOLDER.sub(lambda match: values[match.group(1)], text).strip()
        documents.append(f"# Source: {name}\n{body.removeprefix('---').strip()}\n")
    return RenderedManifests(text="---\n" + "---\n".join(documents), files=tuple(sorted(templates)))
