"""One operation at a time: an exclusive ``flock`` on a file, naming its holder to the next one.

The lock file records who holds it (pid, user@host, the command, since when); a second run that
finds it locked refuses with one line naming that holder (or waits up to ``wait`` seconds). The
kernel drops the lock when the holder dies, even by ``kill -9``: no stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.core.errors import Refused
from tasks.core.files import make_dirs


def holder_record(operation: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "user": f"{getpass.getuser()}@{socket.gethostname()}",
        "operation": operation,
        "command": " ".join(["inv", *sys.argv[1:]]) if sys.argv else "inv",
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def describe_holder(record: dict[str, Any]) -> str:
    if not record:
        return "another process (it has not recorded itself yet)"
    command = record.get("command") or record.get("operation", "?")
    return (
        f"{record.get('user', '?')} pid {record.get('pid', '?')} ({command}) "
        f"since {record.get('since', '?')}"
    )


def _read_holder(fd: int) -> dict[str, Any]:
    for _ in range(20):  # the holder writes its record right after taking the lock
        try:
            data = os.pread(fd, 4096, 0)
            record = json.loads(data.decode("utf-8")) if data.strip() else {}
            if isinstance(record, dict) and record:
                return record
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return {}


@contextmanager
def hold(path: Path, operation: str, *, wait: float = 0.0, hint: str = "") -> Iterator[None]:
    """Hold the lock at ``path`` for ``operation``; refuse (or wait ``wait`` s) if held."""
    make_dirs(path.parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = describe_holder(_read_holder(fd))
                    extra = f"; {hint}" if hint else ""
                    raise Refused(f"{operation}: already running: {holder}{extra}") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder_record(operation)).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def holder(path: Path) -> dict[str, Any] | None:
    """The record of whoever holds the lock at ``path`` now, or None if it is free."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
