"""Pure planning for deploys: what an operation does (its steps), what it renders (the chart's
inputs), and the names and descriptions it uses.

Nothing here runs a command: :mod:`tasks.deploy.commands` builds every helm/kubectl argv,
:mod:`tasks.deploy.run` walks the steps; unit tests assert both directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.steps import Step

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


def describe_change(*, environment: str, git_sha: str, user: str, when: str) -> str:
    """The release ``--description``: who deployed what from where."""
    return f"flowlet-ops deploy env={environment} git={git_sha} user={user} at={when}"


def deployment_name(release: str, component: str) -> str:
    """The chart names objects ``<release>-<component>`` (see _helpers.tpl)."""
    return f"{release}-{component}"
