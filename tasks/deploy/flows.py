"""The bodies of the deploy tasks (imported inside the tasks so ``inv --list`` stays light)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context
from tasks.core.errors import OpsError

from tasks.deploy.common import environment_for, interruptible, target_for

if TYPE_CHECKING:
    from tasks.deploy.plan import Target
    from tasks.deploy.config import Settings
    from tasks.core.environments import Environment
    from tasks.kube import HelmVersion


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
    """Body of the ``deploy`` task (documented on the task)."""
    from tasks.deploy import execute
    from tasks.deploy.config import resolve_settings

    environment = environment_for(c, env, namespace)
    settings = resolve_settings(c, timeout=timeout, diff=diff, image_tag=image_tag)
    with interruptible("deploy stopped"):
        execute.deploy_flow(
            c, environment, settings, context_flag=context, yes=yes, allow_dirty=allow_dirty
        )


def recover(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    yes: bool = False,
) -> None:
    """Body of the ``recover`` task (documented on the task)."""
    from tasks.deploy import execute, helmout
    from tasks.deploy.plan import rollback_argv, uninstall_argv
    from tasks.deploy.config import resolve_settings
    from tasks.core.prompt import confirm
    from tasks.core.runner import is_dry

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


def rollback(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    revision: int = 0,
    context: str | None = None,
    yes: bool = False,
    timeout: str | None = None,
) -> None:
    """Body of the ``rollback`` task (documented on the task)."""
    from tasks.deploy import execute
    from tasks.deploy.plan import rollback_argv
    from tasks.deploy.config import resolve_settings

    if revision < 0:
        raise OpsError(f"--revision: {revision} is not valid; valid: 0 (previous) or a revision >= 1")
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
        raise OpsError(f"release {target.release} is not installed in {target.namespace}")
    if history and revision and revision not in {r.revision for r in history}:
        known = ", ".join(str(r.revision) for r in history)
        raise OpsError(f"--revision: {revision} is not in the release history; known: {known}")
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


def diff(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    image_tag: str | None = None,
) -> None:
    """Body of the ``diff`` task (documented on the task)."""
    from tasks.deploy import execute
    from tasks.deploy.config import chart_inputs, resolve_settings

    environment = environment_for(c, env, namespace)
    settings = resolve_settings(c, image_tag=image_tag)
    require = execute.Steps()
    require("prerequisites")
    execute.prerequisites(c)
    require("context guard")
    target = target_for(c, environment, context)
    require("diff")
    execute.show_diff(c, target, chart_inputs(environment, settings))


def status(
    c: Context, env: str | None = None, namespace: str | None = None, context: str | None = None
) -> None:
    """Body of the ``status`` task (documented on the task)."""
    from tasks.deploy import execute, helmout
    from tasks.deploy.plan import status_argv, workloads_argv
    from tasks.core.runner import is_dry, run

    environment = environment_for(c, env, namespace)
    target = target_for(c, environment, context)
    result = run(c, status_argv(target), hide=True, warn=True)
    if is_dry(c):
        return
    if result.exited != 0:
        if helmout.release_missing(result.stderr):
            raise OpsError(f"release {target.release} is not installed in {target.namespace}")
        raise OpsError(f"helm status failed (exit {result.exited})", code=result.exited)
    s = helmout.parse_status(result.stdout)
    latest = execute.latest_revision(c, target)  # the chart is not in helm status's JSON
    chart = f"chart {latest.chart} (app {latest.app_version}); " if latest else ""
    print(
        f"{s.name} in {s.namespace}: revision {s.revision} {s.status}; {chart}"
        f"deployed {s.last_deployed}; {s.description}"
    )
    run(c, workloads_argv(target), warn=True)


def history(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    context: str | None = None,
    max: int = 20,
) -> None:
    """Body of the ``history`` task (documented on the task)."""
    from tasks.deploy import execute, helmout

    environment = environment_for(c, env, namespace)
    target = target_for(c, environment, context)
    revisions = execute.read_history(c, target)
    if revisions is None:
        return
    if not revisions:
        raise OpsError(f"release {target.release} is not installed in {target.namespace}")
    print(helmout.history_table(revisions[-max:]))


def render(
    c: Context, env: str | None = None, output: str | None = None, image_tag: str | None = None
) -> None:
    """Body of the ``render`` task (documented on the task)."""
    from tasks.deploy.config import resolve_settings

    settings = resolve_settings(c, image_tag=image_tag)
    for name in _envs(c, env):
        text = _render(c, environment_for(c, name, None), settings)
        if output is None:
            print(text, end="")
            continue
        path = Path(output) / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"{name}: wrote {path}")


def lint(c: Context, env: str | None = None) -> None:
    """Body of the ``lint`` task (documented on the task)."""
    from tasks.deploy.plan import lint_argv
    from tasks.deploy.config import chart_inputs, load_manifests, resolve_settings
    from tasks.deploy.validate import load_objects, validate_objects
    from tasks.core.runner import probe

    settings = resolve_settings(c)
    problems = 0
    for name in _envs(c, env):
        environment = environment_for(c, name, None)
        values = chart_inputs(environment, settings).values_file
        linted = probe(c, lint_argv(settings.chart, values, environment.namespace))
        if linted.exited != 0:
            problems += 1
            print(f"{name}: helm lint --strict failed:\n{linted.stdout}{linted.stderr}")
            continue
        sources = {
            "chart": _render(c, environment, settings),
            "manifests": load_manifests(settings.manifests, name, environment.namespace),
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
        raise OpsError(f"deploy.lint: {problems} problem(s)")


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
    from tasks.core.settings import project_root

    started, clock = execute.now(), time.monotonic()
    state = read_git_state(c, project_root(c))
    result, signum = run_forwarding_signals(c, argv)
    outcome = "interrupted" if signum else ("succeeded" if result.exited == 0 else "failed")
    execute.record_audit(c, settings, target, action, outcome, "", state, version, started, clock)
    if signum:
        raise interrupted_exit(signum, f"helm exited {result.exited}; check inv deploy.status")
    if result.exited != 0:
        raise OpsError(f"helm {action} failed (exit {result.exited})", code=result.exited)


def _envs(c: Context, env: str | None) -> list[str]:
    if env is not None:
        return [env]
    return [
        name
        for name in sorted(c.config.environments)
        if (c.config.environments[name] or {}).get("values_file")
    ]


def _render(c: Context, environment: Environment, settings: Settings) -> str:
    from tasks.deploy.plan import Target, template_argv
    from tasks.deploy.config import chart_inputs
    from tasks.core.runner import probe

    target = Target(environment.name, environment.namespace, "", environment.release)
    result = probe(c, template_argv(target, chart_inputs(environment, settings)))
    if result.exited != 0:
        raise OpsError(f"{environment.name}: helm template failed: {result.stderr.strip()}")
    return str(result.stdout)
