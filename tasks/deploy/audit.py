"""The deploy audit log: one JSON object per line, appended locally, never rewritten."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class AuditRecord:
    action: str  # deploy | rollback | recover
    env: str
    namespace: str
    context: str
    release: str
    revision: int | None
    chart_version: str
    image_tag: str
    git_sha: str
    user: str
    result: str  # succeeded | failed | interrupted
    duration_seconds: float
    started_at: str
    helm_version: str
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def append_audit(path: Path, record: AuditRecord) -> None:
    """Append ``record`` as one line (the directory is created, the file is 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(record.to_json() + "\n")
