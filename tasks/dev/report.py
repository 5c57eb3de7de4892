"""What dev.* prints: the status table, stale pid notes, log tails, hints naming config keys."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from invoke import Context

from tasks.dev import logfiles
from tasks.dev import procs
from tasks.dev.config import DB_NAME, LocalStack, ProcessSpec

STATUS_HEADER = ("NAME", "PID", "PORT", "STATE", "UPTIME")


def port_key(c: Context, spec: ProcessSpec) -> str:
    if spec.name == DB_NAME:
        return f"environments.development.databases.{c.config.dev.database}.port"
    return f"dev.processes.{spec.name}.port"


def where(spec: ProcessSpec) -> str:
    return spec.health_url or f"{spec.host}:{spec.port}"


def status_row(
    name: str, port: int, record: procs.Record | None, state: str, listening: bool, uptime: float
) -> tuple[str, str, str, str, str]:
    """One row of the status table; ``state`` is record_state()'s answer ("" when no record)."""
    if record is None:
        return (name, "-", str(port), "stopped", "-")
    if state == "running":
        shown = "up" if listening else "not listening"
        return (name, str(record.pid), str(port), shown, procs.format_duration(uptime))
    why = "pid reused" if state == "reused" else "process gone"
    return (name, str(record.pid), str(port), f"stale ({why})", "-")


def render_table(rows: Sequence[Sequence[str]], header: Sequence[str] = STATUS_HEADER) -> str:
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table
    )


def clear_stale(stack: LocalStack, records: list[procs.Record]) -> list[str]:
    """Remove stale pid files (sweeping any leftover group members); returns notes."""
    notes = []
    for record in records:
        state = procs.record_state(record, procs.read_stat(record.pid))
        if state == "running":
            continue
        if state == "gone" and procs.group_members(record.pgid):
            procs.stop_groups([record], stack.stop_grace)
        procs.remove_record(stack.run_dir, record.name)
        why = f"pid {record.pid} now belongs to another process" if state == "reused" else "gone"
        notes.append(f"{record.name}: removed stale pid file ({why})")
    return notes


def show_tail(stack: LocalStack, name: str) -> None:
    for line in logfiles.tail_lines(stack.log_path(name), stack.log_lines):
        print(f"{name} | {line}", file=sys.stderr)
