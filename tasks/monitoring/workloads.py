"""Parse ``kubectl get deploy,statefulset,daemonset -o json`` (+ pods) into a status table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from tasks.core.errors import OpsError

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class Workload:
    namespace: str
    kind: str
    name: str
    ready: int
    desired: int
    restarts: int
    age_seconds: int

    @property
    def ok(self) -> bool:
        return self.ready >= self.desired

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "age": format_age(self.age_seconds), "ok": self.ok}


def load_list(text: str, what: str) -> list[Mapping[str, Any]]:
    """The ``items`` of a ``kubectl get -o json`` List."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OpsError(f"{what}: cannot parse kubectl's JSON output ({exc.msg})") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise OpsError(f"{what}: expected a kubectl List with 'items'")
    return items


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def format_age(seconds: int) -> str:
    """Age as kubectl prints it (apimachinery's HumanDuration): ``90s``, ``5m30s``, ``42m``,
    ``3h5m``, ``20h``, ``6d19h``, ``30d``, ``2y5d``."""
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    minutes, hours = seconds // 60, seconds // 3600
    days, years = hours // 24, hours // (24 * 365)

    def pair(big: int, big_unit: str, small: int, small_unit: str) -> str:
        return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"

    if minutes < 10:
        return pair(minutes, "m", seconds % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return pair(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return pair(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return pair(years, "y", days % 365, "d")
    return f"{years}y"


def _owner(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (kind, name) of the workload that owns ``pod``: ReplicaSets map to their Deployment."""
    meta = pod.get("metadata", {})
    for ref in meta.get("ownerReferences", []):
        if not ref.get("controller"):
            continue
        kind, name = ref.get("kind", ""), ref.get("name", "")
        if kind == "ReplicaSet":
            template_hash = meta.get("labels", {}).get("pod-template-hash")
            if template_hash and name.endswith(f"-{template_hash}"):
                return "Deployment", name[: -len(template_hash) - 1]
            return None
        if kind in ("StatefulSet", "DaemonSet"):
            return kind, name
    return None


def restarts_by_workload(pods: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """Sum of container (and init container) restarts per owning workload."""
    totals: dict[tuple[str, str], int] = {}
    for pod in pods:
        owner = _owner(pod)
        if owner is None:
            continue
        status = pod.get("status", {})
        statuses = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
        totals[owner] = totals.get(owner, 0) + sum(int(s.get("restartCount", 0)) for s in statuses)
    return totals


def _counts(item: Mapping[str, Any]) -> tuple[int, int]:
    spec, status = item.get("spec", {}), item.get("status", {})
    if item.get("kind") == "DaemonSet":
        return int(status.get("numberReady", 0)), int(status.get("desiredNumberScheduled", 0))
    desired = spec.get("replicas")
    return int(status.get("readyReplicas", 0)), 1 if desired is None else int(desired)


def parse_workloads(
    workloads: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
) -> list[Workload]:
    """Workloads of one namespace with ready/desired, restarts and age, sorted by kind and name."""
    restarts = restarts_by_workload(pods)
    rows: list[Workload] = []
    for item in workloads:
        kind = item.get("kind", "")
        if kind not in WORKLOAD_KINDS:
            continue
        meta = item.get("metadata", {})
        name = meta.get("name", "")
        created = _timestamp(meta.get("creationTimestamp"))
        age = max(0, int((now - created).total_seconds())) if created else 0
        ready, desired = _counts(item)
        rows.append(
            Workload(
                namespace=meta.get("namespace", ""),
                kind=kind,
                name=name,
                ready=ready,
                desired=desired,
                restarts=restarts.get((kind, name), 0),
                age_seconds=age,
            )
        )
    order = {kind: i for i, kind in enumerate(WORKLOAD_KINDS)}
    return sorted(rows, key=lambda w: (w.namespace, order[w.kind], w.name))


def render_table(rows: Sequence[Workload], empty: Sequence[str]) -> str:
    """A fixed-width table (kubectl style) plus one line per namespace without workloads."""
    header = ("NAMESPACE", "KIND", "NAME", "READY", "RESTARTS", "AGE", "STATUS")
    body = [
        (
            w.namespace,
            w.kind,
            w.name,
            f"{w.ready}/{w.desired}",
            str(w.restarts),
            format_age(w.age_seconds),
            "ok" if w.ok else "NOT READY",
        )
        for w in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in body]
    title = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(header)).rstrip()
    lines = [title, *lines] if body else []
    lines += [f"{ns}: no workloads found (not installed?)" for ns in empty]
    return "\n".join(lines)


def summary(rows: Sequence[Workload], empty: Sequence[str]) -> dict[str, Any]:
    """The ``--json`` document: every workload, the empty namespaces and an overall ``ok``."""
    return {
        "ok": all(w.ok for w in rows) and not empty,
        "workloads": [w.as_dict() for w in rows],
        "empty_namespaces": list(empty),
    }
