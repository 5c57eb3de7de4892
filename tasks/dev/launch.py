"""Starting processes of the stack: one keeper each, in dependency order, until each is ready.

A keeper (:mod:`tasks.dev.keeper`) is started through :func:`tasks.core.runner.spawn`: with
``detach`` in a session of its own (it outlives ``inv`` by design), otherwise in its own process
group, dying with ``inv`` even on ``kill -9`` (it then stops its process gracefully).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core import runner
from tasks.dev import health, pidfiles, procs
from tasks.dev.plan import ProcessSpec, Stack, readiness

CODE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the tasks package
FINAL_STATES = ("exited", "failed", "stopped")


class StartFailure(Exception):
    """A process exited or did not become ready in time."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} {reason}")
        self.name = name
        self.reason = reason


@dataclass
class Started:
    spec: ProcessSpec
    keeper: subprocess.Popen[bytes]
    record: pidfiles.Record
    began: float
    ready: bool = False
    done: str = ""  # why it no longer runs (supervisor)


def keeper_spec(
    stack: Stack, spec: ProcessSpec, env: Mapping[str, str], run_id: str
) -> dict[str, Any]:
    """What a keeper is told (on stdin, never argv: the environment may hold secrets)."""
    return {
        "name": spec.name,
        "argv": list(spec.argv),
        "cwd": str(spec.cwd),
        "env": dict(env),
        "user": spec.user,
        "stop_signal": int(spec.stop_signal),
        "death_signal": int(spec.stop_signal),
        "grace": stack.stop_grace,
        "restart": spec.restart,
        "max_restarts": spec.max_restarts,
        "backoff": spec.backoff,
        "run_dir": str(stack.run_dir),
        "log_path": str(stack.log_path(spec.name)),
        "log_max_bytes": stack.log_max_bytes,
        "log_keep": stack.log_keep,
        "run_id": run_id,
    }


def spawn_keeper(
    stack: Stack, spec: ProcessSpec, env: Mapping[str, str], run_id: str, *, detach: bool
) -> Started:
    pidfiles.remove_record(stack.run_dir, spec.name)
    keeper = runner.spawn(
        [runner.python(), "-m", "tasks.dev.keeper"],
        env={"PYTHONPATH": str(CODE_ROOT)},
        cwd=CODE_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        detach=detach,
        death_signal=signal.SIGTERM,
    )
    assert keeper.stdin is not None  # nosec B101: stdin=PIPE
    identity = procs.Identity.of(keeper.pid) or procs.Identity(keeper.pid, 0, "")
    record = pidfiles.Record(spec.name, identity, spec.port, time.time(), run_id)
    pidfiles.write_record(stack.run_dir, record)
    try:
        keeper.stdin.write(json.dumps(keeper_spec(stack, spec, env, run_id)).encode())
        keeper.stdin.close()
    except BrokenPipeError:
        pass  # it died at once: the readiness check reports it
    return Started(spec, keeper, record, time.monotonic())


def keeper_outcome(stack: Stack, item: Started) -> tuple[str, dict[str, Any]]:
    """(state, state file) of a started keeper; ``gone`` when it died without saying why."""
    state = pidfiles.read_state(stack.run_dir, item.spec.name)
    if state.get("keeper") != item.keeper.pid:
        state = {}
    if item.keeper.poll() is not None and state.get("state") not in FINAL_STATES:
        return "gone", state
    return str(state.get("state", "starting")), state


def how_it_ended(state: Mapping[str, Any]) -> str:
    last = state.get("last_exit") or {}
    text = procs.describe_exit(last.get("code"), last.get("signal")) if last else "exited"
    if last.get("error"):
        text = f"could not be started ({last['error']})"
    if state.get("state") == "failed" and state.get("restarts"):
        text += f" and was restarted {state['restarts']} times (gave up: max_restarts)"
    return text


def completed(state: Mapping[str, Any]) -> bool:
    """A oneshot's state file says it exited with code 0."""
    return state.get("state") == "exited" and (state.get("last_exit") or {}).get("code") == 0


def forget(stack: Stack, spec: ProcessSpec) -> None:
    """Drop the record of a process that no longer runs; a oneshot keeps its state file (how
    its last run ended, for ``dev.status``)."""
    if spec.oneshot:
        pidfiles.record_path(stack.run_dir, spec.name).unlink(missing_ok=True)
    else:
        pidfiles.remove_record(stack.run_dir, spec.name)


def start_processes(
    stack: Stack,
    names: list[str],
    envs: Mapping[str, Mapping[str, str]],
    started: dict[str, Started],
    *,
    run_id: str,
    detach: bool,
    on_ready: Callable[[Started, float], None],
    tick: Callable[[], None] | None = None,
    running: frozenset[str] = frozenset(),
) -> None:
    """Start ``names`` (each once its ``after`` processes are ready or already ``running``)
    and wait for each to be ready (a oneshot: to have exited 0; it is then forgotten, its
    state file kept, and marked ``done``). Every keeper lands in ``started`` at once and is recorded
    under ``.flowlet/run``, so the caller can stop them on any failure. Raises StartFailure."""
    pending = [stack.spec(n) for n in names]
    ready = set(running)
    while pending or any(not s.ready for s in started.values()):
        for spec in list(pending):
            if all(dep in ready for dep in spec.after):
                pending.remove(spec)
                started[spec.name] = spawn_keeper(
                    stack, spec, envs[spec.name], run_id, detach=detach
                )
        for name, item in started.items():
            if item.ready:
                continue
            state, data = keeper_outcome(stack, item)
            if state == "gone":
                raise StartFailure(name, "could not be started: its keeper exited")
            elapsed = time.monotonic() - item.began
            if item.spec.oneshot and completed(data):
                item.keeper.wait()
                forget(stack, item.spec)
                item.ready, item.done = True, "completed"
                ready.add(name)
                on_ready(item, elapsed)
                continue
            if item.spec.oneshot and state in FINAL_STATES:
                item.done = "failed"
                raise StartFailure(name, how_it_ended(data))
            if state in FINAL_STATES:
                raise StartFailure(name, f"{how_it_ended(data)} before it was ready")
            if state == "running" and health.check(item.spec)[0]:
                item.ready = True
                ready.add(name)
                on_ready(item, elapsed)
            elif elapsed > stack.ready_timeout:
                raise StartFailure(
                    name,
                    f"not ready within {stack.ready_timeout:g}s "
                    f"(waited for {readiness(item.spec)})",
                )
        if tick is not None:
            tick()
        if pending or any(not s.ready for s in started.values()):
            time.sleep(0.05)


def target_of(stack: Stack, record: pidfiles.Record) -> procs.Target:
    import signal as signals

    state = pidfiles.read_state(stack.run_dir, record.name)
    child = pidfiles.child_of(state) if state.get("keeper") == record.keeper.pid else None
    known = {s.name: s for s in stack.processes}
    stop_signal = known[record.name].stop_signal if record.name in known else signals.SIGTERM
    return procs.Target(record, child, int(stop_signal))


def stop_started(stack: Stack, started: Mapping[str, Started]) -> list[str]:
    """Stop what :func:`start_processes` started (dependents first) and drop the records."""
    from tasks.dev.order import stop_waves

    def reap() -> None:
        for item in started.values():
            item.keeper.poll()

    killed = []
    for wave in stop_waves(stack, list(started)):
        targets = [target_of(stack, started[n].record) for n in wave]
        killed += procs.stop_targets(targets, stack.stop_grace, reap)
    for item in started.values():
        try:
            item.keeper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            item.keeper.kill()
            item.keeper.wait()
        forget(stack, item.spec)
    return killed
