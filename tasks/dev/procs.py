"""Process groups of the local stack: start, probe, record, stop.

Each process runs in its own session (so its own process group), writes stdout/stderr to
``.flowlet/logs/NAME.log`` (no pipe back to inv, so ``--detach`` children outlive inv) and
is recorded in ``.flowlet/run/NAME.json`` with its pid and start time (``/proc/PID/stat``
field 22), which tells a live process from a reused pid.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.dev.config import ProcessSpec

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    pgrp: int
    start_ticks: int


@dataclass(frozen=True)
class Record:
    """What dev.start wrote for one process."""

    name: str
    pid: int
    pgid: int
    start_ticks: int
    port: int
    started: float


def parse_stat(text: str) -> ProcStat:
    """Parse ``/proc/PID/stat`` (the command name may hold spaces and parentheses)."""
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    return ProcStat(
        pid=int(head.split("(", 1)[0]),
        state=fields[0],
        pgrp=int(fields[2]),
        start_ticks=int(fields[19]),
    )


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def record_state(record: Record, stat: ProcStat | None) -> str:
    """``running``, ``gone`` (no such process, or a zombie) or ``reused`` (another process)."""
    if stat is None or stat.state in ("Z", "X"):
        return "gone"
    if stat.start_ticks != record.start_ticks:
        return "reused"
    return "running"


def group_members(pgid: int, proc: Path = PROC) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat and stat.pgrp == pgid and stat.state not in ("Z", "X"):
                members.append(stat.pid)
    return members


def uptime_seconds(start_ticks: int, system_uptime: float, clk_tck: int) -> float:
    return max(0.0, system_uptime - start_ticks / clk_tck)


def process_uptime(start_ticks: int) -> float:
    system = float(Path("/proc/uptime").read_text().split()[0])
    return uptime_seconds(start_ticks, system, os.sysconf("SC_CLK_TCK"))


def format_duration(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


# Records ---------------------------------------------------------------------------------


def write_record(run_dir: Path, record: Record) -> None:
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{record.name}.json.tmp"
    tmp.write_text(json.dumps(asdict(record)) + "\n")
    tmp.replace(run_dir / f"{record.name}.json")


def parse_record(text: str) -> Record:
    import json

    data: dict[str, Any] = json.loads(text)
    return Record(
        name=str(data["name"]),
        pid=int(data["pid"]),
        pgid=int(data["pgid"]),
        start_ticks=int(data["start_ticks"]),
        port=int(data["port"]),
        started=float(data["started"]),
    )


def read_records(run_dir: Path) -> list[Record]:
    """Records under ``run_dir``; unreadable ones are dropped (they are removed, too)."""
    records = []
    for path in sorted(run_dir.glob("*.json")) if run_dir.is_dir() else []:
        try:
            records.append(parse_record(path.read_text()))
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
    return records


def remove_record(run_dir: Path, name: str) -> None:
    (run_dir / f"{name}.json").unlink(missing_ok=True)


# Probes ----------------------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound (something listens there already)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200."""
    import urllib.error
    import urllib.request

    # A local http:// health URL from the project's own config.
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # nosec B310
            return int(answer.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def postgres_message(host: str, port: int, timeout: float = 1.0) -> bytes:
    """First byte of the server's answer to a startup packet (``b''`` when it cannot connect)."""
    params = b"user\0flowlet_ready_probe\0database\0postgres\0\0"
    packet = struct.pack("!ii", 8 + len(params), 196608) + params
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            return sock.recv(4096)
    except OSError:
        return b""


def postgres_accepting(answer: bytes) -> bool:
    """An auth request (R) or any error but 57P03 ("starting up") means it accepts connections."""
    if answer[:1] == b"R":
        return True
    return answer[:1] == b"E" and b"C57P03\0" not in answer


def is_ready(spec: ProcessSpec) -> bool:
    if spec.ready == "postgres":
        return postgres_accepting(postgres_message(spec.host, spec.port))
    if spec.ready == "http":
        return http_ok(spec.health_url)
    return port_open(spec.host, spec.port)


# Start and stop --------------------------------------------------------------------------


def spawn(spec: ProcessSpec, env: Mapping[str, str], log_path: Path) -> Any:
    """Start ``spec`` in a new session, output appended to ``log_path``; returns the Popen."""
    import subprocess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if spec.user is not None:
        import pwd

        entry = pwd.getpwnam(spec.user)
        extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    with open(log_path, "ab", buffering=0) as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {spec.name}\n".encode())
        return subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            **extra,
        )


def record_for(spec: ProcessSpec, pid: int) -> Record:
    stat = read_stat(pid)
    return Record(
        name=spec.name,
        pid=pid,
        pgid=pid,
        start_ticks=stat.start_ticks if stat else 0,
        port=spec.port,
        started=time.time(),
    )


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_groups(
    records: Iterable[Record], grace: float, children: Mapping[int, Any] | None = None
) -> list[str]:
    """SIGTERM each live group, wait up to ``grace`` s, then SIGKILL; returns names killed.

    A record whose pid was reused by another process is never signalled. A group whose leader
    is gone is still swept: the kernel keeps its id reserved while any member lives.
    """
    children = children or {}
    targets = []
    for record in records:
        if record_state(record, read_stat(record.pid)) == "reused":
            continue
        if group_members(record.pgid):
            targets.append(record)
            _signal_group(record.pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(targets)
    while alive and time.monotonic() < deadline:
        for child in children.values():
            child.poll()
        time.sleep(0.05)
        alive = [r for r in alive if group_members(r.pgid)]
    killed = []
    for record in alive:
        killed.append(record.name)
        _signal_group(record.pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [r for r in alive if group_members(r.pgid)]
    for child in children.values():
        try:
            child.wait(timeout=1)
        except Exception:  # nosec B110
            pass  # best effort reaping: the group is gone already
    return killed
