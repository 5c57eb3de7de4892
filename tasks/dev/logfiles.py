"""Process logs under ``.flowlet/logs``: written with rotation, tailed, followed.

- :class:`RotatingLog` (used by the keeper): appends a process's output to ``NAME.log``; when
  the file would pass ``max_bytes`` it becomes ``NAME.log.1`` (older ones shift up, at most
  ``keep`` are kept) and a new ``NAME.log`` begins, at a line boundary where there is one.
- :func:`run_tail`: the last lines of the current run only (after the run's start marker).
- :class:`LogFollower`: prints new lines of several logs, prefixed with the process name, and
  keeps following across rotation (a new file under the name: the rest of the old one is read
  first) and truncation (the file shrank: read again from its start).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from tasks.core.files import make_dirs, open_append

MARKER = "--- "


def marker(name: str, text: str) -> bytes:
    """A line the keeper writes into the log (start, exit, restart ...)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"{MARKER}{stamp} {name}: {text}\n".encode()


def start_marker_text(run_id: str) -> str:
    return f"start (run {run_id})"


class RotatingLog:
    """Appends to ``path``, rotating at ``max_bytes`` and keeping ``keep`` old files."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        make_dirs(path.parent, 0o700)
        self.fd = self._open()

    def _open(self) -> int:
        fd, _ = open_append(self.path, 0o600)  # 0600 whatever the umask; never a symlink
        self.size = os.fstat(fd).st_size
        return fd

    def rotate(self) -> None:
        os.close(self.fd)
        if self.keep > 0:
            for n in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self.fd = self._open()

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self.size
            if len(data) <= room:
                head, data = data, b""
            else:
                cut = data.rfind(b"\n", 0, max(room, 0)) + 1
                if cut <= 0 and self.size == 0:  # one long line: split it where the file is full
                    cut = max(room, 1)
                head, data = data[:cut], data[cut:]
            if head:
                os.write(self.fd, head)
                self.size += len(head)
            if data:
                self.rotate()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of ``path`` (reads at most the last 64 KiB)."""
    if count <= 0:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            data = handle.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-count:]


def run_tail(path: Path, run_id: str, count: int) -> list[str]:
    """The last ``count`` lines written by run ``run_id`` (from its start marker on; when the
    marker is not in the last 64 KiB the window holds only this run's lines, or the log was
    rotated during the run)."""
    lines = tail_lines(path, 1_000_000)
    wanted = start_marker_text(run_id)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(MARKER) and lines[index].endswith(wanted):
            lines = lines[index:]
            break
    return lines[-count:]


class _Followed:
    __slots__ = ("path", "handle", "inode", "partial")

    def __init__(self, path: Path, from_end: bool) -> None:
        self.path = path
        self.handle: BinaryIO | None = None
        self.inode = 0
        self.partial = b""
        self._open(seek_end=from_end)

    def _open(self, seek_end: bool) -> None:
        try:
            handle = open(self.path, "rb")
        except OSError:
            self.handle, self.inode = None, 0
            return
        if seek_end:
            handle.seek(0, os.SEEK_END)
        self.handle = handle
        self.inode = os.fstat(handle.fileno()).st_ino

    def read(self) -> bytes:
        """New bytes since the last read, across rotation and truncation."""
        if self.handle is None:
            self._open(seek_end=False)
            return self.handle.read() if self.handle is not None else b""
        data = self.handle.read()
        try:
            info = os.stat(self.path)
        except OSError:
            return data  # rotated away and not recreated yet
        if info.st_ino != self.inode:  # rotated: the rest of the old file was read above
            self.handle.close()
            self._open(seek_end=False)
            if self.handle is not None:
                data += self.handle.read()
        elif info.st_size < self.handle.tell():  # truncated: start again from the top
            self.handle.seek(0)
            data += self.handle.read()
        return data

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class LogFollower:
    """Prints new lines of several log files, each prefixed with its process name."""

    def __init__(self, logs: Mapping[str, Path], from_end: bool = True) -> None:
        self.width = max((len(n) for n in logs), default=0)
        self.files = {name: _Followed(path, from_end) for name, path in logs.items()}

    def poll(self, write: Callable[[str], object]) -> None:
        for name, followed in self.files.items():
            data = followed.read()
            if not data:
                continue
            lines = (followed.partial + data).split(b"\n")
            followed.partial = lines.pop()
            for line in lines:
                write(f"{name.ljust(self.width)} | {line.decode(errors='replace')}\n")

    def close(self) -> None:
        for followed in self.files.values():
            followed.close()
