"""Executes the dev tasks: start (detached or supervised in the foreground), stop, restart.

One supervisor at a time: ``dev.start`` holds ``.flowlet/run/supervisor.lock`` from before the
first process starts until every process is ready (``--detach``) or until it stops
(foreground); a second one refuses, naming the holder. A foreground ``dev.start`` follows the
logs, reports what the keepers do (exits, restarts) and, on Ctrl-C, SIGTERM or SIGHUP, stops
everything it started (dependents first) before the boundary exits 130, 143 or 129.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from invoke import Context

from tasks.core import locks, runner
from tasks.core.errors import OpsError
from tasks.dev import launch, logfiles, pidfiles, procs
from tasks.dev.order import stop_order, with_dependencies
from tasks.dev.plan import Stack, load_stack, process_env, where


def say(text: str, *, err: bool = False) -> None:
    """Print one line; a terminal that went away (SIGHUP) must not stop the cleanup."""
    stream = sys.stderr if err else sys.stdout
    try:
        stream.write(text + "\n")
        stream.flush()
    except OSError:
        detach_from_terminal()


def detach_from_terminal() -> None:
    """Point stdout and stderr at /dev/null (the terminal is gone: EIO on every write)."""
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(null, fd)
    os.close(null)


def writable(stack: Stack) -> None:
    """``.flowlet/run`` and ``.flowlet/logs`` can be written and are ours (one line when they
    cannot be, or another user owns or may write them)."""
    from tasks.core.files import dir_problem, make_dirs

    for path in (stack.run_dir, stack.log_dir):
        try:
            make_dirs(path, 0o700)
            why = dir_problem(path)
            if why is None:
                fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise OpsError(
                f"dev.start: cannot write {path}: {exc.strerror}; set dev.flowlet_dir to a "
                "writable directory"
            ) from None
        if why is not None:
            raise OpsError(
                f"dev.start: {path} is not safe to write into: {why}; set dev.flowlet_dir to a "
                "directory owned by you "
                "(or root), not writable by group or others"
            )


def live_records(stack: Stack) -> tuple[dict[str, pidfiles.Record], list[str]]:
    """Records whose keeper runs, and notes about stale ones (removed; groups verified ours)."""
    live, notes = {}, []
    for record in pidfiles.read_records(stack.run_dir):
        state = record.keeper.state()
        if state == "running":
            live[record.name] = record
            continue
        target = launch.target_of(stack, record)
        if target.child is not None and target.live_groups():
            procs.stop_targets([target], stack.stop_grace)
            notes.append(f"{record.name}: stopped a process left by an earlier run")
        pidfiles.remove_record(stack.run_dir, record.name)
        why = f"pid {record.pid} now belongs to another process" if state == "reused" else "gone"
        notes.append(f"{record.name}: removed stale pid file ({why})")
    return live, notes


def environments(stack: Stack, names: list[str]) -> dict[str, dict[str, str]]:
    from tasks.dev.envfile import parse_env

    dotenv = parse_env(stack.env_file.read_text(encoding="utf-8"))
    base = runner.child_env()
    return {n: process_env(stack.spec(n), dotenv, base, stack.env_file) for n in names}


def preflight(c: Context, stack: Stack, names: list[str]) -> None:
    from tasks.dev import health, postgres

    if not postgres.initialized(stack) or not stack.env_file.is_file():
        missing = stack.env_file if postgres.initialized(stack) else stack.pg_data
        raise OpsError(f"dev.start: {missing} is missing; run inv setup --env development first")
    for name in names:
        spec = stack.spec(name)
        if not spec.cwd.is_dir():
            raise OpsError(f"dev.processes.{name}.cwd: {spec.cwd} is not a directory")
        if not spec.oneshot and health.port_in_use(spec.host, spec.port):
            raise OpsError(
                f"dev.start: port {spec.port} ({name}) is already in use; stop what listens "
                f"there or set {stack.port_key(spec)}"
            )


def oneshots_when_needed(stack: Stack, todo: list[str], name: str | None) -> list[str]:
    """``todo`` without the oneshots no process being started needs (a completed migrate is
    not run again by a ``dev.start`` that finds the services running), unless named."""
    services = [n for n in todo if not stack.spec(n).oneshot]
    needed = set(with_dependencies(stack, services)) | {name}
    return [n for n in todo if not stack.spec(n).oneshot or n in needed]


def start(c: Context, *, detach: bool, name: str | None) -> None:
    """Body of ``dev.start`` (documented on the task)."""
    stack = load_stack(c, name=name)
    wanted = with_dependencies(stack, [name] if name else stack.names())
    if runner.is_dry(c):
        for item in wanted:
            spec = stack.spec(item)
            verb, until = (
                ("run", "; a oneshot: until it exits 0") if spec.oneshot else ("start", "")
            )
            argv = runner.render(spec.argv)
            say(f"dev.start: would {verb} {item}: {argv} (in {spec.cwd}{until})")
        return
    writable(stack)
    hint = "it supervises the stack: stop it there with Ctrl-C, or run inv dev.stop"
    with locks.hold(stack.lock_path, "dev.start", hint=hint):
        live, notes = live_records(stack)
        for note in notes:
            say(f"dev.start: {note}")
        todo = oneshots_when_needed(stack, [n for n in wanted if n not in live], name)
        if not todo:
            which = ", ".join(f"{n} (pid {live[n].pid})" for n in wanted if n in live)
            say(f"dev.start: already running: {which}; see inv dev.status")
            return
        preflight(c, stack, todo)
        envs = environments(stack, todo)
        launch_and_supervise(stack, todo, envs, detach=detach, running=frozenset(live))


def run_oneshot(c: Context, *, name: str, task: str) -> None:
    """Run the oneshot ``name`` to completion, in the foreground (``dev.migrate``, and
    ``dev.restart`` for a oneshot). With what it needs already running, no supervisor lock is
    taken (it starts nothing that keeps running); otherwise as ``dev.start --detach --name``."""
    from tasks.core.errors import ConfigError

    stack = load_stack(c, name=name)
    spec = stack.spec(name)
    if not spec.oneshot:
        raise ConfigError(f"dev.processes.{name}.kind: {task} runs a oneshot; {name} is not one")
    live, _ = live_records(stack)
    needed = [n for n in with_dependencies(stack, [name]) if n != name and n not in live]
    if needed:
        say(f"{task}: starting {', '.join(needed)} first (they keep running)")
        start(c, detach=True, name=name)
        return
    if runner.is_dry(c):
        say(f"{task}: would run {name}: {runner.render(spec.argv)} (in {spec.cwd})")
        return
    writable(stack)
    preflight(c, stack, [name])
    envs = environments(stack, [name])
    launch_and_supervise(stack, [name], envs, detach=False, running=frozenset(live), task=task)


def launch_and_supervise(
    stack: Stack,
    todo: list[str],
    envs: Mapping[str, Mapping[str, str]],
    *,
    detach: bool,
    running: frozenset[str],
    task: str = "dev.start",
) -> None:
    run_id = f"{int(time.time())}-{os.getpid()}"
    follower = None if detach else logfiles.LogFollower({n: stack.log_path(n) for n in todo})

    reported: dict[str, int] = {}

    def tick() -> None:
        if follower is not None:  # the foreground: logs and restarts as they happen
            follower.poll(lambda line: say(line.rstrip("\n")))
            report_restarts(stack, started, reported)

    def on_ready(item: launch.Started, elapsed: float) -> None:
        if item.spec.oneshot:
            say(f"{task}: {item.spec.name} completed in {elapsed:.1f}s (exit 0)")
            return
        child = pidfiles.child_of(pidfiles.read_state(stack.run_dir, item.spec.name))
        pid = child.pid if child else item.keeper.pid
        say(f"dev.start: {item.spec.name} ready in {elapsed:.1f}s (pid {pid}, {where(item.spec)})")

    started: dict[str, launch.Started] = {}
    try:
        launch.start_processes(
            stack,
            todo,
            envs,
            started,
            run_id=run_id,
            detach=detach,
            on_ready=on_ready,
            tick=tick,
            running=running,
        )
        if detach or all(item.done for item in started.values()):
            for item in started.values():
                if item.keeper.returncode is None:
                    item.keeper.returncode = 0  # not ours to reap: it outlives us by design
            if all(item.done for item in started.values()):
                say(f"{task}: done; log: {stack.log_path(todo[-1])}")
            else:
                say(f"dev.start: all ready; logs in {stack.log_dir}; stop with inv dev.stop")
            return
        say("dev.start: all ready; Ctrl-C stops everything")
        supervise(stack, started, tick)
    except launch.StartFailure as failure:
        for line in logfiles.run_tail(stack.log_path(failure.name), run_id, stack.log_lines):
            say(f"{failure.name} | {line}", err=True)
        left = still_running(started)
        launch.stop_started(stack, started)
        stopped = f"; stopped {', '.join(left)}" if left else ""
        log = stack.log_path(failure.name)
        raise OpsError(f"{task}: {failure.name} {failure.reason}{stopped}; log: {log}")
    except KeyboardInterrupt as interrupt:
        if getattr(interrupt, "signum", 0) == 1:  # SIGHUP: the terminal is probably gone
            say("dev.start: hangup: stopping the stack")
        stop_interrupted(stack, started)
        raise
    finally:
        if follower is not None:
            follower.close()


def still_running(started: Mapping[str, launch.Started]) -> list[str]:
    """What there is to stop: not the oneshots that have ended (completed or failed)."""
    return [n for n, i in started.items() if not (i.spec.oneshot and i.done)]


def stop_interrupted(stack: Stack, started: Mapping[str, launch.Started]) -> None:
    """Stop everything after Ctrl-C/SIGTERM/SIGHUP; a second signal does not cut it short."""
    import signal

    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        names = stop_order(stack, still_running(started))
        launch.stop_started(stack, started)
        say(f"dev.start: stopped {', '.join(names) or 'nothing'}")
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def report_restarts(
    stack: Stack, started: Mapping[str, launch.Started], reported: dict[str, int]
) -> None:
    """Say each restart once (a restart policy's or dev.restart's), while starting too."""
    for name, item in started.items():
        if item.done:
            continue
        state, data = launch.keeper_outcome(stack, item)
        restarts = int(data.get("restarts", 0))
        if state == "running" and restarts > reported.get(name, 0):
            reported[name] = restarts
            say(f"dev.start: {name} restarted (restart {restarts}, pid {child_pid(data)})")


def supervise(stack: Stack, started: dict[str, launch.Started], tick: Any) -> None:
    """Follow the logs and report restarts (``tick``); fail when a process ends that was not
    asked to."""
    while True:
        tick()
        for name, item in started.items():
            if item.done:
                continue
            if not pidfiles.record_path(stack.run_dir, name).exists():
                item.done = "stopped by inv dev.stop"
            state, data = launch.keeper_outcome(stack, item)
            if item.keeper.poll() is None and not item.done:
                continue
            if state == "stopped" or item.done:
                item.done = item.done or "stopped by inv dev.stop"
                say(f"dev.start: {name} {item.done}")
                continue
            raise launch.StartFailure(name, launch.how_it_ended(data))
        if all(item.done for item in started.values()):
            say("dev.start: every process was stopped; exiting")
            return
        time.sleep(0.2)


def child_pid(state: Mapping[str, Any]) -> str:
    child = pidfiles.child_of(state)
    return str(child.pid) if child else "-"
