"""``inv setup``: prepare an environment. ``--env development`` builds the local stack.

For development every step checks first and acts only when needed, so a second run changes
nothing and says so (tasks/dev/provision.py). Other environments are handed to the deploy
collection. The implementation modules are imported inside the task: ``inv --list`` stays
light.
"""

from __future__ import annotations

from invoke import Collection, Context

from tasks.core.task import task


@task(
    default=True,
    help={
        "env": "environment: development (local stack) or a cluster (staging, production)",
        "namespace": "Kubernetes namespace override (cluster environments)",
        "yes": "do not ask for confirmation (cluster environments)",
        "allow_dirty": "allow a dirty git work tree (cluster environments)",
        "image_tag": "image tag to set up with (cluster environments)",
    },
)
def setup(
    c: Context,
    env: str | None = None,
    namespace: str | None = None,
    yes: bool = False,
    allow_dirty: bool = False,
    image_tag: str | None = None,
) -> None:
    """Set up an environment: the local dev stack, or a cluster (via deploy).

    --env development (the default) installs the backend's Python and the frontend's Node
    dependencies, writes .env.local with generated secrets, creates a project-local
    PostgreSQL cluster with the app role and database, and writes dev-start.sh. It is
    idempotent: a second run changes nothing and says so.
    """
    from tasks.core.environments import resolve_environment

    environment = resolve_environment(c, env, namespace)
    if environment.name == "development":
        from tasks.dev.provision import setup_development

        setup_development(c)
        return
    print(
        f"setup: {environment.name}: namespace {environment.namespace}, "
        f"kube context {environment.kube_context or '-'}, release {environment.release}",
        flush=True,
    )
    from tasks.deploy import setup_cluster

    setup_cluster(c, environment, yes=yes, allow_dirty=allow_dirty, image_tag=image_tag)


ns = Collection("setup", setup)
