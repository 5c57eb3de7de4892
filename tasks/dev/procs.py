"""Processes of the local stack in ``/proc``: identities, process groups, stopping.

Each process of the stack runs under a *keeper* (:mod:`tasks.dev.keeper`), its parent, which
writes its log and its state. ``dev.start`` records the keeper in ``.flowlet/run/NAME.json``;
the keeper records the process itself (and how it last ended) in ``NAME.state.json``
(:mod:`tasks.dev.pidfiles`). An
identity is a pid plus what tells it from a later process with the same pid: its start time
(``/proc/PID/stat`` field 22) and its executable. A process group is signalled only when a
member is one of ours by identity and no member is older than our group (a stale record whose
pid now leads someone else's group is left alone).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.dev import pidfiles

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    pgrp: int
    start_ticks: int


@dataclass(frozen=True)
class Identity:
    """A process as we started it: pid, start time in clock ticks, executable."""

    pid: int
    start_ticks: int
    exe: str

    @classmethod
    def of(cls, pid: int) -> Identity | None:
        stat = read_stat(pid)
        if stat is None:
            return None
        return cls(pid, stat.start_ticks, read_exe(pid))

    @classmethod
    def from_json(cls, data: Any) -> Identity | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data["pid"]), int(data["start_ticks"]), str(data.get("exe", "")))
        except (KeyError, TypeError, ValueError):
            return None

    def state(self) -> str:
        """``running``, ``gone`` (no such process, or a zombie) or ``reused`` (not ours)."""
        stat = read_stat(self.pid)
        if stat is None or stat.state in ("Z", "X"):
            return "gone"
        if stat.start_ticks != self.start_ticks:
            return "reused"
        exe = read_exe(self.pid)
        if self.exe and exe and exe != self.exe:
            return "reused"
        return "running"

    def alive(self) -> bool:
        return self.state() == "running"


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
    except (OSError, ValueError, IndexError):
        return None


def read_exe(pid: int) -> str:
    try:
        return os.readlink(PROC / str(pid) / "exe")
    except OSError:
        return ""


def scan_groups(pgids: Iterable[int], proc: Path = PROC) -> dict[int, list[ProcStat]]:
    """Live (non-zombie) members of each process group in ``pgids`` (one pass over /proc)."""
    found: dict[int, list[ProcStat]] = {g: [] for g in pgids}
    if not found:
        return found
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat and stat.pgrp in found and stat.state not in ("Z", "X"):
                found[stat.pgrp].append(stat)
    return found


def group_members(pgid: int, proc: Path = PROC) -> list[ProcStat]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    return scan_groups([pgid], proc)[pgid]


def group_is_ours(
    pgid: int, ours: Iterable[Identity | None], members: list[ProcStat] | None = None
) -> bool:
    """True when the group has members, one is ours by identity and none is older than it."""
    known = [i for i in ours if i is not None]
    if members is None:
        members = group_members(pgid)
    if not members or not known:
        return False
    mine = {i.pid: i for i in known}
    matched = [m for m in members if m.pid in mine and mine[m.pid].alive()]
    if not matched:
        return False
    oldest = min(mine[m.pid].start_ticks for m in matched)
    return all(m.start_ticks >= oldest for m in members)


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


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


def describe_exit(code: int | None, sig: int | None) -> str:
    if sig:
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exited with code {code}"


# Stopping --------------------------------------------------------------------------------


@dataclass
class Target:
    """A process to stop: its record, its keeper's and its own identity, its stop signal."""

    record: pidfiles.Record
    child: Identity | None
    stop_signal: int

    def groups(self) -> list[int]:
        pgids = [self.record.keeper.pid]
        if self.child is not None:
            pgids.append(self.child.pid)
        return pgids

    def ours(self) -> list[Identity]:
        return [self.record.keeper, *([self.child] if self.child else [])]

    def live_groups(self, scanned: Mapping[int, list[ProcStat]] | None = None) -> list[int]:
        """Its process groups that still have members of ours (one /proc pass if not given)."""
        if scanned is None:
            scanned = scan_groups(self.groups())
        ours = self.ours()
        return [g for g in self.groups() if group_is_ours(g, ours, scanned.get(g, []))]


def stop_targets(targets: Sequence[Target], grace: float, reap: Any = None) -> list[str]:
    """Stop ``targets`` together (one wave); SIGKILL what is left after ``grace`` seconds.

    A live keeper is asked (SIGTERM) to stop its process with that process's own stop signal
    (SIGINT for PostgreSQL: fast shutdown); a process whose keeper is gone gets its stop signal
    directly. Returns the names that had to be killed. ``reap`` polls our own children.
    """
    pgids = [g for t in targets for g in t.groups()]
    scanned = scan_groups(pgids)
    for target in targets:
        keeper_alive = target.record.keeper.alive()
        if keeper_alive:
            try:
                os.kill(target.record.keeper.pid, signal.SIGTERM)
            except ProcessLookupError:
                keeper_alive = False
        child = target.child
        if not keeper_alive and child is not None and child.pid in target.live_groups(scanned):
            signal_group(child.pid, target.stop_signal)
    deadline = time.monotonic() + grace
    while True:
        scanned = scan_groups(pgids)
        alive = [t for t in targets if t.live_groups(scanned)]
        if not alive or time.monotonic() >= deadline:
            break
        if reap is not None:
            reap()
        time.sleep(0.05)
    killed = []
    for target in alive:
        killed.append(target.record.name)
        for pgid in target.live_groups(scanned):
            signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive and group_members_any(pgids) and time.monotonic() < deadline:
        if reap is not None:
            reap()
        time.sleep(0.05)
    if reap is not None:
        reap()
    return killed


def group_members_any(pgids: Iterable[int]) -> bool:
    return any(scan_groups(pgids).values())
