"""Process logs under ``.flowlet/logs``: the last lines, and following several at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of ``path`` (reads at most the last 64 KiB)."""
    if count <= 0 or not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        data = handle.read()
    return data.decode(errors="replace").splitlines()[-count:]


class LogFollower:
    """Prints new lines of several log files, each prefixed with its process name."""

    def __init__(self, logs: Mapping[str, Path], from_end: bool = True) -> None:
        self.logs = dict(logs)
        self.width = max((len(n) for n in self.logs), default=0)
        self.offsets = {
            name: (path.stat().st_size if from_end and path.exists() else 0)
            for name, path in self.logs.items()
        }
        self.partial = {name: b"" for name in self.logs}

    def poll(self, write: Any) -> None:
        for name, path in self.logs.items():
            try:
                with open(path, "rb") as handle:
                    handle.seek(self.offsets[name])
                    data = handle.read()
            except FileNotFoundError:
                continue
            if not data:
                continue
            self.offsets[name] += len(data)
            lines = (self.partial[name] + data).split(b"\n")
            self.partial[name] = lines.pop()
            for line in lines:
                write(f"{name.ljust(self.width)} | {line.decode(errors='replace')}\n")
