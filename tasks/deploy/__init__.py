"""Guarded Helm deploys of Flowlet: ``inv deploy``, recover, rollback, unlock, diff, status,
history, render, lint, and :func:`setup_cluster` (what ``inv setup --env staging|production``
runs).

This module holds only the task definitions (flags, help, docstrings); each task imports its
machinery when it runs: ``plan`` (pure: steps and every helm/kubectl argv), ``run`` (executes
deploys), ``recovery`` (rollback, recover), ``show`` (the read-only tasks), ``lock`` (the
Lease-based deploy lock), ``helmout`` (parsers of helm/kubectl output), ``manifests`` (the
namespace manifests), ``secrets`` (the app Secret), ``safety`` (git and production guards),
``validate`` (kubernetes-validate).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, Context

from tasks.core.environments import CONTEXT, CONTEXT_DESC
from tasks.core.settings import FilePath, Int, List, Str
from tasks.core.task import task
from tasks.deploy.settings import IMAGE_DIGEST_DESC, IMAGE_DIGEST_ITEM

if TYPE_CHECKING:
    from tasks.core.environments import Environment

__all__ = ["ns", "setup_cluster"]

ENV = "environment from invoke.yaml: development, staging or production (default: development)"
WHERE = {
    "env": ENV,
    "namespace": "override the environment's namespace",
    "context": "kube context to use instead of environments.<env>.kube_context",
}
IMAGE = {
    "image_tag": "backend and frontend image tag, e.g. a git SHA (default: deploy.image_tag, "
    "else the chart's appVersion)",
    "image_digest": "pin images by digest: backend=sha256:...,frontend=sha256:... (default: "
    "deploy.image_digests)",
}
DIGESTS = List([], Str(pattern=IMAGE_DIGEST_ITEM, desc=IMAGE_DIGEST_DESC))
# --context reaches every kubectl/helm argv: the same rules as environments.<env>.kube_context.
WHERE_FLAGS = {"context": Str(pattern=CONTEXT, desc=CONTEXT_DESC, empty=False)}
IMAGE_FLAGS = {"image_tag": "deploy.image_tag", "image_digest": DIGESTS}
TIMEOUT = "helm and rollout timeout, e.g. 10m (default: deploy.timeout)"
FORCE_CONFLICTS = (
    "Helm 4: take over fields another field manager owns (after kubectl scale/edit); an "
    "error on Helm 3"
)


@task(
    default=True,
    help={
        **WHERE,
        **IMAGE,
        "timeout": TIMEOUT,
        "yes": "do not ask for confirmation (required without a terminal where confirm is on)",
        "diff": "show the diff against the deployed release first (default on; --no-diff skips)",
        "allow_dirty": "allow a production deploy from a git tree with uncommitted changes",
        "force_conflicts": FORCE_CONFLICTS,
    },
    flags={**WHERE_FLAGS, **IMAGE_FLAGS, "timeout": "deploy.timeout"},
)
def deploy(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    image_tag: str | None = None,
    image_digest: tuple[str, ...] | None = None,
    timeout: int | None = None,
    yes: bool = False,
    diff: bool = True,
    context: str | None = None,
    allow_dirty: bool = False,
    force_conflicts: bool = False,
) -> None:
    """Deploy Flowlet with Helm: guards, diff, the deploy lock, upgrade, rollout check, audit.

    Example: inv deploy --env=staging --image-tag=$(git rev-parse --short HEAD)
    """
    from tasks.deploy import run

    environment, settings = run.resolve(c, env, namespace)
    run.deploy(
        c,
        environment,
        settings,
        run.options(
            settings,
            "deploy",
            image_tag=image_tag,
            image_digest=image_digest,
            timeout=timeout,
            context=context,
            yes=yes,
            diff=diff,
            allow_dirty=allow_dirty,
            force_conflicts=force_conflicts,
        ),
    )


def setup_cluster(
    c: Context, environment: Environment, *, yes: bool, allow_dirty: bool, image_tag: str | None
) -> None:
    """``inv setup --env staging|production``: namespace, deploy lock, the app Secret, deploy."""
    from tasks.core.settings import flag, load
    from tasks.deploy import run

    tag = flag("deploy.image_tag", image_tag, "--image-tag")
    settings = run.checked(load(c, "deploy"))
    if environment.values_file is None or not environment.values_file.is_file():
        from tasks.core.errors import ConfigError

        key = environment.key("values_file")
        raise ConfigError(f"{key}: missing or not a file: {environment.values_file or '(not set)'}")
    options = run.options(settings, "setup", image_tag=tag, yes=yes, allow_dirty=allow_dirty)
    run.deploy(c, environment, settings, options)


@task(
    help={
        **WHERE,
        "yes": "do not ask for confirmation",
        "force": "recover a pending revision younger than the deploy timeout",
        "timeout": TIMEOUT + "; a younger pending revision needs --force",
    },
    flags={**WHERE_FLAGS, "timeout": "deploy.timeout"},
)
def recover(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    yes: bool = False,
    force: bool = False,
    timeout: int | None = None,
) -> None:
    """Unstick a release left pending-*: roll back to the last deployed revision (or uninstall).

    Refuses while the deploy lock is held by a live operation, and a pending revision younger
    than the deploy timeout unless --force. Example: inv deploy.recover --env=staging --yes
    """
    from tasks.deploy import recovery, run

    environment, settings = run.resolve(c, env, namespace)
    recovery.recover(
        c,
        environment,
        settings,
        run.options(
            settings,
            "recover",
            timeout=timeout,
            context=context,
            yes=yes,
            force=force,
        ),
    )


@task(
    help={
        **WHERE,
        "revision": "revision to roll back to (default 0: the last good one, see README)",
        "yes": "do not ask for confirmation",
        "timeout": TIMEOUT,
        "force_conflicts": FORCE_CONFLICTS,
    },
    flags={
        **WHERE_FLAGS,
        "revision": Int(0, minimum=0, desc="0 (the last good revision) or a revision >= 1"),
        "timeout": "deploy.timeout",
    },
)
def rollback(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    revision: int | None = None,
    context: str | None = None,
    yes: bool = False,
    timeout: int | None = None,
    force_conflicts: bool = False,
) -> None:
    """Roll the release back to a revision (default: the last good one) and verify the rollout.

    Example: inv deploy.rollback --env=production --revision=41 --yes
    """
    from tasks.deploy import recovery, run

    environment, settings = run.resolve(c, env, namespace)
    recovery.rollback(
        c,
        environment,
        settings,
        run.options(
            settings,
            "rollback",
            timeout=timeout,
            context=context,
            yes=yes,
            revision=revision or 0,
            force_conflicts=force_conflicts,
        ),
    )


@task(
    help={**WHERE, "yes": "do not ask for confirmation", "force": "remove a live lock too"},
    flags=WHERE_FLAGS,
)
def unlock(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    yes: bool = False,
    force: bool = False,
) -> None:
    """Remove the deploy lock of a release: stale, or left by a process that is gone.

    A live lock (renewed within deploy.lock_stale_after) needs --force. Example: inv
    deploy.unlock --env=staging --yes
    """
    from tasks.deploy import lock, operation, run

    environment, settings = run.resolve(c, env, namespace)
    options = run.options(settings, "unlock", context=context)
    operation.prerequisites(c, options)
    target = operation.target_for(c, environment, options)
    lock.unlock(c, target, env=environment.name, yes=yes, force=force)


@task(
    help={
        **WHERE,
        **IMAGE,
        "exit_code": "exit 2 when a deploy would change something, 0 when not, 1 on errors",
        "show_secrets": "show Secret values in the diff (redacted by default)",
    },
    flags={**WHERE_FLAGS, **IMAGE_FLAGS},
)
def diff(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    image_tag: str | None = None,
    image_digest: tuple[str, ...] | None = None,
    exit_code: bool = False,
    show_secrets: bool = False,
) -> None:
    """Show what a deploy would change (helm diff plugin, else template vs deployed manifest).

    Example: inv deploy.diff --env=staging --exit-code
    """
    from tasks.deploy import run, show

    environment, settings = run.resolve(c, env, namespace)
    options = run.options(
        settings, "diff", image_tag=image_tag, image_digest=image_digest, context=context
    )
    show.diff(c, environment, settings, options, exit_code=exit_code, show_secrets=show_secrets)


@task(help=WHERE, flags=WHERE_FLAGS)
def status(
    c: Context, env: str | None = None, namespace: str | None = None, context: str | None = None
) -> None:
    """Show the release's status and its deployments, pods, HPAs and PDBs.

    A query that fails is one line with the tool's reason and its exit code. Example: inv
    deploy.status --env=production
    """
    from tasks.deploy import run, show

    environment, settings = run.resolve(c, env, namespace)
    show.status(c, environment, run.options(settings, "status", context=context))


@task(
    help={**WHERE, "max": "show at most this many revisions (default 20)"},
    flags={**WHERE_FLAGS, "max": Int(20, minimum=1, maximum=1000)},
)
def history(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    max: int | None = None,
) -> None:
    """Show the release's revisions (status, chart, description with git SHA and user).

    Example: inv deploy.history --env=staging --max=10
    """
    from tasks.deploy import run, show

    environment, settings = run.resolve(c, env, namespace)
    options = run.options(settings, "history", context=context)
    show.history(c, environment, options, max_revisions=max or 20)


@task(
    help={
        "env": "render only this environment (default: every environment with a values file)",
        "output": "directory to write <env>.yaml files to (default: stdout)",
        **IMAGE,
    },
    flags={**IMAGE_FLAGS, "output": FilePath("", kind="dir", empty=False)},
)
def render(
    c: Context,
    env: str | None = None,
    output: Path | None = None,
    image_tag: str | None = None,
    image_digest: tuple[str, ...] | None = None,
) -> None:
    """Render the chart with helm template per environment, to stdout or to a directory.

    Example: inv deploy.render --env=production --output=build/rendered
    """
    from tasks.core.settings import load
    from tasks.deploy import run, show

    settings = run.checked(load(c, "deploy"))
    options = run.options(settings, "render", image_tag=image_tag, image_digest=image_digest)
    show.render(c, settings, options, env=env, output=output)


@task(help={"env": "lint only this environment (default: every environment with a values file)"})
def lint(c: Context, env: str | None = None) -> None:
    """helm lint --strict per environment, then validate every rendered object (Kubernetes 1.33).

    Example: inv deploy.lint
    """
    from tasks.core.settings import load
    from tasks.deploy import run, show

    settings = run.checked(load(c, "deploy"))
    show.lint(c, settings, run.options(settings, "lint"), env=env)


ns = Collection("deploy", deploy, recover, rollback, unlock, diff, status, history, render, lint)
