"""``monitoring.test-alert``: a clearly labelled test alert posted to the installed Alertmanager
(through a kubectl port-forward), and the receivers Alertmanager routed it to.

Pure parts: the alert, and the parser of ``GET /api/v2/alerts/groups`` (Alertmanager's own
answer, so the report is what the installed routing did, not what we think it does), and the
verdict; :func:`execute` runs the port-forward and the two HTTP calls.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from invoke import Context

from tasks.core.errors import CommandFailed, OpsError
from tasks.core.runner import is_dry, render, require_tools, spawn
from tasks.core.steps import Progress
from tasks.kube import KUBE_TOOLS, kubectl
from tasks.monitoring.plan import KPS, Target

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


def execute(
    c: Context, target: Target, *, severity: str, receiver: str | None, port: int | None
) -> None:
    """``inv monitoring.test-alert`` (documented on the task): the port-forward (through the
    runner's spawn: its own process group, dies with us) and two HTTP calls."""
    local = target.settings.local_ports.alertmanager if port is None else port
    require_tools({"kubectl": KUBE_TOOLS["kubectl"]})
    service = f"svc/{target.release(KPS)}-alertmanager"
    argv = kubectl(target.context, "--namespace", target.namespace, "port-forward", service)
    argv.append(f"{local}:{REMOTE_PORT}")
    alert = test_alert(severity, target.environment.name, datetime.now(timezone.utc))
    base = f"http://127.0.0.1:{local}"
    progress = Progress()
    progress(f"port-forward {target.namespace}/{service} to 127.0.0.1:{local}")
    progress.note(render(argv))
    progress(f"POST {base}/api/v2/alerts")
    progress.note(json.dumps(alert[0]["labels"]))
    if is_dry(c):
        return
    forward = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = forward.stdout.readline() if forward.stdout else ""
        if "Forwarding from" not in line:
            forward.kill()
            _, err = forward.communicate()
            raise CommandFailed(argv, forward.returncode or 1, err, what="kubectl port-forward")

        def call(path: str, body: bytes | None = None) -> str:
            request = urllib.request.Request(  # 127.0.0.1: our port-forward
                base + path, data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # nosec B310
                    return str(answer.read().decode())
            except OSError as exc:
                raise OpsError(f"Alertmanager at {base}{path}: {exc}") from None

        call("/api/v2/alerts", json.dumps(alert).encode())
        query = "/api/v2/alerts/groups?filter=" + urllib.parse.quote(f'alertname="{ALERTNAME}"')
        deadline = time.monotonic() + 15
        receivers = routed_receivers(call(query), severity)
        while receivers is None and time.monotonic() < deadline:
            time.sleep(0.2)  # Alertmanager groups the new alert asynchronously
            receivers = routed_receivers(call(query), severity)
        print(verdict(receivers or [], receiver, severity), flush=True)
    finally:
        if forward.poll() is None:
            forward.terminate()
            forward.wait()
