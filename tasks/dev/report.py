"""What ``dev.status`` and ``dev.logs`` show: the status table and the process logs.

A process is ``up`` only when its health check passes (HTTP 200 on its health URL, PostgreSQL
accepting connections, or its port open); otherwise the state says what is wrong: unhealthy
(and what the check saw), restarting (after which exit), exited / killed (the exit code or
signal the keeper recorded), failed (gave up restarting), stale, stopped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.core.errors import OpsError
from tasks.dev import pidfiles, procs
from tasks.dev.plan import ProcessSpec, Stack, load_stack

STATUS_HEADER = ("NAME", "PID", "PORT", "STATE", "RESTARTS", "UPTIME")


def ended(state: Mapping[str, Any]) -> str:
    last = state.get("last_exit") or {}
    if not last:
        return "exited"
    if last.get("error"):
        return "could not be started"
    return procs.describe_exit(last.get("code"), last.get("signal"))


def process_state(
    spec: ProcessSpec | None, record: pidfiles.Record | None, state: Mapping[str, Any]
) -> tuple[str, str, float]:
    """(state text, pid shown, uptime seconds) of one process."""
    from tasks.dev import health

    if record is None:
        return "stopped", "-", 0.0
    keeper = record.keeper.state()
    if state.get("keeper") != record.keeper.pid:
        state = {}
    child = pidfiles.child_of(state)
    pid = str(child.pid) if child else str(record.pid)
    phase = state.get("state", "")
    if keeper == "reused":
        return "stale (pid reused)", str(record.pid), 0.0
    if keeper == "gone":
        if phase == "failed":
            return (
                f"failed: {ended(state)}, gave up after {state.get('restarts', 0)} restarts",
                pid,
                0,
            )
        if phase == "exited":
            return ended(state), pid, 0.0
        if phase == "stopped":
            return "stopped (its supervisor ended)", pid, 0.0
        return "stale (process gone)", pid, 0.0
    if phase == "backoff":
        return f"restarting (it {ended(state)})", pid, 0.0
    if phase != "running" or child is None or not child.alive():
        return "starting", pid, 0.0
    uptime = procs.process_uptime(child.start_ticks)
    if spec is None:
        return "up (not in the config)", pid, uptime
    healthy, why = health.check(spec)
    return ("up" if healthy else f"unhealthy ({why})"), pid, uptime


def oneshot_state(record: pidfiles.Record | None, state: Mapping[str, Any], now: float) -> str:
    """A oneshot's state: running, when its last run ended and how, or ``not run yet``."""
    from tasks.dev.launch import completed

    if record is not None and record.keeper.state() == "running":
        return "running"
    last = state.get("last_exit") or {}
    if not last:
        return "not run yet"
    ago = procs.format_duration(max(0.0, now - float(last.get("at", now))))
    if completed(state):
        return f"completed {ago} ago (exit 0)"
    return f"failed {ago} ago: {ended(state)}"


def is_up(row: Sequence[str]) -> bool:
    """``up``, or a oneshot that is running or whose last run exited 0."""
    return row[3] == "up" or row[3] == "running" or row[3].startswith("completed ")


def status_rows(stack: Stack, now: float | None = None) -> list[tuple[str, ...]]:
    records = {r.name: r for r in pidfiles.read_records(stack.run_dir)}
    specs = {s.name: s for s in stack.processes}
    rows: list[tuple[str, ...]] = []
    for name in [*specs, *(n for n in records if n not in specs)]:
        spec, record = specs.get(name), records.get(name)
        if spec is not None and spec.oneshot:
            state = pidfiles.read_state(stack.run_dir, name)
            text = oneshot_state(record, state, time.time() if now is None else now)
            rows.append((name, "-", "-", text, str(state.get("restarts", "-")), "-"))
            continue
        state = pidfiles.read_state(stack.run_dir, name) if record else {}
        text, pid, uptime = process_state(spec, record, state)
        port = spec.port if spec else (record.port if record else 0)
        restarts = str(state.get("restarts", 0)) if record else "-"
        shown = procs.format_duration(uptime) if uptime else "-"
        rows.append((name, pid, str(port), text, restarts, shown))
    return rows


def render_table(rows: Sequence[Sequence[str]], header: Sequence[str] = STATUS_HEADER) -> str:
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table
    )


def status(c: Context) -> None:
    """Body of ``dev.status`` (documented on the task)."""
    from tasks.core import locks

    stack = load_stack(c)
    rows = status_rows(stack)
    print(render_table(rows))
    holder = locks.holder(stack.lock_path)
    if holder:
        print(f"supervisor: {locks.describe_holder(holder)}")
    down = [row[0] for row in rows if not is_up(row)]
    if down:
        raise OpsError(f"dev.status: not up: {', '.join(down)}")


def log_names(log_dir: Path, configured: list[str]) -> list[str]:
    found = sorted(p.stem for p in log_dir.glob("*.log")) if log_dir.is_dir() else []
    return configured + [n for n in found if n not in configured]


def logs(c: Context, *, name: str | None, follow: bool, lines: int | None) -> None:
    """Body of ``dev.logs`` (documented on the task)."""
    from tasks.core.errors import ConfigError
    from tasks.core.settings import load
    from tasks.dev import logfiles
    from tasks.dev.settings import DB_NAME

    dev = load(c, "dev")  # no database target needed: only the log directory
    log_dir: Path = dev.flowlet_dir / "logs"
    names = log_names(log_dir, [DB_NAME, *dev.processes])
    if name is not None and name not in names:
        raise ConfigError(f"--name: {name!r} is not valid; valid: {', '.join(names)}")
    selected = [name] if name is not None else names
    count = dev.log_lines if lines is None else lines
    width = max(len(n) for n in selected)
    follower = logfiles.LogFollower({n: log_dir / f"{n}.log" for n in selected})
    try:
        for item in selected:
            path = log_dir / f"{item}.log"
            if not path.exists():
                print(f"{item.ljust(width)} | (no log yet: {path})")
            for line in logfiles.tail_lines(path, count):
                print(f"{item.ljust(width)} | {line}")
        if not follow:
            return
        import sys

        while True:
            follower.poll(sys.stdout.write)
            sys.stdout.flush()
            time.sleep(0.2)
    finally:
        follower.close()
