"""The bodies of the ``dev`` tasks (imported inside the tasks so ``inv --list`` stays light)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from invoke import Context
from tasks.core.errors import OpsError

if TYPE_CHECKING:
    from tasks.dev.config import ProcessSpec


def start(c: Context, detach: bool = False) -> None:
    """Body of the ``start`` task (documented on the task)."""
    import signal

    from tasks.core import runner
    from tasks.dev import launch
    from tasks.dev import logfiles
    from tasks.dev import postgres, procs
    from tasks.dev.config import load_stack
    from tasks.dev.envfile import parse_env
    from tasks.dev.report import clear_stale, port_key, show_tail, where

    stack = load_stack(c)
    records = procs.read_records(stack.run_dir)
    live = [r for r in records if procs.record_state(r, procs.read_stat(r.pid)) == "running"]
    if live:
        which = ", ".join(f"{r.name} pid {r.pid}" for r in live)
        raise OpsError(f"dev.start: the stack already runs ({which}); stop it with inv dev.stop")
    for note in clear_stale(stack, records):
        print(f"dev.start: {note}")
    if not postgres.initialized(stack) or not stack.env_file.exists():
        missing = stack.env_file if stack.env_file.exists() else stack.pg_data
        raise OpsError(f"dev.start: {missing} is missing; run inv setup --env development first")
    for spec in stack.processes:
        if procs.port_in_use(spec.host, spec.port):
            raise OpsError(
                f"dev.start: port {spec.port} ({spec.name}) is already in use; stop what "
                f"listens there or set {port_key(c, spec)}"
            )
    if runner.is_dry(c):
        for spec in stack.processes:
            print(f"dev.start: would start {spec.name}: {runner.render(spec.argv)} (in {spec.cwd})")
        return
    dotenv = parse_env(stack.env_file.read_text())
    follower = logfiles.LogFollower({s.name: stack.log_path(s.name) for s in stack.processes})

    def tick() -> None:
        follower.poll(sys.stdout.write)
        sys.stdout.flush()

    def on_ready(spec: ProcessSpec, proc: Any, elapsed: float) -> None:
        print(f"dev.start: {spec.name} ready in {elapsed:.1f}s (pid {proc.pid}, {where(spec)})")
        sys.stdout.flush()

    started: dict[str, Any] = {}
    try:
        launch.start_processes(
            stack, list(stack.processes), dotenv, started, on_ready, None if detach else tick
        )
        if detach:
            print(f"dev.start: all ready; logs in {stack.log_dir}; stop with inv dev.stop")
            return
        print("dev.start: all ready; Ctrl-C stops everything", flush=True)
        while True:
            tick()
            for name, proc in started.items():
                code = proc.poll()
                if code is not None:
                    raise launch.StartFailure(name, f"exited with code {code}")
            time.sleep(0.2)
    except launch.StartFailure as failure:
        show_tail(stack, failure.name)
        launch.stop_started(stack, started)
        stopped = ", ".join(started)
        log = stack.log_path(failure.name)
        raise OpsError(f"dev.start: {failure.name} {failure.reason}; stopped {stopped}; log: {log}")
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            launch.stop_started(stack, started)
        finally:
            signal.signal(signal.SIGINT, previous)
        raise OpsError(f"dev.start: interrupted; stopped {', '.join(started) or 'nothing'}", code=130)


def stop(c: Context) -> None:
    """Body of the ``stop`` task (documented on the task)."""
    from tasks.core import runner
    from tasks.dev import procs
    from tasks.dev.config import load_stack
    from tasks.dev.report import clear_stale

    stack = load_stack(c)
    records = procs.read_records(stack.run_dir)
    if not records:
        print(f"dev.stop: nothing to stop (no pid files in {stack.run_dir})")
        return
    live = [r for r in records if procs.record_state(r, procs.read_stat(r.pid)) == "running"]
    if runner.is_dry(c):
        for r in live:
            print(f"dev.stop: would send SIGTERM to process group {r.pgid} ({r.name})")
        return
    for note in clear_stale(stack, [r for r in records if r not in live]):
        print(f"dev.stop: {note}")
    killed = procs.stop_groups(live, stack.stop_grace)
    for record in live:
        procs.remove_record(stack.run_dir, record.name)
    if live:
        print(f"dev.stop: stopped {', '.join(f'{r.name} (pid {r.pid})' for r in live)}")
    if killed:
        print(f"dev.stop: {', '.join(killed)} ignored SIGTERM for {stack.stop_grace:g}s: killed")


def status(c: Context) -> None:
    """Body of the ``status`` task (documented on the task)."""
    from tasks.dev import procs
    from tasks.dev.config import load_stack
    from tasks.dev.report import render_table, status_row

    stack = load_stack(c)
    records = {r.name: r for r in procs.read_records(stack.run_dir)}
    rows = []
    specs = {s.name: s for s in stack.processes}
    for name in [*specs, *(n for n in records if n not in specs)]:
        record = records.get(name)
        spec = specs.get(name)
        port = spec.port if spec else (record.port if record else 0)
        state, listening, uptime = "", False, 0.0
        if record is not None:
            stat = procs.read_stat(record.pid)
            state = procs.record_state(record, stat)
            if state == "running" and stat is not None:
                host = spec.host if spec else "127.0.0.1"
                listening = procs.port_open(host, port)
                uptime = procs.process_uptime(stat.start_ticks)
        rows.append(status_row(name, port, record, state, listening, uptime))
    print(render_table(rows))
    down = [row[0] for row in rows if row[3] != "up"]
    if down:
        raise OpsError(f"dev.status: not up: {', '.join(down)}")


def logs(c: Context, name: str | None = None, follow: bool = False) -> None:
    """Body of the ``logs`` task (documented on the task)."""
    from tasks.dev import logfiles
    from tasks.dev.config import load_stack

    stack = load_stack(c)
    names = stack.names()
    names += sorted(p.stem for p in stack.log_dir.glob("*.log") if p.stem not in names)
    if name is not None and name not in names:
        raise OpsError(f"dev.logs: unknown process {name!r}; valid: {', '.join(names)}")
    selected = [name] if name is not None else names
    width = max(len(n) for n in selected)
    follower = logfiles.LogFollower({n: stack.log_path(n) for n in selected})
    for item in selected:
        path = stack.log_path(item)
        if not path.exists():
            print(f"{item.ljust(width)} | (no log yet: {path})")
        for line in logfiles.tail_lines(path, stack.log_lines):
            print(f"{item.ljust(width)} | {line}")
    if not follow:
        return
    try:
        while True:
            follower.poll(sys.stdout.write)
            sys.stdout.flush()
            time.sleep(0.2)
    except KeyboardInterrupt:
        raise OpsError(code=130) from None
