"""Executes ``dev.stop`` and ``dev.restart``: one process or the whole stack, dependents first.

Stopping needs no lock: it only signals processes whose identity it checked. A restart goes
through the process's keeper (SIGUSR1, with the current config in ``NAME.next.json``), so it
works under a foreground supervisor too; a process that does not run is started as
``dev.start --detach --name NAME`` would (that one takes the supervisor lock).
"""

from __future__ import annotations

import os
import time

from invoke import Context

from tasks.core import runner
from tasks.core.errors import OpsError
from tasks.dev import launch, pidfiles, procs
from tasks.dev.order import stop_order
from tasks.dev.plan import load_stack
from tasks.dev.run import child_pid, environments, live_records, run_oneshot, say, start


def stop(c: Context, *, name: str | None) -> None:
    """Body of ``dev.stop`` (documented on the task)."""
    stack = load_stack(c, name=name)
    records = {r.name: r for r in pidfiles.read_records(stack.run_dir)}
    if name is not None:
        records = {k: v for k, v in records.items() if k == name}
    if not records:
        what = f"{name} is not recorded" if name else "no pid files"
        say(f"dev.stop: nothing to stop ({what} in {stack.run_dir})")
        return
    order = stop_order(stack, list(records)) + sorted(set(records) - set(stack.names()))
    targets = [launch.target_of(stack, records[n]) for n in order]
    if runner.is_dry(c):
        for t in targets:
            say(f"dev.stop: would stop {t.record.name} (keeper pid {t.record.pid})")
        return
    live, gone = [], []
    for target in targets:
        if target.record.keeper.alive() or target.live_groups():
            live.append(target)
        else:
            gone.append(target)
    from tasks.dev.order import stop_waves

    killed = []
    by_name = {t.record.name: t for t in live}
    for wave in stop_waves(stack, list(by_name)):
        killed += procs.stop_targets([by_name[n] for n in wave], stack.stop_grace)
    for target in targets:
        pidfiles.remove_record(stack.run_dir, target.record.name)
    for target in gone:
        state = target.record.keeper.state()
        why = (
            f"pid {target.record.pid} now belongs to another process"
            if state == "reused"
            else "gone"
        )
        say(f"dev.stop: {target.record.name}: removed stale pid file ({why})")
    if live:
        shown = ", ".join(
            f"{t.record.name} (pid {t.child.pid if t.child else t.record.pid})" for t in live
        )
        say(f"dev.stop: stopped {shown}")
    if killed:
        say(f"dev.stop: {', '.join(killed)} did not stop within {stack.stop_grace:g}s: killed")


def restart(c: Context, *, name: str | None) -> None:
    """Body of ``dev.restart`` (documented on the task)."""
    import signal

    from tasks.dev import health
    from tasks.dev.order import start_order

    stack = load_stack(c, name=name)
    names = [name] if name else start_order(stack)
    live, _ = live_records(stack)
    missing = [n for n in names if n not in live]
    if runner.is_dry(c):
        for n in names:
            verb = "run" if stack.spec(n).oneshot else "restart" if n in live else "start"
            say(f"dev.restart: would {verb} {n}")
        return
    envs = environments(stack, [n for n in names if n in live])
    for n in names:
        spec = stack.spec(n)
        if n not in live and spec.oneshot:  # in start order: migrate before the backend
            run_oneshot(c, name=n, task="dev.restart")
            continue
        if n not in live:
            continue
        before = pidfiles.read_state(stack.run_dir, n)
        payload = launch.keeper_spec(stack, spec, envs[n], live[n].run_id)
        pidfiles.write_json(stack.run_dir / f"{n}.next.json", payload)
        os.kill(live[n].pid, signal.SIGUSR1)
        began = time.monotonic()
        while True:
            state = pidfiles.read_state(stack.run_dir, n)
            moved = state.get("restarts", 0) != before.get("restarts", 0)
            if moved and state.get("state") == "running" and health.check(spec)[0]:
                break
            if state.get("state") in launch.FINAL_STATES or not live[n].keeper.alive():
                raise OpsError(
                    f"dev.restart: {n} {launch.how_it_ended(state)}; log: {stack.log_path(n)}"
                )
            if time.monotonic() - began > stack.ready_timeout:
                raise OpsError(
                    f"dev.restart: {n} not ready within {stack.ready_timeout:g}s after the "
                    f"restart; log: {stack.log_path(n)}"
                )
            time.sleep(0.05)
        say(
            f"dev.restart: {n} restarted in {time.monotonic() - began:.1f}s "
            f"(pid {child_pid(state)})"
        )
    for n in [n for n in missing if not stack.spec(n).oneshot]:
        say(f"dev.restart: {n} was not running: starting it")
        start(c, detach=True, name=n)
