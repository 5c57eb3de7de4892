"""Start processes of the stack in dependency order and wait until each is ready."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from tasks.dev import procs
from tasks.dev.config import LocalStack, ProcessSpec


class StartFailure(Exception):
    """A process exited or did not become ready in time."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} {reason}")
        self.name = name
        self.reason = reason


def process_env(spec: ProcessSpec, dotenv: Mapping[str, str]) -> dict[str, str]:
    """inv's environment, plus ``.env.local`` and the spec's own env (not for the database)."""
    env = dict(os.environ)
    if spec.user is None:
        env.update(dotenv)
    env.update(spec.env)
    return env


def readiness(spec: ProcessSpec) -> str:
    if spec.ready == "http":
        return f"HTTP 200 from {spec.health_url}"
    if spec.ready == "postgres":
        return f"PostgreSQL accepting connections on {spec.host}:{spec.port}"
    return f"port {spec.host}:{spec.port} open"


def start_processes(
    stack: LocalStack,
    specs: list[ProcessSpec],
    dotenv: Mapping[str, str],
    started: dict[str, Any],
    on_ready: Callable[[ProcessSpec, Any, float], None],
    tick: Callable[[], None] | None = None,
) -> None:
    """Start ``specs`` (each once its ``after`` processes are ready) and wait for readiness.

    Every started Popen lands in ``started`` at once and is recorded under ``.flowlet/run``,
    so the caller can stop them on any failure or Ctrl-C. Raises :class:`StartFailure`.
    """
    names = {s.name for s in specs}
    pending = list(specs)
    ready: set[str] = set()
    began: dict[str, float] = {}
    by_name = {s.name: s for s in specs}
    while len(ready) < len(specs):
        for spec in list(pending):
            if all(dep in ready for dep in spec.after if dep in names):
                pending.remove(spec)
                try:
                    proc = procs.spawn(spec, process_env(spec, dotenv), stack.log_path(spec.name))
                except OSError as exc:
                    raise StartFailure(spec.name, f"could not be started: {exc}") from None
                started[spec.name] = proc
                procs.write_record(stack.run_dir, procs.record_for(spec, proc.pid))
                began[spec.name] = time.monotonic()
        for name, proc in started.items():
            if name in ready or name not in by_name:
                continue
            spec = by_name[name]
            code = proc.poll()
            if code is not None:
                raise StartFailure(name, f"exited with code {code} before it was ready")
            elapsed = time.monotonic() - began[name]
            if procs.is_ready(spec):
                ready.add(name)
                on_ready(spec, proc, elapsed)
            elif elapsed > stack.ready_timeout:
                raise StartFailure(
                    name,
                    f"not ready within {stack.ready_timeout:g}s (waited for {readiness(spec)})",
                )
        if tick is not None:
            tick()
        if len(ready) < len(specs):
            time.sleep(0.1)


def stop_started(stack: LocalStack, started: Mapping[str, Any]) -> list[str]:
    """Stop what :func:`start_processes` started (process groups) and drop their records."""
    records = [r for r in procs.read_records(stack.run_dir) if r.name in started]
    children = {proc.pid: proc for proc in started.values()}
    killed = procs.stop_groups(records, stack.stop_grace, children)
    for name in started:
        procs.remove_record(stack.run_dir, name)
    return killed
