"""Parsers of helm/kubectl output and the decisions made from it (pure functions).

Formats: ``helm history -o json`` is a list of ``{"revision", "updated", "status", "chart",
"app_version", "description"}``; ``helm status -o json`` is the release object (``name``,
``namespace``, ``version``, ``info.status``, ``chart.metadata``), the same shape in Helm 3 and 4.
Why a helm operation failed is read in :mod:`tasks.deploy.failures`; the fallback diff is in
:mod:`tasks.deploy.diffs`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tasks.core.errors import OpsError

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
# States a release can be rolled back to: it was live at some point.
LIVE = ("deployed", "superseded")


@dataclass(frozen=True)
class Revision:
    revision: int
    status: str
    chart: str
    app_version: str
    updated: str
    description: str

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    def age_seconds(self, now: datetime) -> float | None:
        """Seconds since ``updated`` (None if it cannot be read)."""
        when = parse_time(self.updated)
        return None if when is None else (now - when).total_seconds()


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time as Helm and Kubernetes write it (fractions up to nanoseconds)."""
    match = re.match(
        r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text.strip()
    )
    if not match:
        return None
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    micro = (fraction or "0")[:6].ljust(6, "0")
    try:
        return datetime.fromisoformat(f"{base}.{micro}{zone}").astimezone(timezone.utc)
    except ValueError:
        return None


def describe_age(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass(frozen=True)
class ReleaseStatus:
    name: str
    namespace: str
    revision: int
    status: str
    chart: str
    chart_version: str
    app_version: str
    last_deployed: str
    description: str


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise OpsError(
            f"{what}: cannot parse JSON output ({err.msg} at line {err.lineno})"
        ) from None


def parse_history(text: str) -> list[Revision]:
    """``helm history -o json`` -> revisions sorted oldest first."""
    if not text.strip():
        return []
    data = _load(text, "helm history")
    if not isinstance(data, list):
        raise OpsError("helm history: expected a JSON list of revisions")
    revisions = [
        Revision(
            revision=int(item["revision"]),
            status=str(item.get("status", "")),
            chart=str(item.get("chart", "")),
            app_version=str(item.get("app_version", "")),
            updated=str(item.get("updated", "")),
            description=str(item.get("description", "")),
        )
        for item in data
    ]
    return sorted(revisions, key=lambda r: r.revision)


def parse_status(text: str) -> ReleaseStatus:
    """``helm status -o json`` (or ``helm install --dry-run -o json``) -> :class:`ReleaseStatus`."""
    data = _load(text, "helm status")
    info = data.get("info") or {}
    metadata = (data.get("chart") or {}).get("metadata") or {}
    return ReleaseStatus(
        name=str(data.get("name", "")),
        namespace=str(data.get("namespace", "")),
        revision=int(data.get("version", 0)),
        status=str(info.get("status", "")),
        chart=str(metadata.get("name", "")),
        chart_version=str(metadata.get("version", "")),
        app_version=str(metadata.get("appVersion", "")),
        last_deployed=str(info.get("last_deployed", "")),
        description=str(info.get("description", "")),
    )


def chart_version(chart: str) -> str:
    """``flowlet-0.1.0`` (helm history's chart column) -> ``0.1.0``."""
    match = re.match(r"^.*?-(v?\d+\.\d+\.\d+.*)$", chart)
    return match.group(1) if match else ""


def release_missing(stderr: str) -> bool:
    """Does a failed ``helm history/status/get`` say the release does not exist?"""
    return "release: not found" in stderr.lower()


def stuck_revision(history: Sequence[Revision]) -> Revision | None:
    """The last revision if it is ``pending-*`` (an operation in progress or interrupted)."""
    if history and history[-1].pending:
        return history[-1]
    return None


@dataclass(frozen=True)
class Recovery:
    """What ``deploy.recover`` does: roll back to ``revision``, or uninstall, or nothing."""

    action: str  # "rollback" | "uninstall" | "none"
    revision: int = 0
    stuck: Revision | None = None
    reason: str = ""


def plan_recovery(history: Sequence[Revision]) -> Recovery:
    """Roll back to the last live revision; uninstall a release that was never deployed."""
    stuck = stuck_revision(history)
    if stuck is None:
        last = history[-1].status if history else "no release"
        return Recovery("none", reason=f"not stuck (last revision: {last})")
    live = [r for r in history if r.status in LIVE and r.revision < stuck.revision]
    if live:
        return Recovery("rollback", revision=live[-1].revision, stuck=stuck)
    if stuck.status == "pending-install":
        return Recovery("uninstall", stuck=stuck, reason="never deployed")
    raise OpsError(
        f"release is stuck in {stuck.status} (revision {stuck.revision}) and has no deployed "
        "revision to roll back to; inspect it with inv deploy.history"
    )


def parse_plugins(text: str) -> list[str]:
    """``helm plugin list`` (a table with a NAME header) -> plugin names."""
    names = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] != "NAME":
            names.append(words[0])
    return names


def parse_client_version(text: str) -> str:
    """``kubectl version --client -o json`` -> ``v1.33.9``."""
    data = _load(text, "kubectl version")
    return str((data.get("clientVersion") or {}).get("gitVersion", "unknown"))


def failing_pods(text: str) -> list[str]:
    """``kubectl get pods -o json`` -> names of pods that are not Ready (or not Running)."""
    if not text.strip():
        return []
    data = _load(text, "kubectl get pods")
    names = []
    for pod in data.get("items") or []:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if status.get("phase") != "Running" or not ready:
            names.append(str((pod.get("metadata") or {}).get("name", "")))
    return [n for n in names if n]


def history_table(history: Sequence[Revision]) -> str:
    rows = [("REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION")]
    rows += [
        (str(r.revision), r.updated[:19], r.status, r.chart, r.app_version, r.description)
        for r in history
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)).rstrip()
        for row in rows
    )
