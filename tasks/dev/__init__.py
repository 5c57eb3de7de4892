"""``inv dev.*``: run the local stack (database, backend, frontend) on this machine.

Each process runs under a keeper (its parent: log with rotation, exit status, restart policy)
in its own process group, logs to ``.flowlet/logs/NAME.log`` and is recorded in
``.flowlet/run/``. The implementation modules are imported inside the tasks: ``inv --list``
stays light.
"""

from __future__ import annotations

from invoke import Collection, Context

from tasks.core.task import task

NAME_HELP = "one process (and, for start, what it needs first): db, backend, frontend ..."


@task(
    help={
        "detach": "return once every process is ready; they keep running (inv dev.stop)",
        "name": NAME_HELP,
    }
)
def start(c: Context, detach: bool = False, name: str | None = None) -> None:
    """Start the local database, backend and frontend (foreground, or --detach).

    Each process starts once the processes in its `after` are ready, and must be ready (HTTP
    200 on its health URL, PostgreSQL accepting connections, or its port open) within
    dev.ready_timeout seconds; otherwise dev.start names it, shows the end of its log for this
    run, stops what it started and fails. With --name, only that process (and what it needs)
    is started into the running stack. One supervisor at a time: a second dev.start refuses,
    naming the first. In the foreground, Ctrl-C, SIGTERM and SIGHUP stop everything it started
    (exit 130, 143, 129); restart policies are reported as they happen.
    """
    from tasks.dev import run

    run.start(c, detach=detach, name=name)


@task(help={"name": "stop only this process"})
def stop(c: Context, name: str | None = None) -> None:
    """Stop the local stack (or --name NAME): the stop signal, then SIGKILL after a grace period.

    Dependents stop first. PostgreSQL gets SIGINT (fast shutdown: open client connections do
    not hold it up), the others SIGTERM; whatever is left after dev.stop_grace seconds is
    killed. Stale pid files are removed; a process group is signalled only when its members are
    ours (start time and executable checked).
    """
    from tasks.dev import control

    control.stop(c, name=name)


@task(help={"name": "restart only this process (default: all, in start order)"})
def restart(c: Context, name: str | None = None) -> None:
    """Restart the processes of the stack (or --name NAME), each until it is ready again.

    A running process is restarted by its keeper with the current config and .env.local; one
    that does not run is started (as dev.start --detach --name NAME would).
    """
    from tasks.dev import control

    control.restart(c, name=name)


@task
def migrate(c: Context) -> None:
    """Run the oneshot process `migrate` (the schema migrations) to completion, showing its output.

    What it needs (the database) is started first when it does not run (and keeps running).
    Its exit code decides: anything but 0 fails with one line naming its log. dev.start runs
    it too, before the processes whose `after` names it (the backend).
    """
    from tasks.dev import run

    run.run_oneshot(c, name="migrate", task="dev.migrate")


@task
def status(c: Context) -> None:
    """Show the stack's processes and their health; exit 1 if any is not up.

    Columns: name, pid, port, state (up, unhealthy (HTTP 503 ...), restarting, exited with
    code N / killed by SIGNAL, failed, starting, stale, stopped; a oneshot: completed 5m ago
    (exit 0), failed 5m ago: exited with code 1, running, not run yet), restarts and uptime.
    """
    from tasks.dev import report

    report.status(c)


@task(
    help={
        "name": "process whose log to show (default: all of them)",
        "follow": "keep printing new lines (across rotation) until Ctrl-C",
        "lines": "how many lines of each log (default dev.log_lines)",
    },
    flags={"lines": "dev.log_lines"},
)
def logs(
    c: Context, name: str | None = None, follow: bool = False, lines: int | None = None
) -> None:
    """Show the end of each process log (or of --name NAME's); --follow keeps printing.

    Prints the last lines of .flowlet/logs/NAME.log, each prefixed with the process name.
    (Invoke has no optional positional arguments: NAME is given as --name.)
    """
    from tasks.dev import report

    report.logs(c, name=name, follow=follow, lines=lines)


ns = Collection("dev", start, stop, restart, migrate, status, logs)
