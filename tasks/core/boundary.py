"""The one error boundary: every task body runs inside :func:`guarded`.

It validates the whole config first (every topic's schema), registers the secret variable
names with the runner, turns SIGTERM and SIGHUP into interrupts (like Ctrl-C), runs the body,
and then, on every path, runs the registered cleanups (temp directories, child processes) in
reverse order. What ends the task decides the output and the exit code:

==============================  ======================================  ===========
ended by                        printed (stderr)                        exit code
==============================  ======================================  ===========
success                         nothing                                 0
:class:`OpsError`               its one line                            its ``code`` (1)
a failed ``c.run`` command      ``<tool> failed (exit N): <last line>`` N
Ctrl-C / SIGTERM / SIGHUP       ``interrupted (SIGINT): <task>``        130/143/129
stdout closed (``| head``)      nothing                                 141
``invoke.Exit``                 its message (Invoke prints it)          its code
anything else (a bug)           ``internal error in <task>: ...``       3
==============================  ======================================  ===========

Set ``FLOWLET_TRACEBACK=1`` to get the traceback of an internal error.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from invoke.exceptions import Exit, UnexpectedExit

from tasks.core.errors import OpsError, last_line

_cleanups: list[Callable[[], None]] = []
_depth: list[int] = [0]


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, delivered like Ctrl-C (every ``except KeyboardInterrupt`` cleanup
    path runs) but remembering which signal it was, for the exit code and forwarding."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_exit(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` when the current task ends, however it ends (last registered first)."""
    _cleanups.append(cleanup)


def run_cleanups() -> None:
    while _cleanups:
        cleanup = _cleanups.pop()
        try:
            cleanup()
        except Exception as exc:  # a cleanup must not hide the task's own outcome
            print(f"cleanup failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def silence_hung_up_terminal() -> None:
    """After SIGHUP: stdout/stderr on a terminal that hung up (closed, SSH dropped) go to
    /dev/null. Every write there fails with EIO, and the cleanups (releasing the deploy lock,
    whose progress line comes first) must still run. A terminal still there (``kill -HUP`` from
    elsewhere) keeps its output; a hung-up one answers no terminal ioctl (``isatty`` False)
    while still being a character device other than /dev/null."""
    null = os.stat(os.devnull).st_rdev
    for fd in (1, 2):
        try:
            info = os.fstat(fd)
            if not stat.S_ISCHR(info.st_mode) or info.st_rdev == null or os.isatty(fd):
                continue
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except OSError:
            continue


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM/SIGHUP raise :class:`Signalled` in the main thread (unless inherited ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            silence_hung_up_terminal()
        raise Signalled(signum)

    saved = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN:  # nohup, or a parent that means it: respect it
            continue
        saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _command_failed(exc: UnexpectedExit) -> tuple[str, int]:
    result = exc.result
    words = (result.command or "").split()
    tool = os.path.basename(words[0]) if words else "command"
    code = result.exited if result.exited and result.exited > 0 else 1
    if result.exited is not None and result.exited < 0:
        code = 128 - result.exited
    tail = last_line(result.stderr) if result.hide else ""
    return f"{tool} failed (exit {result.exited})" + (f": {tail}" if tail else ""), code


def guarded(task_name: str, c: Any, body: Callable[[], Any]) -> Any:
    """Run ``body`` inside the boundary (nested calls run inside the outer one)."""
    if _depth[0]:
        return body()
    from tasks.core import runner, secrets, settings

    message, code = "", 0
    _depth[0] += 1
    try:
        with signals_as_interrupts():
            try:
                settings.validate_config(c)
                runner.register_secret_names(settings.secret_env_names(c))
                secrets.sweep()
                secrets.no_core_dumps()
                return body()
            except OpsError as exc:
                message, code = exc.message, exc.code
            except UnexpectedExit as exc:
                message, code = _command_failed(exc)
            except KeyboardInterrupt as exc:
                signum = int(getattr(exc, "signum", signal.SIGINT))
                message = f"interrupted ({signal.Signals(signum).name}): {task_name} stopped"
                code = 128 + signum
            except Exit:
                raise
            except BrokenPipeError:  # `inv ... | head`: the reader is gone; stop quietly
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                code = 128 + signal.SIGPIPE
            except Exception as exc:
                if os.environ.get("FLOWLET_TRACEBACK"):
                    raise
                message = f"internal error in {task_name}: {type(exc).__name__}: {exc}"
                message += " (FLOWLET_TRACEBACK=1 shows the traceback)"
                code = 3
            finally:
                try:
                    runner.stop_children()
                finally:
                    run_cleanups()
    finally:
        _depth[0] -= 1
    if message:
        print(message, file=sys.stderr, flush=True)
    raise Exit(code=code)
