"""Read-only deploy tasks: diff, status, history, render, lint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context, task
from invoke.exceptions import Exit

from tasks.deploy.common import COMMON_HELP, environment_for, target_for

if TYPE_CHECKING:
    from tasks.deploy.settings import Settings
    from tasks.environments import Environment


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
    from tasks.deploy import execute
    from tasks.deploy.settings import chart_inputs, resolve_settings

    environment = environment_for(c, env, namespace)
    settings = resolve_settings(c, image_tag=image_tag)
    require = execute.Steps()
    require("prerequisites")
    execute.prerequisites(c)
    require("context guard")
    target = target_for(c, environment, context)
    require("diff")
    execute.show_diff(c, target, chart_inputs(environment, settings))


@task(help=COMMON_HELP)
def status(
    c: Context, env: str | None = None, namespace: str | None = None, context: str | None = None
) -> None:
    """Show the release's status and its deployments, pods, HPAs and PDBs.

    Example: inv deploy.status --env=production
    """
    from tasks.deploy import execute, helmout
    from tasks.deploy.plan import status_argv, workloads_argv
    from tasks.runner import is_dry, run

    environment = environment_for(c, env, namespace)
    target = target_for(c, environment, context)
    result = run(c, status_argv(target), hide=True, warn=True)
    if is_dry(c):
        return
    if result.exited != 0:
        if helmout.release_missing(result.stderr):
            raise Exit(f"release {target.release} is not installed in {target.namespace}")
        raise Exit(f"helm status failed (exit {result.exited})", code=result.exited)
    s = helmout.parse_status(result.stdout)
    latest = execute.latest_revision(c, target)  # the chart is not in helm status's JSON
    chart = f"chart {latest.chart} (app {latest.app_version}); " if latest else ""
    print(
        f"{s.name} in {s.namespace}: revision {s.revision} {s.status}; {chart}"
        f"deployed {s.last_deployed}; {s.description}"
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
    from tasks.deploy import execute, helmout

    environment = environment_for(c, env, namespace)
    target = target_for(c, environment, context)
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


def _render(c: Context, environment: Environment, settings: Settings) -> str:
    from tasks.deploy.plan import Target, template_argv
    from tasks.deploy.settings import chart_inputs
    from tasks.runner import probe

    target = Target(environment.name, environment.namespace, "", environment.release)
    result = probe(c, template_argv(target, chart_inputs(environment, settings)))
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
    from tasks.deploy.settings import resolve_settings

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


@task(help={"env": "lint only this environment (default: every environment with a values file)"})
def lint(c: Context, env: str | None = None) -> None:
    """helm lint --strict per environment, then validate every rendered object (Kubernetes 1.33).

    Example: inv deploy.lint
    """
    from tasks.deploy.plan import lint_argv
    from tasks.deploy.settings import chart_inputs, load_manifests, resolve_settings
    from tasks.deploy.validate import load_objects, validate_objects
    from tasks.runner import probe

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
        raise Exit(f"deploy.lint: {problems} problem(s)")
