"""Guarded Helm deploys of Flowlet: ``inv deploy``, recover, render, lint, diff, status, history,
rollback, and :func:`setup_cluster` (what ``inv setup --env staging|production`` runs).

Modules: ``plan`` (pure argv builders and validation), ``helmout`` (parsers of helm/kubectl
output), ``safety`` (git/production guards, signal forwarding), ``secrets`` (the app Secret),
``validate`` (kubernetes-validate), ``audit`` (the JSON-lines audit log), ``execute`` (the steps),
``flows`` (the task bodies, imported inside the tasks), ``defaults`` (config defaults, flag help).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection, Context

from tasks.core.task import task
from tasks.deploy.flaghelp import COMMON_HELP
from tasks.deploy.readonly import diff, history, lint, render, status

if TYPE_CHECKING:
    from tasks.core.environments import Environment

__all__ = ["ns", "setup_cluster"]


@task(
    default=True,
    help={
        **COMMON_HELP,
        "image_tag": "backend and frontend image tag, e.g. a git SHA (default: chart appVersion)",
        "timeout": "helm and rollout timeout, e.g. 10m (default: deploy.timeout)",
        "yes": "do not ask for confirmation (required without a terminal where confirm is on)",
        "diff": "show the diff against the deployed release first (default on; --no-diff skips)",
        "allow_dirty": "allow a production deploy from a git tree with uncommitted changes",
    },
)
def deploy(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    image_tag: str | None = None,
    timeout: str | None = None,
    yes: bool = False,
    diff: bool = True,
    context: str | None = None,
    allow_dirty: bool = False,
) -> None:
    """Deploy Flowlet with Helm: context guard, production guards, diff, upgrade, rollout check.

    Example: inv deploy --env=staging --image-tag=$(git rev-parse --short HEAD)
    """
    from tasks.deploy import flows

    flows.deploy(
        c,
        env=env,
        namespace=namespace,
        image_tag=image_tag,
        timeout=timeout,
        yes=yes,
        diff=diff,
        context=context,
        allow_dirty=allow_dirty,
    )


def setup_cluster(
    c: Context, environment: Environment, *, yes: bool, allow_dirty: bool, image_tag: str | None
) -> None:
    """``inv setup --env staging|production``: namespace, the app Secret, then the deploy."""
    from tasks.deploy import execute
    from tasks.deploy.common import interruptible
    from tasks.deploy.secrets import resolve_secret_source
    from tasks.deploy.config import resolve_settings
    from tasks.core.settings import project_root

    settings = resolve_settings(c, image_tag=image_tag)
    secret = resolve_secret_source(settings.secret, environment.name, project_root(c))
    with interruptible("setup stopped"):
        execute.deploy_flow(
            c,
            environment,
            settings,
            context_flag=None,
            yes=yes,
            allow_dirty=allow_dirty,
            secret=secret,
        )


@task(help={**COMMON_HELP, "yes": "do not ask for confirmation"})
def recover(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    yes: bool = False,
) -> None:
    """Unstick a release left pending-*: roll back to the last deployed revision (or uninstall).

    Example: inv deploy.recover --env=production
    """
    from tasks.deploy import flows

    flows.recover(c, env=env, namespace=namespace, context=context, yes=yes)


@task(
    help={
        **COMMON_HELP,
        "revision": "revision to roll back to (default 0: the previous one)",
        "yes": "do not ask for confirmation",
        "timeout": "wait timeout, e.g. 10m (default: deploy.timeout)",
    }
)
def rollback(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    revision: int = 0,
    context: str | None = None,
    yes: bool = False,
    timeout: str | None = None,
) -> None:
    """Roll the release back to a revision (default: the previous one) and verify the rollout.

    Example: inv deploy.rollback --env=production --revision=41
    """
    from tasks.deploy import flows

    flows.rollback(
        c,
        env=env,
        namespace=namespace,
        revision=revision,
        context=context,
        yes=yes,
        timeout=timeout,
    )


ns = Collection("deploy", deploy, recover, rollback, diff, status, history, render, lint)
