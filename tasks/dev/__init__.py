"""``inv dev.*``: run the local stack (database, backend, frontend) on this machine.

Replaces the old start.sh / stop.sh. Each process runs in its own process group, logs to
``.flowlet/logs/NAME.log`` and is recorded (pid and start time) in ``.flowlet/run/``.
"""

from __future__ import annotations

from invoke import Collection, Context

from tasks.core.task import task

# The task bodies live in tasks/dev/flows.py, imported inside the tasks: ``inv --list``
# must stay light.


@task(help={"detach": "return once every process is ready; they keep running (inv dev.stop)"})
def start(c: Context, detach: bool = False) -> None:
    """Start the local database, backend and frontend (foreground, or --detach).

    Each process must be ready (its port open, or HTTP 200 on its health URL) within
    dev.ready_timeout seconds; otherwise dev.start names it, shows the end of its log,
    stops what it started and fails. Refuses when a port is taken or the stack already runs.
    """
    from tasks.dev import flows

    flows.start(c, detach=detach)


@task
def stop(c: Context) -> None:
    """Stop the local stack: SIGTERM each process group, then SIGKILL after a grace period.

    Stale pid files (the process is gone, or its pid now belongs to another process) are
    removed without signalling anything.
    """
    from tasks.dev import flows

    flows.stop(c)


@task
def status(c: Context) -> None:
    """Show a table of the local stack's processes; exit 1 if any is not up.

    Columns: name, pid, port, state (up, not listening, stopped, stale) and uptime.
    """
    from tasks.dev import flows

    flows.status(c)


@task(
    help={
        "name": "process whose log to show (default: all of them)",
        "follow": "keep printing new lines until Ctrl-C",
    }
)
def logs(c: Context, name: str | None = None, follow: bool = False) -> None:
    """Show the end of each process log (or of --name NAME's); --follow keeps printing.

    Prints the last dev.log_lines lines of .flowlet/logs/NAME.log, each prefixed with the
    process name. (Invoke has no optional positional arguments: NAME is given as --name.)
    """
    from tasks.dev import flows

    flows.logs(c, name=name, follow=follow)


ns = Collection("dev", start, stop, status, logs)
