"""The JSON-lines manifest beside the backups: one line per backup (and per verification)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line and fsync it (the file is created 0600)."""
    line = (json.dumps(dict(record), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """Every record (unparseable lines, e.g. a torn last line, are skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def by_file(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest backup record and verification state per file name."""
    result: dict[str, dict[str, Any]] = {}
    for record in records:
        name = str(record.get("file", ""))
        entry = result.setdefault(name, {})
        if record.get("event", "backup") == "backup":
            entry.update(record)
        elif record.get("event") == "verify":
            entry["verified"] = record.get("ok")
            entry["verified_at"] = record.get("at")
    return result
