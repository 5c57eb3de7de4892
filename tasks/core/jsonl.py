"""Append-only JSON lines with fsync: the backup manifest and the deploy audit log."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tasks.core.files import make_dirs, open_append


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record as one line (one ``write``), fsync it; new files are 0600 whatever the
    umask and the directory entry is fsynced too. The parent directory is created 0700 if
    missing. A symlink or other non-regular file at ``path`` is refused, never followed
    (:func:`tasks.core.files.open_append`)."""
    make_dirs(path.parent, 0o700)
    line = (json.dumps(dict(record), sort_keys=True, default=str) + "\n").encode("utf-8")
    fd, created = open_append(path, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read(path: Path) -> Iterator[dict[str, Any]]:
    """The records of ``path`` in order; a torn or foreign line is skipped."""
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record
