"""Guarded Helm deploys of Flowlet: ``inv deploy``, recover, render, lint, diff, status, history,
rollback, and :func:`setup_cluster` (what ``inv setup --env staging|production`` runs).

Modules: ``plan`` (pure argv builders and validation), ``helmout`` (parsers of helm/kubectl
output), ``safety`` (git/production guards, signal forwarding), ``secrets`` (the app Secret),
``validate`` (kubernetes-validate), ``audit`` (the JSON-lines audit log), ``execute`` (the steps).
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from tasks.deploy.common import COMMON_HELP, environment_for, interruptible, target_for
from tasks.deploy.defaults import DEFAULTS
from tasks.deploy.readonly import diff, history, lint, render, status
from tasks.envdefaults import config_defaults

if TYPE_CHECKING:
    from tasks.deploy.plan import Target
    from tasks.deploy.settings import Settings
    from tasks.environments import Environment
    from tasks.kube import HelmVersion

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
    from tasks.deploy import execute
    from tasks.deploy.settings import resolve_settings

    environment = environment_for(c, env, namespace)
    settings = resolve_settings(c, timeout=timeout, diff=diff, image_tag=image_tag)
    with interruptible("deploy stopped"):
        execute.deploy_flow(
            c, environment, settings, context_flag=context, yes=yes, allow_dirty=allow_dirty
        )


def setup_cluster(
    c: Context, environment: Environment, *, yes: bool, allow_dirty: bool, image_tag: str | None
) -> None:
    """``inv setup --env staging|production``: namespace, the app Secret, then the deploy."""
    from tasks.deploy import execute
    from tasks.deploy.secrets import resolve_secret_source
    from tasks.deploy.settings import resolve_settings
    from tasks.environments import project_root

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
    from tasks.deploy import execute, helmout
    from tasks.deploy.plan import rollback_argv, uninstall_argv
    from tasks.deploy.settings import resolve_settings
    from tasks.runner import confirm, is_dry

    environment = environment_for(c, env, namespace)
    settings = resolve_settings(c)
    step = execute.Steps()
    step("prerequisites")
    version = execute.prerequisites(c)
    step("context guard")
    target = target_for(c, environment, context)
    step(f"release state: {target.release} in {target.namespace}")
    history = execute.read_history(c, target)
    if history is None:
        execute.note("(dry run: history not read; would roll back to the last deployed revision)")
        return
    plan = helmout.plan_recovery(history)
    if plan.action == "none":
        execute.note(f"nothing to recover: {plan.reason}")
        return
    stuck = plan.stuck or history[-1]
    what = (
        f"roll back to revision {plan.revision}"
        if plan.action == "rollback"
        else "uninstall the never-deployed release"
    )
    execute.note(f"revision {stuck.revision} is {stuck.status}: will {what}")
    step("confirmation")
    with interruptible("recover stopped"):
        if not is_dry(c):
            confirm(
                f"Make sure no other helm operation is running on {target.release}. "
                f"{what.capitalize()} in {target.namespace} ({target.context})?",
                yes=yes,
            )
        step(plan.action)
        argv = (
            rollback_argv(
                target,
                plan.revision,
                version,
                timeout_seconds=settings.timeout_seconds,
                history_max=settings.history_max,
            )
            if plan.action == "rollback"
            else uninstall_argv(target, version, timeout_seconds=settings.timeout_seconds)
        )
        _run_audited(c, settings, target, "recover", argv, version)


def _run_audited(
    c: Context,
    settings: Settings,
    target: Target,
    action: str,
    argv: list[str],
    version: HelmVersion,
) -> None:
    from tasks.deploy import execute
    from tasks.deploy.safety import interrupted_exit, read_git_state, run_forwarding_signals
    from tasks.environments import project_root

    started, clock = execute.now(), time.monotonic()
    state = read_git_state(c, project_root(c))
    result, signum = run_forwarding_signals(c, argv)
    outcome = "interrupted" if signum else ("succeeded" if result.exited == 0 else "failed")
    execute.record_audit(c, settings, target, action, outcome, "", state, version, started, clock)
    if signum:
        raise interrupted_exit(signum, f"helm exited {result.exited}; check inv deploy.status")
    if result.exited != 0:
        raise Exit(f"helm {action} failed (exit {result.exited})", code=result.exited)


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
    from tasks.deploy import execute
    from tasks.deploy.plan import rollback_argv
    from tasks.deploy.settings import resolve_settings

    if revision < 0:
        raise Exit(f"--revision: {revision} is not valid; valid: 0 (previous) or a revision >= 1")
    environment = environment_for(c, env, namespace)
    settings = resolve_settings(c, timeout=timeout)
    step = execute.Steps()
    step("prerequisites")
    version = execute.prerequisites(c)
    step("context guard")
    target = target_for(c, environment, context)
    step(f"release state: {target.release} in {target.namespace}")
    history = execute.release_state(c, environment, target, context)
    if history == []:
        raise Exit(f"release {target.release} is not installed in {target.namespace}")
    if history and revision and revision not in {r.revision for r in history}:
        known = ", ".join(str(r.revision) for r in history)
        raise Exit(f"--revision: {revision} is not in the release history; known: {known}")
    step("confirmation")
    with interruptible("rollback stopped"):
        to = f" to revision {revision}" if revision else " to the previous revision"
        execute.ask(c, environment, target, yes=yes, what="Roll back", suffix=to)
        step("helm rollback")
        argv = rollback_argv(
            target,
            revision,
            version,
            timeout_seconds=settings.timeout_seconds,
            history_max=settings.history_max,
        )
        _run_audited(c, settings, target, "rollback", argv, version)
        step("rollout verification")
        execute.verify_rollout(c, target, settings)


ns = Collection("deploy", deploy, recover, rollback, diff, status, history, render, lint)
ns.configure({"deploy": copy.deepcopy(DEFAULTS), **config_defaults()})
