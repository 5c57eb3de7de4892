"""The files of ``.flowlet/run``: ``NAME.json`` (written by dev.start: the keeper's identity,
the port, the run), ``NAME.state.json`` (written by the keeper: the process's identity, its
state, restarts and how it last ended) and ``NAME.next.json`` (dev.restart's new spec). All
written atomically, mode 0600."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.core import files
from tasks.dev.procs import Identity


@dataclass(frozen=True)
class Record:
    """What dev.start wrote for one process: its keeper (the group leader) and its port."""

    name: str
    keeper: Identity
    port: int
    started: float
    run_id: str

    @property
    def pid(self) -> int:
        return self.keeper.pid


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically replace ``path`` (0600) with ``data`` as JSON."""
    files.make_dirs(path.parent, 0o700)
    files.write_atomic(path, json.dumps(dict(data)) + "\n", 0o600)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.json"


def state_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.state.json"


def write_record(run_dir: Path, record: Record) -> None:
    write_json(record_path(run_dir, record.name), asdict(record))


def parse_record(data: Mapping[str, Any]) -> Record:
    keeper = Identity.from_json(data.get("keeper"))
    if keeper is None:
        raise ValueError("no keeper")
    return Record(
        name=str(data["name"]),
        keeper=keeper,
        port=int(data["port"]),
        started=float(data["started"]),
        run_id=str(data.get("run_id", "")),
    )


def read_records(run_dir: Path) -> list[Record]:
    """Records under ``run_dir``; unreadable ones (old versions, torn files) are removed."""
    records = []
    paths = sorted(run_dir.glob("*.json")) if run_dir.is_dir() else []
    for path in paths:
        if path.name.endswith(".state.json") or path.name.endswith(".next.json"):
            continue
        data = read_json(path)
        try:
            records.append(parse_record(data or {}))
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
    return records


def read_state(run_dir: Path, name: str) -> dict[str, Any]:
    return read_json(state_path(run_dir, name)) or {}


def child_of(state: Mapping[str, Any]) -> Identity | None:
    return Identity.from_json(state.get("child"))


def remove_record(run_dir: Path, name: str) -> None:
    for path in (record_path(run_dir, name), state_path(run_dir, name)):
        path.unlink(missing_ok=True)
    (run_dir / f"{name}.next.json").unlink(missing_ok=True)
