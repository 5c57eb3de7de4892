"""The keeper: the parent of one process of the stack (``python -m tasks.dev.keeper``).

``dev.start`` starts one keeper per process (through :func:`tasks.core.runner.spawn`: with
``--detach`` in a session of its own, otherwise dying with ``inv``) and sends it a JSON spec
on stdin: argv, cwd, the whole environment, the user, the stop signal, the restart policy and
the log settings. The keeper then

- starts the process (its own process group; it dies with the keeper, PostgreSQL by SIGINT);
- writes its output to ``.flowlet/logs/NAME.log`` with rotation, with a marker line for each
  start, exit and restart;
- records it and how it last ended (exit code or signal) in ``.flowlet/run/NAME.state.json``,
  which is how ``dev.status`` can tell what happened to a detached process;
- applies the restart policy (``no``, ``on-failure``, ``always``): the first restart after
  ``backoff`` seconds, doubling up to 30 s, at most ``max_restarts`` in a row (a run of 60 s
  or more starts the count afresh), then it gives up;
- on SIGTERM, SIGINT or SIGHUP stops the process with its stop signal, SIGKILLs its group
  after ``grace`` seconds, and exits; on SIGUSR1 restarts it (``NAME.next.json``, written by
  ``dev.restart``, replaces the spec first: a restart picks up config changes).
"""

from __future__ import annotations

import json
import os
import select
import selectors
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tasks.core import runner
from tasks.dev import logfiles, pidfiles, procs

BACKOFF_MAX = 30.0
RESET_AFTER = 60.0
BACKSTOP = 1.0  # seconds the keeper waits past the grace period when dev.stop asked


class Keeper:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name = str(spec["name"])
        self.run_dir = Path(spec["run_dir"])
        self.log = logfiles.RotatingLog(
            Path(spec["log_path"]), int(spec["log_max_bytes"]), int(spec["log_keep"])
        )
        self.child: Any = None
        self.child_id: procs.Identity | None = None
        self.out_fd = -1
        self.pidfd = -1
        self.started_at = 0.0
        self.restarts = 0
        self.in_row = 0
        self.last_exit: dict[str, Any] | None = None
        self.stop_requested = False
        self.restart_requested = False
        self.restart_pending = False
        self.kill_after = 0.0
        self.kill_at: float | None = None
        self.restart_at: float | None = None
        self.state = "starting"
        self.selector = selectors.DefaultSelector()

    # -- signals ------------------------------------------------------------------------
    def _on_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = True

    def _on_restart(self, signum: int, frame: Any) -> None:
        self.restart_requested = True

    def install_signals(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_restart)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    # -- the state file -----------------------------------------------------------------
    def save(self) -> None:
        pidfiles.write_json(
            pidfiles.state_path(self.run_dir, self.name),
            {
                "name": self.name,
                "state": self.state,
                "keeper": os.getpid(),
                "child": None if self.child_id is None else asdict(self.child_id),
                "since": self.started_at,
                "restarts": self.restarts,
                "policy": self.spec.get("restart", "no"),
                "max_restarts": int(self.spec.get("max_restarts", 0)),
                "restart_at": self.restart_at
                and time.time() + (self.restart_at - time.monotonic()),
                "last_exit": self.last_exit,
                "run_id": self.spec.get("run_id", ""),
            },
        )

    def note(self, text: str) -> None:
        self.log.write(logfiles.marker(self.name, text))

    # -- the process ----------------------------------------------------------------------
    def start_child(self, why: str) -> None:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        if why == "start":
            self.note(logfiles.start_marker_text(str(self.spec.get("run_id", ""))))
        else:
            self.note(why)
        try:
            self.child = runner.spawn(
                self.spec["argv"],
                env=self.spec["env"],
                replace_env=True,
                cwd=self.spec["cwd"],
                stdout=write_end,
                stderr=write_end,
                user=self.spec.get("user"),
                death_signal=int(self.spec["death_signal"]),
            )
        except Exception as exc:  # the error goes to the log and the state, not to a tty
            os.close(read_end)
            os.close(write_end)
            self.child, self.child_id = None, None
            self.last_exit = {"code": 127, "signal": None, "at": time.time(), "error": str(exc)}
            self.note(f"could not be started: {exc}")
            self.after_exit()
            return
        os.close(write_end)
        self.out_fd = read_end
        self.selector.register(read_end, selectors.EVENT_READ, "out")
        self.pidfd = os.pidfd_open(self.child.pid)
        self.selector.register(self.pidfd, selectors.EVENT_READ, "exit")
        self.child_id = procs.Identity.of(self.child.pid)
        self.started_at = time.time()
        self.state = "running"
        self.kill_at = None
        self.save()

    def read_output(self, block: bool = False) -> None:
        if self.out_fd < 0:
            return
        try:
            data = os.read(self.out_fd, 65536)
        except BlockingIOError:
            return
        if data:
            self.log.write(data)
            return
        self.selector.unregister(self.out_fd)
        os.close(self.out_fd)
        self.out_fd = -1

    def drain(self, timeout: float = 2.0) -> None:
        """Read what the process (and what it left in its group) still writes, until EOF."""
        deadline = time.monotonic() + timeout
        while self.out_fd >= 0 and time.monotonic() < deadline:
            ready, _, _ = select.select([self.out_fd], [], [], 0.1)
            if ready:
                self.read_output()
        if self.out_fd >= 0:
            self.selector.unregister(self.out_fd)
            os.close(self.out_fd)
            self.out_fd = -1

    def child_exited(self) -> bool:
        """True once the process has ended (it stays a zombie: its pid and group id stay ours
        until :meth:`reap`, so what it left in its group can be signalled safely)."""
        try:
            info = os.waitid(os.P_PID, self.child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def reap(self) -> None:
        pgid = self.child.pid
        if procs.group_members(pgid):  # what it left behind in its group
            procs.signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + 2.0
            while procs.group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            procs.signal_group(pgid, signal.SIGKILL)
        code = self.child.wait()
        self.selector.unregister(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        self.drain()
        ran = time.time() - self.started_at
        self.last_exit = {
            "code": code if code >= 0 else None,
            "signal": -code if code < 0 else None,
            "at": time.time(),
            "ran": round(ran, 3),
        }
        self.note(procs.describe_exit(self.last_exit["code"], self.last_exit["signal"]))
        self.child = None
        if ran >= RESET_AFTER:
            self.in_row = 0
        self.after_exit()

    def after_exit(self) -> None:
        if self.stop_requested:
            self.state = "stopped"
            return
        if self.restart_pending:
            self.restart_pending = False
            self.restarts += 1
            self.start_child("restart (requested by inv dev.restart)")
            return
        policy = self.spec.get("restart", "no")
        failed = (self.last_exit or {}).get("code") != 0
        if policy == "always" or (policy == "on-failure" and failed):
            limit = int(self.spec.get("max_restarts", 0))
            if self.in_row >= limit:
                self.state = "failed"
                self.note(f"gave up after {self.in_row} restarts in a row (max_restarts {limit})")
                return
            delay = min(float(self.spec.get("backoff", 1.0)) * 2**self.in_row, BACKOFF_MAX)
            self.in_row += 1
            self.restart_at = time.monotonic() + delay
            self.state = "backoff"
            self.note(f"restart {self.in_row} of {limit} in {delay:g}s (restart: {policy})")
            self.save()
            return
        self.state = "exited"

    def request_stop(self, backstop: float = 0.0) -> None:
        """The stop signal now, SIGKILL after the grace period (plus ``backstop`` seconds when
        ``dev.stop`` or the supervisor asked: they keep the same grace and SIGKILL themselves,
        and say so; ours is for when they are gone)."""
        if self.child is not None and self.kill_at is None:
            procs.signal_group(self.child.pid, int(self.spec["stop_signal"]))
            self.kill_after = float(self.spec["grace"]) + backstop
            self.kill_at = time.monotonic() + self.kill_after

    def load_next_spec(self) -> None:
        path = self.run_dir / f"{self.name}.next.json"
        data = pidfiles.read_json(path)
        path.unlink(missing_ok=True)
        if data:
            self.spec.update(data)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        self.install_signals()
        self.start_child("start")
        while self.state in ("running", "backoff"):
            now = time.monotonic()
            waits = [1.0]
            if self.kill_at is not None:
                waits.append(self.kill_at - now)
            if self.restart_at is not None:
                waits.append(self.restart_at - now)
            for key, _ in self.selector.select(max(0.0, min(waits))):
                if key.data == "out":
                    self.read_output()
                elif key.data == "wake":
                    try:
                        os.read(key.fd, 512)
                    except BlockingIOError:
                        pass
            if self.child is not None and self.child_exited():
                self.reap()
                if self.state not in ("running", "backoff"):
                    break
            if self.stop_requested:
                if self.child is None:
                    self.state = "stopped"
                    break
                self.request_stop(backstop=BACKSTOP)
            elif self.restart_requested:
                self.restart_requested = False
                self.load_next_spec()
                if self.child is not None:
                    self.restart_pending = True
                    self.request_stop()
                else:
                    self.restart_at, self.in_row = None, 0
                    self.restarts += 1
                    self.start_child("restart (requested by inv dev.restart)")
            if self.kill_at is not None and time.monotonic() >= self.kill_at and self.child:
                self.note(f"did not stop within {self.kill_after:g}s: SIGKILL")
                procs.signal_group(self.child.pid, signal.SIGKILL)
                self.kill_at = time.monotonic() + 5.0
            if self.restart_at is not None and time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.restarts += 1
                self.start_child(f"restart {self.in_row} (restart: {self.spec.get('restart')})")
        self.restart_at = None
        self.save()
        self.log.close()
        return 0


def main() -> int:
    spec = json.loads(sys.stdin.read())
    keeper = Keeper(spec)
    try:
        return keeper.run()
    except BaseException as exc:  # leave a trace where someone looks: the log and the state
        keeper.note(f"keeper failed: {type(exc).__name__}: {exc}")
        keeper.state = "failed"
        keeper.save()
        if keeper.child is not None:
            procs.signal_group(keeper.child.pid, signal.SIGKILL)
        return 1


if __name__ == "__main__":
    sys.exit(main())
