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


_ROLLBACK_TO = re.compile(r"^Rollback to (\d+)\b")
_FAILED = re.compile(r"^(Upgrade|Install)\b.*\bfailed\b", re.IGNORECASE)


def undone_revisions(history: Sequence[Revision]) -> set[int]:
    """Revisions a later rollback undid: "Rollback to N" at revision K undoes N+1 .. K-1."""
    undone: set[int] = set()
    for r in history:
        match = _ROLLBACK_TO.match(r.description)
        if match:
            undone.update(range(int(match.group(1)) + 1, r.revision))
    return undone


def last_good_revision(history: Sequence[Revision]) -> tuple[Revision | None, list[str]]:
    """The default target of ``deploy.rollback``, and why each newer revision was skipped.

    The newest revision before the current one that was live (``deployed``/``superseded``) and
    was neither a failed upgrade ("Upgrade ... failed") nor undone by a later rollback. Helm's
    own default, the revision right before the current one, is the broken version after a
    failed upgrade that Helm rolled back (``1 superseded, 2 failed, 3 "Rollback to 1"``).
    """
    undone = undone_revisions(history)
    skipped = []
    for r in reversed(history[:-1]):
        if _FAILED.match(r.description) or r.status == "failed":
            skipped.append(f"revision {r.revision}: a failed upgrade ({r.status})")
        elif r.revision in undone:
            skipped.append(f"revision {r.revision}: undone by a later rollback")
        elif r.status not in LIVE:
            skipped.append(f"revision {r.revision}: {r.status}")
        else:
            return r, skipped
    return None, skipped


def manifest_images(manifest: str) -> list[str]:
    """The container images a rendered manifest runs (``image:`` values, in order, unique)."""
    images: list[str] = []
    for match in re.finditer(r"^\s*-?\s*image:\s*[\"']?([^\"'\s]+)", manifest, re.MULTILINE):
        if match.group(1) not in images:
            images.append(match.group(1))
    return images


def image_label(images: Sequence[str]) -> str:
    """``image tag 1.1.0`` when every image has that tag, else ``images backend:1.1.0, ...``
    (a digest shortened to 12 hex digits)."""
    refs = []
    for image in images:
        name = image.rsplit("/", 1)[-1]
        if "@" in name:
            base, digest = name.split("@", 1)
            refs.append((base, "@" + digest.split(":", 1)[-1][:12]))
        elif ":" in name:
            base, tag = name.rsplit(":", 1)
            refs.append((base, ":" + tag))
        else:
            refs.append((name, ":latest"))
    if not refs:
        return "image unknown"
    if len({ref for _, ref in refs}) == 1 and refs[0][1].startswith(":"):
        return f"image tag {refs[0][1][1:]}"
    return "images " + ", ".join(base + ref for base, ref in refs)


def describe_revision(r: Revision, images: Sequence[str] | None, now: datetime) -> str:
    """``revision 1 (image tag 0.1.0, chart flowlet-0.1.0, git 1a2b3c4d5e6f, 5m03s old)``."""
    parts = [image_label(images)] if images is not None else []
    parts.append(f"chart {r.chart or 'unknown'}")
    git = re.search(r"\bgit=([0-9a-f]{7,40}(?:-dirty)?)", r.description)
    if git:
        sha = git.group(1)
        parts.append("git " + sha[:12] + ("-dirty" if sha.endswith("-dirty") else ""))
    age = r.age_seconds(now)
    parts.append(f"{describe_age(age)} old" if age is not None else "age unknown")
    return f"revision {r.revision} ({', '.join(parts)})"


def pending_wait(stuck: Revision, now: datetime, timeout_seconds: int) -> float:
    """How long a revision left pending by a dead lock holder may still change on its own: its
    helm (SIGTERMed when the holder died) rolls back within the deploy timeout of ``updated``.
    0 when that has passed, or when ``updated`` cannot be read (wait the whole timeout)."""
    age = stuck.age_seconds(now)
    return float(timeout_seconds) if age is None else max(0.0, timeout_seconds - age)


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
