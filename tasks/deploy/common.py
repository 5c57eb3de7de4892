"""What the deploy tasks share: flag help, environment/target resolution, Ctrl-C handling."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from invoke import Context

if TYPE_CHECKING:
    from tasks.deploy.plan import Target
    from tasks.core.environments import Environment

# The task modules import the implementation (execute, plan, safety ...) inside the tasks, so
# that ``inv --list`` only pays for the task definitions.


@contextmanager
def interruptible(what: str) -> Iterator[None]:
    """Ctrl-C outside helm (prompts, kubectl) ends the task with exit 130, no traceback."""
    try:
        yield
    except KeyboardInterrupt:
        from tasks.deploy.safety import interrupted_exit

        raise interrupted_exit(signal.SIGINT, what) from None


def environment_for(c: Context, env: str | None, namespace: str | None) -> Environment:
    from tasks.core.environments import resolve_environment

    return resolve_environment(c, env, namespace, require=("values_file",))


def target_for(c: Context, environment: Environment, context: str | None) -> Target:
    """The guarded target: kubectl and helm present, the context in the kubeconfig."""
    from tasks.deploy import execute
    from tasks.deploy.plan import Target
    from tasks.kube import KUBE_TOOLS
    from tasks.core.runner import require_tools

    require_tools(KUBE_TOOLS)
    ctx = execute.check_context(c, environment, context)
    return Target(environment.name, environment.namespace, ctx, environment.release)
