"""The deploy lock's Lease, as data: its name and manifest, who holds it, whether it is stale,
and the kubectl commands that take, read, renew and delete it (pure functions).

See :mod:`tasks.deploy.lock` for how they are used.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tasks.core.errors import OpsError
from tasks.deploy.commands import in_namespace
from tasks.deploy.helmout import describe_age, parse_time
from tasks.deploy.plan import Target
from tasks.kube import kubectl

ANNOTATION = "flowlet.io/"


def lease_name(release: str) -> str:
    return f"flowlet-ops-lock-{release}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def micro_time(when: datetime) -> str:
    """Kubernetes' MicroTime spelling: ``2026-12-01T07:50:00.123456Z``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Holder:
    """Who takes the lock: this process."""

    user: str  # user@host
    pid: int
    operation: str
    git_sha: str
    command: str

    @property
    def identity(self) -> str:
        return f"{self.user}/{self.pid}"


def this_process(operation: str, git_sha: str) -> Holder:
    return Holder(
        user=f"{getpass.getuser()}@{socket.gethostname()}",
        pid=os.getpid(),
        operation=operation,
        git_sha=git_sha,
        command=" ".join(["inv", *sys.argv[1:]]) if sys.argv else "inv",
    )


def lease_manifest(
    t: Target,
    holder: Holder,
    *,
    duration: int,
    acquired: datetime,
    renewed: datetime,
    resource_version: str = "",
) -> str:
    """The Lease as JSON (``resource_version``: replace exactly that version, or fail)."""
    metadata: dict[str, Any] = {
        "name": lease_name(t.release),
        "namespace": t.namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "flowlet-ops",
            "app.kubernetes.io/instance": t.release,
        },
        "annotations": {
            ANNOTATION + "operation": holder.operation,
            ANNOTATION + "git-sha": holder.git_sha,
            ANNOTATION + "command": holder.command[:500],
        },
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return json.dumps(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": holder.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": micro_time(acquired),
                "renewTime": micro_time(renewed),
            },
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class LeaseState:
    """A Lease as read from the cluster."""

    identity: str
    operation: str
    git_sha: str
    command: str
    acquired: datetime | None
    renewed: datetime | None
    duration: int
    resource_version: str

    @property
    def user(self) -> str:
        return self.identity.rpartition("/")[0] or self.identity

    @property
    def pid(self) -> int:
        tail = self.identity.rpartition("/")[2]
        return int(tail) if tail.isdigit() else 0

    def idle(self, now: datetime) -> float:
        """Seconds since the last renewal (or the start)."""
        last = self.renewed or self.acquired
        return (now - last).total_seconds() if last else float("inf")

    def stale(self, now: datetime) -> bool:
        return self.idle(now) > self.duration

    def gone_here(self) -> bool:
        """The holder ran on this machine and its process is gone (``kill -9``)."""
        host = self.user.rpartition("@")[2]
        if host != socket.gethostname() or not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self, now: datetime) -> str:
        since = micro_time(self.acquired)[:19] + "Z" if self.acquired else "?"
        what = self.command or self.operation or "?"
        dirty = "-dirty" if self.git_sha.endswith("-dirty") else ""
        git = f", git {self.git_sha[:12]}{dirty}" if self.git_sha else ""
        return (
            f"{self.user} pid {self.pid or '?'} ({what}{git}) since {since}, "
            f"renewed {describe_age(self.idle(now))} ago"
        )

    def stale_at(self) -> str:
        last = self.renewed or self.acquired
        if last is None:
            return "?"
        return micro_time(last + timedelta(seconds=self.duration))[:19] + "Z"


def parse_lease(text: str) -> LeaseState:
    try:
        obj = json.loads(text)
    except ValueError:
        raise OpsError("kubectl get lease: cannot parse its JSON output") from None
    meta = obj.get("metadata") or {}
    notes = meta.get("annotations") or {}
    spec = obj.get("spec") or {}
    return LeaseState(
        identity=str(spec.get("holderIdentity") or "?"),
        operation=str(notes.get(ANNOTATION + "operation", "")),
        git_sha=str(notes.get(ANNOTATION + "git-sha", "")),
        command=str(notes.get(ANNOTATION + "command", "")),
        acquired=parse_time(str(spec.get("acquireTime") or "")),
        renewed=parse_time(str(spec.get("renewTime") or "")),
        duration=int(spec.get("leaseDurationSeconds") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def create_argv(t: Target) -> list[str]:
    return in_namespace(t, "create", "--filename", "-", "--output", "json")


def get_argv(t: Target) -> list[str]:
    return in_namespace(
        t,
        "get",
        "lease",
        lease_name(t.release),
        "--output",
        "json",
    )


def replace_argv(t: Target) -> list[str]:
    return in_namespace(t, "replace", "--filename", "-", "--output", "json")


def delete_argv(t: Target) -> list[str]:
    """Delete with a precondition (the DeleteOptions body on stdin): only the version we hold."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{t.namespace}/leases/{lease_name(t.release)}"
    return kubectl(t.context, "delete", "--raw", path, "--filename", "-")


def delete_body(resource_version: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": resource_version},
        }
    )


def exists(stderr: str) -> bool:
    return "AlreadyExists" in stderr or "already exists" in stderr


def conflict(stderr: str) -> bool:
    return (
        "(Conflict)" in stderr
        or "the object has been modified" in stderr
        or "Precondition failed" in stderr
    )


def not_found(stderr: str) -> bool:
    return "(NotFound)" in stderr or "not found" in stderr.lower()
