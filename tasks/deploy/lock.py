"""The deploy lock: one ``coordination.k8s.io/v1`` Lease per release, in its namespace.

Taking it is ``kubectl create`` of the Lease (atomic: "AlreadyExists" means someone holds it).
The Lease says who holds it (``holderIdentity`` ``user@host/pid``; annotations: operation, git
SHA, command) and since when; the holder renews it (``renewTime``) every third of
``deploy.lock_stale_after`` while the operation runs, and deletes it on every exit path, with
a ``resourceVersion`` precondition so that it never deletes a lock someone else took over.
A Lease not renewed for ``deploy.lock_stale_after`` is stale (its holder was killed, or lost
its machine): the next operation takes it over with ``kubectl replace`` at the
``resourceVersion`` it read (a 409 means another one was faster). ``inv deploy.unlock``
removes a lock by hand. Under ``--dry`` the commands are printed, not run.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from invoke import Context

from tasks.core.errors import OpsError, Refused, last_line
from tasks.core.runner import capture, is_dry, run
from tasks.core.steps import Progress
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
        "labels": {"app.kubernetes.io/managed-by": "flowlet-ops", "app.kubernetes.io/instance": t.release},
        "annotations": {
            ANNOTATION + "operation": holder.operation,
            ANNOTATION + "git-sha": holder.git_sha,
            ANNOTATION + "command": holder.command[:500],
        },
    }  # fmt: skip
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
    return kubectl(t.context, "--namespace", t.namespace, "create", "--filename", "-", "--output", "json")


def get_argv(t: Target) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "get", "lease", lease_name(t.release), "--output", "json")


def replace_argv(t: Target) -> list[str]:
    return kubectl(t.context, "--namespace", t.namespace, "replace", "--filename", "-", "--output", "json")


def delete_argv(t: Target) -> list[str]:
    """Delete with a precondition (the DeleteOptions body on stdin): only the version we hold."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{t.namespace}/leases/{lease_name(t.release)}"
    return kubectl(t.context, "delete", "--raw", path, "--filename", "-")


def delete_body(resource_version: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "DeleteOptions",
                       "preconditions": {"resourceVersion": resource_version}})  # fmt: skip


def _exists(stderr: str) -> bool:
    return "AlreadyExists" in stderr or "already exists" in stderr


def _conflict(stderr: str) -> bool:
    return "(Conflict)" in stderr or "the object has been modified" in stderr or "Precondition failed" in stderr


def _not_found(stderr: str) -> bool:
    return "(NotFound)" in stderr or "not found" in stderr.lower()


class DeployLock:
    """The lock of one release, held by this process for one operation."""

    def __init__(self, c: Context, target: Target, holder: Holder, *, stale_after: int, env: str) -> None:
        self.c, self.target, self.holder, self.stale_after, self.env = c, target, holder, stale_after, env
        self.resource_version = ""
        self.acquired = utcnow()
        self.held = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def manifest(self, *, resource_version: str = "") -> str:
        return lease_manifest(self.target, self.holder, duration=self.stale_after,
                              acquired=self.acquired, renewed=utcnow(),
                              resource_version=resource_version)  # fmt: skip

    def acquire(self) -> None:
        """Take the lock (or a stale one over); refuse naming the holder when it is live."""
        try:
            created = run(self.c, create_argv(self.target), stdin=self.manifest(), hide=True, warn=True)
        except KeyboardInterrupt:  # kubectl may have created it before it stopped
            self._remove_if_ours()
            raise
        if is_dry(self.c):
            Progress.note("(dry run: the lock is not taken)")
            return
        if created.exited == 0:
            return self._took(created.stdout, "taken")
        if not _exists(created.stderr):
            raise OpsError(f"taking the deploy lock failed (exit {created.exited}): {last_line(created.stderr)}",
                           code=created.exited)  # fmt: skip
        state = self.read()
        if state is None:  # released between our create and our get: try once more
            created = run(self.c, create_argv(self.target), stdin=self.manifest(), hide=True, warn=True)
            if created.exited == 0:
                return self._took(created.stdout, "taken")
            state = self.read()
        now = utcnow()
        if state is not None and state.stale(now):
            replaced = run(self.c, replace_argv(self.target), hide=True, warn=True,
                           stdin=self.manifest(resource_version=state.resource_version))  # fmt: skip
            if replaced.exited == 0:
                return self._took(replaced.stdout, f"taken over from a stale lock ({state.describe(now)})")
            state = self.read() if _conflict(replaced.stderr) else state
        raise self.refusal(state, now)

    def refusal(self, state: LeaseState | None, now: datetime) -> Refused:
        where = f"{self.target.release} in {self.target.namespace}"
        if state is None:
            return Refused(f"{self.holder.operation}: the deploy lock of {where} changed while we read it; try again")
        return Refused(
            f"{self.holder.operation}: the deploy lock of {where} is held by {state.describe(now)}; "
            f"wait for it to finish; if that process is gone it goes stale at {state.stale_at()} "
            f"(deploy.lock_stale_after), or remove it with inv deploy.unlock --env={self.env}"
        )

    def read(self) -> LeaseState | None:
        got = run(self.c, get_argv(self.target), hide=True, warn=True)
        if got.exited != 0:
            if _not_found(got.stderr):
                return None
            raise OpsError(f"reading the deploy lock failed (exit {got.exited}): {last_line(got.stderr)}",
                           code=got.exited)  # fmt: skip
        return parse_lease(got.stdout)

    def _remove_if_ours(self) -> None:
        try:
            state = self.read()
            if state is not None and state.identity == self.holder.identity:
                run(self.c, delete_argv(self.target), stdin=delete_body(state.resource_version), hide=True, warn=True)
        except (OpsError, KeyboardInterrupt):
            pass  # it goes stale on its own

    def _took(self, text: str, how: str) -> None:
        self.resource_version = parse_lease(text).resource_version
        self.held = True
        Progress.note(f"{how}: {self.holder.identity} ({self.holder.operation}), renewed every "
                      f"{max(self.stale_after // 3, 1)}s, stale after {self.stale_after}s")  # fmt: skip
        self._renewer = threading.Thread(target=self._renew_loop, name="deploy-lock-renewer", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        interval = max(self.stale_after / 3, 1.0)
        while not self._stop.wait(interval):
            renewed = capture(replace_argv(self.target), input=self.manifest(resource_version=self.resource_version),
                              timeout=max(interval, 10.0), what="renewing the deploy lock")  # fmt: skip
            if renewed.ok:
                self.resource_version = parse_lease(renewed.stdout).resource_version
                continue
            if self._stop.is_set():
                return
            Progress.note(f"warning: the deploy lock could not be renewed: {last_line(renewed.stderr)}")
            if _conflict(renewed.stderr) or _not_found(renewed.stderr):
                return  # someone took it over or removed it: nothing left to renew

    def release(self) -> None:
        """Delete the Lease we hold (only that version); never raises."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        if is_dry(self.c):
            run(self.c, delete_argv(self.target), stdin=delete_body("<resourceVersion>"), hide=True, warn=True)
            return
        if not self.held:
            Progress.note("not held: nothing to release")
            return
        self.held = False
        try:
            deleted = run(self.c, delete_argv(self.target), stdin=delete_body(self.resource_version),
                          hide=True, warn=True)  # fmt: skip
        except OpsError as err:
            deleted = None
            reason = err.message
        if deleted is not None and deleted.exited == 0:
            Progress.note("released")
            return
        stderr = deleted.stderr if deleted is not None else ""
        if deleted is not None and _conflict(stderr):
            Progress.note("someone else holds it now (it was taken over): left alone")
        elif deleted is not None and _not_found(stderr):
            Progress.note("already removed (inv deploy.unlock?)")
        else:
            reason = last_line(stderr) if deleted is not None else reason
            Progress.note(f"could not release it ({reason}): it goes stale in {self.stale_after}s, "
                          f"or remove it with inv deploy.unlock --env={self.env}")  # fmt: skip


def unlock(c: Context, target: Target, *, env: str, yes: bool, force: bool) -> None:
    """``inv deploy.unlock``: remove the lock after confirmation; a live one needs ``--force``
    unless its holder ran on this machine and is gone."""
    from tasks.core.prompt import confirm

    holder = this_process("deploy.unlock", "")
    lock = DeployLock(c, target, holder, stale_after=0, env=env)
    where = f"{target.release} in {target.namespace}"
    if is_dry(c):
        run(c, get_argv(target), hide=True, warn=True)
        run(c, delete_argv(target), stdin=delete_body("<resourceVersion>"), hide=True, warn=True)
        Progress.note(f"(dry run: the lock of {where} is neither read nor removed)")
        return
    state = lock.read()
    if state is None:
        print(f"{where} is not locked")
        return
    now = utcnow()
    status = "stale" if state.stale(now) else "holder gone" if state.gone_here() else "live"
    print(f"deploy lock of {where}: held by {state.describe(now)} ({status})")
    if status == "live" and not force:
        raise Refused(
            f"deploy.unlock: the lock of {where} is live (renewed {describe_age(state.idle(now))} "
            f"ago by {state.user} pid {state.pid or '?'}); if that process is gone (kill -9, a lost "
            f"machine) wait until {state.stale_at()} or pass --force"
        )
    confirm(f"Remove the deploy lock of {where}?", yes=yes, dry=False)
    deleted = run(c, delete_argv(target), stdin=delete_body(state.resource_version), hide=True, warn=True)
    if deleted.exited != 0:
        if _conflict(deleted.stderr):
            raise Refused(f"deploy.unlock: the lock of {where} changed meanwhile (renewed or taken over); look again")
        if _not_found(deleted.stderr):
            print(f"{where} is not locked (removed meanwhile)")
            return
        raise OpsError(f"deploy.unlock: kubectl delete failed (exit {deleted.exited}): {last_line(deleted.stderr)}",
                       code=deleted.exited)  # fmt: skip
    print(f"deploy lock of {where} removed")
