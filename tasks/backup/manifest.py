"""The JSON-lines manifest beside the backups (:mod:`tasks.core.jsonl`: 0600, fsync).

Events: ``backup`` (one per backup set: file, sizes, sha256, ``locations`` -- ``local`` path
and/or destination URLs by name, or ``remote`` for ``--keep-remote`` -- and the ``globals``
companion), ``verify`` (``where``: ``local`` or a destination name), ``failed`` (a run that
ended in an error), ``pruned``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core import jsonl


def append(path: Path, record: Mapping[str, Any]) -> None:
    jsonl.append(path, record)


def read(path: Path) -> list[dict[str, Any]]:
    return list(jsonl.read(path))


@dataclass
class FileState:
    """What the manifest says about one file name."""

    record: dict[str, Any] = field(default_factory=dict)  # its backup line
    verified: dict[str, bool] = field(default_factory=dict)  # where -> last verify result

    def confirmed_at(self, where: str) -> bool:
        """Known good at ``where``: the last verification there passed, or (none yet) the
        backup line records a confirmed copy there."""
        if where in self.verified:
            return self.verified[where]
        locations = self.record.get("locations") or {}
        return where in locations if where != "local" else "local" in locations


def by_file(records: list[dict[str, Any]]) -> dict[str, FileState]:
    """The backup line and verification state per file name (globals companions included)."""
    result: dict[str, FileState] = {}
    for record in records:
        event = record.get("event", "backup")
        if event == "backup":
            result.setdefault(str(record.get("file", "")), FileState()).record = record
            companion = record.get("globals")
            if isinstance(companion, dict):
                result.setdefault(str(companion.get("file", "")), FileState()).record = {
                    **companion,
                    "event": "backup",
                }
        elif event == "verify":
            state = result.setdefault(str(record.get("file", "")), FileState())
            state.verified[str(record.get("where", "local"))] = bool(record.get("ok"))
    return result


def recorded_sha256s(records: list[dict[str, Any]]) -> dict[str, str]:
    """File name -> the sha256 its ``backup`` line recorded when it was written (the dump and
    its globals companion): what an object fetched from a destination must hash to."""
    result: dict[str, str] = {}
    for record in records:
        if record.get("event", "backup") != "backup":
            continue
        for entry in (record, record.get("globals")):
            if isinstance(entry, dict) and entry.get("file") and entry.get("sha256"):
                result[str(entry["file"])] = str(entry["sha256"])
    return result


def last_events(records: list[dict[str, Any]], environment: str, database: str) -> dict[str, Any]:
    """The last ``backup`` and ``failed`` lines of one target (keys ``backup``, ``failed``)."""
    found: dict[str, Any] = {}
    for record in records:
        if record.get("environment") == environment and record.get("database") == database:
            if record.get("event") in ("backup", "failed"):
                found[str(record["event"])] = record
    return found
