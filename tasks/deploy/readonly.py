"""Read-only deploy tasks: diff, status, history, render, lint."""

from __future__ import annotations

from invoke import Context

from tasks.core.task import task

from tasks.deploy.flaghelp import COMMON_HELP


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
    from tasks.deploy import flows

    flows.diff(c, env=env, namespace=namespace, context=context, image_tag=image_tag)


@task(help=COMMON_HELP)
def status(
    c: Context, env: str | None = None, namespace: str | None = None, context: str | None = None
) -> None:
    """Show the release's status and its deployments, pods, HPAs and PDBs.

    Example: inv deploy.status --env=production
    """
    from tasks.deploy import flows

    flows.status(c, env=env, namespace=namespace, context=context)


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
    from tasks.deploy import flows

    flows.history(c, env=env, namespace=namespace, context=context, max=max)


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
    from tasks.deploy import flows

    flows.render(c, env=env, output=output, image_tag=image_tag)


@task(help={"env": "lint only this environment (default: every environment with a values file)"})
def lint(c: Context, env: str | None = None) -> None:
    """helm lint --strict per environment, then validate every rendered object (Kubernetes 1.33).

    Example: inv deploy.lint
    """
    from tasks.deploy import flows

    flows.lint(c, env=env)
