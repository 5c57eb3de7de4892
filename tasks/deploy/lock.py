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

import threading
from datetime import datetime

from invoke import Context

from tasks.core.errors import OpsError, Refused, last_line
from tasks.core.runner import capture, is_dry, run
from tasks.core.steps import Progress
from tasks.deploy import lease
from tasks.deploy.helmout import describe_age
from tasks.deploy.plan import Target


class DeployLock:
    """The lock of one release, held by this process for one operation."""

    def __init__(
        self, c: Context, target: Target, holder: lease.Holder, *, stale_after: int, env: str
    ) -> None:
        self.c, self.target, self.holder, self.stale_after, self.env = (
            c,
            target,
            holder,
            stale_after,
            env,
        )
        self.resource_version = ""
        self.acquired = lease.utcnow()
        self.held = False
        # the stale lock we took over: its holder died mid-operation, and may have left the
        # release pending (see Operation.release_state)
        self.taken_over: lease.LeaseState | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def manifest(self, *, resource_version: str = "") -> str:
        return lease.lease_manifest(
            self.target,
            self.holder,
            duration=self.stale_after,
            acquired=self.acquired,
            renewed=lease.utcnow(),
            resource_version=resource_version,
        )

    def acquire(self) -> None:
        """Take the lock (or a stale one over); refuse naming the holder when it is live."""
        try:
            created = run(
                self.c, lease.create_argv(self.target), stdin=self.manifest(), hide=True, warn=True
            )
        except KeyboardInterrupt:  # kubectl may have created it before it stopped
            self._remove_if_ours()
            raise
        if is_dry(self.c):
            Progress.note("(dry run: the lock is not taken)")
            return
        if created.exited == 0:
            return self._took(created.stdout, "taken")
        if not lease.exists(created.stderr):
            raise OpsError(
                f"taking the deploy lock failed (exit {created.exited}): "
                + last_line(created.stderr),
                code=created.exited,
            )
        state = self.read()
        if state is None:  # released between our create and our get: try once more
            created = run(
                self.c, lease.create_argv(self.target), stdin=self.manifest(), hide=True, warn=True
            )
            if created.exited == 0:
                return self._took(created.stdout, "taken")
            state = self.read()
        now = lease.utcnow()
        if state is not None and state.stale(now):
            replaced = run(
                self.c,
                lease.replace_argv(self.target),
                hide=True,
                warn=True,
                stdin=self.manifest(resource_version=state.resource_version),
            )
            if replaced.exited == 0:
                self.taken_over = state
                return self._took(
                    replaced.stdout, f"taken over from a stale lock ({state.describe(now)})"
                )
            state = self.read() if lease.conflict(replaced.stderr) else state
        raise self.refusal(state, now)

    def refusal(self, state: lease.LeaseState | None, now: datetime) -> Refused:
        where = f"{self.target.release} in {self.target.namespace}"
        if state is None:
            return Refused(
                f"{self.holder.operation}: the deploy lock of {where} changed while we read it; "
                "try again"
            )
        return Refused(
            f"{self.holder.operation}: the deploy lock of {where} is held by "
            f"{state.describe(now)}; "
            f"wait for it to finish; if that process is gone it goes stale at {state.stale_at()} "
            f"(deploy.lock_stale_after), or remove it with inv deploy.unlock --env={self.env}"
        )

    def read(self) -> lease.LeaseState | None:
        got = run(self.c, lease.get_argv(self.target), hide=True, warn=True)
        if got.exited != 0:
            if lease.not_found(got.stderr):
                return None
            raise OpsError(
                f"reading the deploy lock failed (exit {got.exited}): {last_line(got.stderr)}",
                code=got.exited,
            )
        return lease.parse_lease(got.stdout)

    def _remove_if_ours(self) -> None:
        try:
            state = self.read()
            if state is not None and state.identity == self.holder.identity:
                run(
                    self.c,
                    lease.delete_argv(self.target),
                    stdin=lease.delete_body(state.resource_version),
                    hide=True,
                    warn=True,
                )
        except (OpsError, KeyboardInterrupt):
            pass  # it goes stale on its own

    def _took(self, text: str, how: str) -> None:
        self.resource_version = lease.parse_lease(text).resource_version
        self.held = True
        Progress.note(
            f"{how}: {self.holder.identity} ({self.holder.operation}), renewed every "
            f"{max(self.stale_after // 3, 1)}s, stale after {self.stale_after}s"
        )
        self._renewer = threading.Thread(
            target=self._renew_loop, name="deploy-lock-renewer", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self) -> None:
        interval = max(self.stale_after / 3, 1.0)
        while not self._stop.wait(interval):
            renewed = capture(
                lease.replace_argv(self.target),
                input=self.manifest(resource_version=self.resource_version),
                timeout=max(interval, 10.0),
                what="renewing the deploy lock",
            )
            if renewed.ok:
                self.resource_version = lease.parse_lease(renewed.stdout).resource_version
                continue
            if self._stop.is_set():
                return
            Progress.note(
                f"warning: the deploy lock could not be renewed: {last_line(renewed.stderr)}"
            )
            if lease.conflict(renewed.stderr) or lease.not_found(renewed.stderr):
                return  # someone took it over or removed it: nothing left to renew

    def release(self) -> None:
        """Delete the Lease we hold (only that version); never raises."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        if is_dry(self.c):
            run(
                self.c,
                lease.delete_argv(self.target),
                stdin=lease.delete_body("<resourceVersion>"),
                hide=True,
                warn=True,
            )
            return
        if not self.held:
            Progress.note("not held: nothing to release")
            return
        self.held = False
        try:
            deleted = run(
                self.c,
                lease.delete_argv(self.target),
                stdin=lease.delete_body(self.resource_version),
                hide=True,
                warn=True,
            )
        except OpsError as err:
            deleted = None
            reason = err.message
        if deleted is not None and deleted.exited == 0:
            Progress.note("released")
            return
        stderr = deleted.stderr if deleted is not None else ""
        if deleted is not None and lease.conflict(stderr):
            Progress.note("someone else holds it now (it was taken over): left alone")
        elif deleted is not None and lease.not_found(stderr):
            Progress.note("already removed (inv deploy.unlock?)")
        else:
            reason = last_line(stderr) if deleted is not None else reason
            Progress.note(
                f"could not release it ({reason}): it goes stale in {self.stale_after}s, "
                f"or remove it with inv deploy.unlock --env={self.env}"
            )


def unlock(c: Context, target: Target, *, env: str, yes: bool, force: bool) -> None:
    """``inv deploy.unlock``: remove the lock after confirmation; a live one needs ``--force``
    unless its holder ran on this machine and is gone."""
    from tasks.core.prompt import confirm

    holder = lease.this_process("deploy.unlock", "")
    lock = DeployLock(c, target, holder, stale_after=0, env=env)
    where = f"{target.release} in {target.namespace}"
    if is_dry(c):
        run(c, lease.get_argv(target), hide=True, warn=True)
        run(
            c,
            lease.delete_argv(target),
            stdin=lease.delete_body("<resourceVersion>"),
            hide=True,
            warn=True,
        )
        Progress.note(f"(dry run: the lock of {where} is neither read nor removed)")
        return
    state = lock.read()
    if state is None:
        print(f"{where} is not locked")
        return
    now = lease.utcnow()
    status = "stale" if state.stale(now) else "holder gone" if state.gone_here() else "live"
    print(f"deploy lock of {where}: held by {state.describe(now)} ({status})")
    if status == "live" and not force:
        raise Refused(
            f"deploy.unlock: the lock of {where} is live (renewed {describe_age(state.idle(now))} "
            f"ago by {state.user} pid {state.pid or '?'}); if that process is gone (kill -9, "
            "a lost "
            f"machine) wait until {state.stale_at()} or pass --force"
        )
    confirm(f"Remove the deploy lock of {where}?", yes=yes, dry=False)
    deleted = run(
        c,
        lease.delete_argv(target),
        stdin=lease.delete_body(state.resource_version),
        hide=True,
        warn=True,
    )
    if deleted.exited != 0:
        if lease.conflict(deleted.stderr):
            raise Refused(
                f"deploy.unlock: the lock of {where} changed meanwhile (renewed or taken over); "
                "look again"
            )
        if lease.not_found(deleted.stderr):
            print(f"{where} is not locked (removed meanwhile)")
            return
        raise OpsError(
            f"deploy.unlock: kubectl delete failed (exit {deleted.exited}): "
            + last_line(deleted.stderr),
            code=deleted.exited,
        )
    print(f"deploy lock of {where} removed")
