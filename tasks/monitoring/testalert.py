"""``monitoring.test-alert``: a clearly labelled test alert posted to the installed Alertmanager
(through a kubectl port-forward), and the receivers Alertmanager routed it to.

Pure parts: the alert, and the parser of ``GET /api/v2/alerts/groups`` (Alertmanager's own
answer, so the report is what the installed routing did, not what we think it does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from tasks.core.errors import OpsError

ALERTNAME = "FlowletTestAlert"
REMOTE_PORT = 9093
NULL = "null"


def test_alert(severity: str, environment: str, now: datetime) -> list[dict[str, Any]]:
    """The alert (ends by itself after 5 minutes)."""
    return [
        {
            "labels": {
                "alertname": ALERTNAME,
                "severity": severity,
                "environment": environment,
                "flowlet_test": "true",
            },
            "annotations": {
                "summary": f"TEST alert from inv monitoring.test-alert ({severity}): not a "
                "real problem, no action needed",
            },
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
    ]


def routed_receivers(groups_json: str, severity: str) -> list[str] | None:
    """Receivers of the groups holding our alert (None: Alertmanager does not show it yet)."""
    try:
        groups = json.loads(groups_json)
    except ValueError:
        raise OpsError("Alertmanager answered /api/v2/alerts/groups with no JSON") from None
    found = []
    for group in groups if isinstance(groups, list) else []:
        for alert in group.get("alerts") or []:
            labels = alert.get("labels") or {}
            if labels.get("alertname") == ALERTNAME and labels.get("severity") == severity:
                found.append(str((group.get("receiver") or {}).get("name", "?")))
    return sorted(set(found)) if found else None


def verdict(receivers: Sequence[str], expected: str | None, severity: str) -> str:
    """The report line, or OpsError when the alert reached nobody (or not ``expected``)."""
    people = [r for r in receivers if r != NULL]
    if not people:
        raise OpsError(
            f"the {severity} test alert was routed to no receiver (only {NULL!r}); "
            f"configure monitoring.alerting.{severity} and run inv monitoring.setup"
        )
    if expected is not None and expected not in people:
        raise OpsError(
            f"the {severity} test alert was routed to {', '.join(people)}, not {expected}"
        )
    return f"{ALERTNAME} ({severity}) routed to: {', '.join(people)}"
