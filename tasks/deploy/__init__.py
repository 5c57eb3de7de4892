"""Guarded Helm deploys of Flowlet: ``inv deploy``, recover, render, lint, diff, status, history,
rollback, and :func:`setup_cluster` (what ``inv setup --env staging|production`` runs).

Modules: ``plan`` (pure argv builders and validation), ``helmout`` (parsers of helm/kubectl
output), ``safety`` (git/production guards, signal forwarding), ``secrets`` (the app Secret),
``validate`` (kubernetes-validate), ``audit`` (the JSON-lines audit log), ``execute`` (the steps).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from tasks import environments
from tasks.deploy import execute, helmout
from tasks.deploy.plan import (
    DEFAULTS,
    Target,
    lint_argv,
    rollback_argv,
    status_argv,
    template_argv,
    uninstall_argv,
    workloads_argv,
)
from tasks.deploy.safety import interrupted_exit, read_git_state, run_forwarding_signals
from tasks.deploy.secrets import resolve_secret_source
from tasks.environments import Environment, project_root, resolve_environment
from tasks.runner import confirm, is_dry, probe, run

__all__ = ["ns", "setup_cluster"]

ENV_HELP = "environment from invoke.yaml: development, staging or production (default: development)"
COMMON_HELP = {
    "env": ENV_HELP,
    "namespace": "override the environment's namespace",
    "context": "kube context to use instead of environments.<env>.kube_context",
}


@contextmanager
def interruptible(what: str) -> Iterator[None]:
    """Ctrl-C outside helm (prompts, kubectl) ends the task with exit 130, no traceback."""
    try:
        yield
    except KeyboardInterrupt:
        raise interrupted_exit(2, what) from None


def _environment(c: Context, env: str | None, namespace: str | None) -> Environment:
    return resolve_environment(c, env, namespace, require=("values_file",))


def _target(c: Context, environment: Environment, context: str | None) -> Target:
    ctx = execute.check_context(c, environment, context)
    return Target(environment.name, environment.namespace, ctx, environment.release)


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
    environment = _environment(c, env, namespace)
    settings = execute.resolve_settings(c, timeout=timeout, diff=diff, image_tag=image_tag)
    with interruptible("deploy stopped"):
        execute.deploy_flow(
            c, environment, settings, context_flag=context, yes=yes, allow_dirty=allow_dirty
        )


def setup_cluster(
    c: Context, environment: Environment, *, yes: bool, allow_dirty: bool, image_tag: str | None
) -> None:
    """``inv setup --env staging|production``: namespace, the app Secret, then the deploy."""
    settings = execute.resolve_settings(c, image_tag=image_tag)
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
    environment = _environment(c, env, namespace)
    settings = execute.resolve_settings(c)
    step = execute.Steps()
    step("prerequisites")
    version = execute.prerequisites(c)
    step("context guard")
    target = _target(c, environment, context)
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
    settings: execute.Settings,
    target: Target,
    action: str,
    argv: list[str],
    version: object,
) -> None:
    started, clock = execute.now(), time.monotonic()
    state = read_git_state(c, project_root(c))
    result, signum = run_forwarding_signals(c, argv)
    outcome = "interrupted" if signum else ("succeeded" if result.exited == 0 else "failed")
    execute.record_audit(
        c, settings, target, action, outcome, "", state, version, started, clock  # type: ignore
    )
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
    if revision < 0:
        raise Exit(f"--revision: {revision} is not valid; valid: 0 (previous) or a revision >= 1")
    environment = _environment(c, env, namespace)
    settings = execute.resolve_settings(c, timeout=timeout)
    step = execute.Steps()
    step("prerequisites")
    version = execute.prerequisites(c)
    step("context guard")
    target = _target(c, environment, context)
    step(f"release state: {target.release} in {target.namespace}")
    history = execute.release_state(c, environment, target, context)
    if history == []:
        raise Exit(f"release {target.release} is not installed in {target.namespace}")
    if history and revision and revision not in {r.revision for r in history}:
        known = ", ".join(str(r.revision) for r in history)
        raise Exit(f"--revision: {revision} is not in the release history; known: {known}")
    step("confirmation")
    with interruptible("rollback stopped"):
        execute.ask(c, environment, target, yes=yes, what=f"Roll back to {revision or 'previous'}:")
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


@task(help={**COMMON_HELP, "image_tag": "image tag to render with (default: chart appVersion)"})
def diff(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    image_tag: str | None = None,
) -> None:
    """Show what a deploy would change (helm diff plugin, else template vs deployed manifest).

    Example: inv deploy.diff --env=staging
    """
    environment = _environment(c, env, namespace)
    settings = execute.resolve_settings(c, image_tag=image_tag)
    require = execute.Steps()
    require("prerequisites")
    execute.prerequisites(c)
    require("context guard")
    target = _target(c, environment, context)
    require("diff")
    execute.show_diff(c, target, execute.chart_inputs(environment, settings))


@task(help=COMMON_HELP)
def status(
    c: Context, env: str | None = None, namespace: str | None = None, context: str | None = None
) -> None:
    """Show the release's status and its deployments, pods, HPAs and PDBs.

    Example: inv deploy.status --env=production
    """
    environment = _environment(c, env, namespace)
    target = _target(c, environment, context)
    result = run(c, status_argv(target), hide=True, warn=True)
    if is_dry(c):
        return
    if result.exited != 0:
        if helmout.release_missing(result.stderr):
            raise Exit(f"release {target.release} is not installed in {target.namespace}")
        raise Exit(f"helm status failed (exit {result.exited})", code=result.exited)
    s = helmout.parse_status(result.stdout)
    print(
        f"{s.name} in {s.namespace}: revision {s.revision} {s.status}; chart {s.chart}-"
        f"{s.chart_version} (app {s.app_version}); deployed {s.last_deployed}; {s.description}"
    )
    run(c, workloads_argv(target), warn=True)


@task(help={**COMMON_HELP, "max": "show at most this many revisions"})
def history(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    max: int = 20,
) -> None:
    """Show the release's revisions (status, chart, description with git SHA and user).

    Example: inv deploy.history --env=staging
    """
    environment = _environment(c, env, namespace)
    target = _target(c, environment, context)
    revisions = execute.read_history(c, target)
    if revisions is None:
        return
    if not revisions:
        raise Exit(f"release {target.release} is not installed in {target.namespace}")
    print(helmout.history_table(revisions[-max:]))


def _envs(c: Context, env: str | None) -> list[str]:
    if env is not None:
        return [env]
    return [
        name
        for name in sorted(c.config.environments)
        if (c.config.environments[name] or {}).get("values_file")
    ]


def _render(c: Context, environment: Environment, settings: execute.Settings) -> str:
    target = Target(environment.name, environment.namespace, "", environment.release)
    result = probe(c, template_argv(target, execute.chart_inputs(environment, settings)))
    if result.exited != 0:
        raise Exit(f"{environment.name}: helm template failed: {result.stderr.strip()}")
    return str(result.stdout)


@task(
    help={
        "env": "render only this environment (default: every environment with a values file)",
        "output": "directory to write <env>.yaml files to (default: stdout)",
        "image_tag": "image tag to render with (default: chart appVersion)",
    }
)
def render(
    c: Context, env: str | None = None, output: str | None = None, image_tag: str | None = None
) -> None:
    """Render the chart with helm template per environment, to stdout or to a directory.

    Example: inv deploy.render --env=production --output=build/rendered
    """
    settings = execute.resolve_settings(c, image_tag=image_tag)
    for name in _envs(c, env):
        text = _render(c, _environment(c, name, None), settings)
        if output is None:
            print(text, end="")
            continue
        path = Path(output) / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"{name}: wrote {path}")


@task(help={"env": "lint only this environment (default: every environment with a values file)"})
def lint(c: Context, env: str | None = None) -> None:
    """helm lint --strict per environment, then validate every rendered object (Kubernetes 1.33).

    Example: inv deploy.lint
    """
    from tasks.deploy.validate import load_objects, validate_objects

    settings = execute.resolve_settings(c)
    problems = 0
    for name in _envs(c, env):
        environment = _environment(c, name, None)
        values = execute.chart_inputs(environment, settings).values_file
        linted = probe(c, lint_argv(settings.chart, values, environment.namespace))
        if linted.exited != 0:
            problems += 1
            print(f"{name}: helm lint --strict failed:\n{linted.stdout}{linted.stderr}")
            continue
        sources = {
            "chart": _render(c, environment, settings),
            "manifests": execute.load_manifests(settings.manifests, name, environment.namespace),
        }
        counts = []
        for source, text in sources.items():
            objects = load_objects(text)
            findings = validate_objects(
                objects,
                source=f"{name} {source}",
                kubernetes_version=settings.kubernetes_version,
                crd_allowlist=settings.crd_allowlist,
            )
            for finding in findings:
                print(("  skipped " if finding.skipped else "  ERROR ") + str(finding))
            problems += sum(not f.skipped for f in findings)
            counts.append(f"{len(objects)} {source} objects")
        print(
            f"{name}: helm lint --strict ok; {' + '.join(counts)} checked against "
            f"Kubernetes {settings.kubernetes_version} (strict)"
        )
    if problems:
        raise Exit(f"deploy.lint: {problems} problem(s)")


ns = Collection("deploy", deploy, recover, rollback, diff, status, history, render, lint)
ns.configure({"deploy": copy.deepcopy(DEFAULTS), **environments.config_defaults()})
