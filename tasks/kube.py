"""Shared Kubernetes/Helm helpers: the context guard and Helm 3/4 flag handling.

Every kubectl and helm command is built by :func:`kubectl` / :func:`helm`, which always pass the
environment's kube context explicitly, so the user's *current* context never decides where a
change goes. Used by the ``deploy``, ``setup`` (production) and ``monitoring`` collections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from invoke import Context

from tasks.core.environments import Environment
from tasks.core.errors import OpsError
from tasks.core.runner import Argv, probe, require_tools

KUBE_TOOLS = {
    "kubectl": "install kubectl (see https://kubernetes.io/docs/tasks/tools/)",
    "helm": "install Helm >= 3.18 or >= 4.1.2 (see https://helm.sh/docs/intro/install/)",
}

# Oldest release of each Helm major we support (and test against).
MIN_HELM = {3: (3, 18, 0), 4: (4, 1, 2)}

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class HelmVersion:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def parse_helm_version(text: str) -> HelmVersion:
    """Parse ``helm version --template '{{.Version}}'`` output (``v4.1.4``, ``v3.18.0+g1234``)."""
    match = _VERSION.match(text.strip())
    if not match:
        raise OpsError(f"helm version: cannot parse {text.strip()!r} (expected vMAJOR.MINOR.PATCH)")
    return HelmVersion(*(int(part) for part in match.groups()))


def check_helm_version(version: HelmVersion) -> HelmVersion:
    """Fail with one line unless ``version`` is a supported Helm 3 or Helm 4 release."""
    minimum = MIN_HELM.get(version.major)
    supported = " or ".join(f"v{'.'.join(map(str, v))}+" for v in MIN_HELM.values())
    if minimum is None or (version.major, version.minor, version.patch) < minimum:
        raise OpsError(f"helm {version} is not supported; supported: {supported}")
    return version


def detect_helm_version(c: Context) -> HelmVersion:
    """Ask the installed helm for its version (a read-only probe, runs under ``--dry`` too)."""
    result = probe(c, ["helm", "version", "--template", "{{.Version}}"])
    if result.exited != 0:
        raise OpsError(f"helm version failed (exit {result.exited}): {result.stderr.strip()}")
    return check_helm_version(parse_helm_version(result.stdout))


def upgrade_safety_flags(version: HelmVersion, timeout: str) -> list[str]:
    """Roll back on failure and wait for readiness, in the spelling of this Helm major.

    Helm 3: ``--atomic --wait``; Helm 4 renamed ``--atomic`` and replaced the legacy waiter:
    ``--rollback-on-failure --wait=watcher`` (kstatus-based, waits for the rollout to finish).
    """
    if version.major >= 4:
        flags = ["--rollback-on-failure", "--wait=watcher"]
    else:
        flags = ["--atomic", "--wait"]
    return [*flags, "--timeout", timeout]


def kubectl(context: str, *args: str) -> list[str]:
    """A kubectl argv pinned to ``context``."""
    return ["kubectl", "--context", context, *args]


def helm(context: str, *args: str) -> list[str]:
    """A helm argv pinned to ``context``."""
    return ["helm", "--kube-context", context, *args]


def resolve_context(environment: Environment, flag: str | None) -> tuple[str, str]:
    """The kube context to use and where it came from (for error messages)."""
    if flag is not None:
        return flag, "--context"
    if not environment.kube_context:
        raise OpsError(
            f"environments.{environment.name}.kube_context: missing required key "
            "(set it in invoke.yaml)"
        )
    return environment.kube_context, f"environments.{environment.name}.kube_context"


def parse_contexts(text: str) -> list[str]:
    """Parse ``kubectl config get-contexts -o name``."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def guard_context(c: Context, context: str, source: str) -> None:
    """Fail with one line unless ``context`` exists in the kubeconfig."""
    result = probe(c, ["kubectl", "config", "get-contexts", "-o", "name"])
    contexts = parse_contexts(result.stdout) if result.exited == 0 else []
    if context not in contexts:
        available = ", ".join(contexts) or "none"
        raise OpsError(
            f"{source}: kube context {context!r} not found in kubeconfig; available: {available}"
        )


def require_kube_tools(c: Context) -> HelmVersion:
    """kubectl and helm are installed and helm is a supported version; returns that version."""
    require_tools(KUBE_TOOLS)
    return detect_helm_version(c)


def describe(argv: Argv) -> str:
    """A short label for a step (``helm upgrade``, ``kubectl apply``) used in progress lines."""
    words = [a for a in argv if not a.startswith("-")]
    return " ".join(words[:1] + [w for w in words[1:2] if w not in ("--context",)])
