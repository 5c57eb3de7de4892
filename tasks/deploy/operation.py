"""What every changing operation shares (deploy, setup, rollback, recover): the common steps,
helm runs that survive Ctrl-C/SIGTERM the right way, rollout verification, and the
:class:`Operation` that walks a plan's steps under the deploy lock and writes its audit record.
"""

from __future__ import annotations

import getpass
import signal
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from invoke import Context
from invoke.exceptions import CommandTimedOut

from tasks.core import jsonl
from tasks.core.environments import Environment
from tasks.core.errors import ConfigError, Interrupted, OpsError, Refused, last_line
from tasks.core.files import private_dir
from tasks.core.prompt import confirm
from tasks.core.runner import GRACEFUL, is_dry, probe, run
from tasks.core.settings import Settings
from tasks.core.steps import Progress, Step
from tasks.deploy import commands, failures, helmout, plan
from tasks.deploy.lease import this_process
from tasks.deploy.lock import DeployLock
from tasks.deploy.plan import ChartInputs, Options, Target
from tasks.deploy.safety import GitState
from tasks.kube import (
    HelmVersion,
    guard_context,
    require_kube_tools,
    resolve_context,
    upgrade_safety_flags,
)

note = Progress.note


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def prerequisites(c: Context, options: Options) -> HelmVersion:
    version = require_kube_tools(c)
    kubectl_version = probe(c, ["kubectl", "version", "--client", "--output", "json"])
    client = (
        helmout.parse_client_version(kubectl_version.stdout)
        if kubectl_version.exited == 0
        else "unknown"
    )
    if options.force_conflicts and version.major < 4:
        raise ConfigError(
            f"--force-conflicts: needs Helm 4 (server-side apply); helm {version} applies "
            "client-side, where there are no field-manager conflicts to force"
        )
    flags = " ".join(upgrade_safety_flags(version, "")[:2])
    note(f"kubectl {client}; helm {version} (Helm {version.major}: {flags})")
    return version


def target_for(c: Context, environment: Environment, options: Options) -> Target:
    """The guarded target: the context (pinned or --context) must be in the kubeconfig."""
    context, source = resolve_context(environment, options.context)
    guard_context(c, context, source)
    note(f"kube context {context} (from {source}), passed explicitly to every kubectl/helm call")
    return Target(environment.name, environment.namespace, context, environment.release)


def chart_inputs(
    environment: Environment, settings: Settings, options: Options, checksum: str = ""
) -> ChartInputs:
    if settings.chart is None or not settings.chart.is_dir():
        raise ConfigError(f"deploy.chart: {settings.chart} is not a directory (the Helm chart)")
    if environment.values_file is None:
        raise ConfigError(f"{environment.key('values_file')}: missing required key")
    return ChartInputs(
        chart=settings.chart,
        values_file=environment.values_file,
        secret_name=settings.secret.name,
        timeout_seconds=options.timeout_seconds,
        image_tag=options.image_tag,
        image_digests=options.image_digests,
        secret_checksum=checksum,
    )


def read_history(
    c: Context, target: Target, max_revisions: int = 20, timeout: int | None = None
) -> list[helmout.Revision] | None:
    """The release's revisions ([] if it does not exist); None under --dry (not read)."""
    result = run(
        c, commands.history_argv(target, max_revisions), hide=True, warn=True, timeout=timeout
    )
    if is_dry(c):
        return None
    if result.exited != 0:
        if helmout.release_missing(result.stderr):
            return []
        raise OpsError(
            f"helm history failed (exit {result.exited}): {last_line(result.stderr)}",
            code=result.exited,
        )
    return helmout.parse_history(result.stdout)


def recovery_command(target: Target, options: Options) -> str:
    extra = f" --context={options.context}" if options.context is not None else ""
    return f"inv deploy.recover --env={target.environment} --namespace={target.namespace}{extra}"


def check_not_stuck(c: Context, target: Target, options: Options) -> list[helmout.Revision] | None:
    history = read_history(c, target)
    if history is None:
        note("(dry run: release history not read)")
        return None
    stuck = helmout.stuck_revision(history)
    if stuck is not None:
        raise Refused(
            f"release {target.release} in {target.namespace} is stuck in {stuck.status} "
            f"(revision {stuck.revision}) although no flowlet-ops operation holds the deploy lock: "
            "a helm run by hand is in progress, or one was interrupted; if none is running, "
            "recover with: " + recovery_command(target, options)
        )
    note(
        f"revision {history[-1].revision}: {history[-1].status}" if history else "not installed yet"
    )
    return history


def ask(c: Context, environment: Environment, target: Target, *, yes: bool, what: str) -> None:
    """Confirm where the environment says so (``confirm: true``); the question names the target."""
    if not environment.confirm:
        note(f"not required for {environment.name}")
        return
    question = (
        f"{what} {target.release} in {environment.name} "
        f"(namespace {target.namespace}, context {target.context})?"
    )
    if is_dry(c):
        note(f"(dry run: would ask) {question}")
        return
    confirm(question, yes=yes)
    note("confirmed" if not yes else "confirmed by --yes")


def run_helm(
    c: Context, argv: list[str], target: Target, action: str, version: HelmVersion
) -> None:
    """A helm operation that changes the release. Whatever stops ``inv`` -- Ctrl-C, SIGTERM,
    SIGHUP, even ``kill -9`` -- reaches helm as SIGTERM only (the runner's GRACEFUL: helm cancels
    and rolls back with --rollback-on-failure/--atomic; SIGHUP would kill it outright and
    SIGKILL strand the release in pending-*), in its own session (a closing terminal's SIGHUP
    never reaches it). We wait for helm's own rollback, then raise the interrupt again: exit
    130/143/129 with the release's state and what to check."""
    try:
        result = run(c, argv, warn=True, stopping=GRACEFUL)
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", signal.SIGINT))
        raise Interrupted(
            signum,
            f"helm {action} was asked to stop and has exited"
            + release_now(c, target)
            + f"; check inv deploy.status --env={target.environment}",
        ) from None
    if result.exited != 0:
        message = failures.explain_failure(
            action,
            result.exited,
            result.stderr,
            release=target.release,
            namespace=target.namespace,
            env=target.environment,
            helm_major=version.major,
        )
        raise OpsError(message, code=result.exited)


def release_now(c: Context, target: Target) -> str:
    """``; the release is at revision N: STATUS (DESCRIPTION)`` after an interrupted helm, or ""."""
    try:  # bounded: an interrupted deploy must end even when the cluster does not answer
        history = read_history(c, target, 1, timeout=30)
    except (OpsError, KeyboardInterrupt, CommandTimedOut):
        return ""
    if not history:
        return ""
    latest = history[-1]
    return f"; the release is at revision {latest.revision}: {latest.status} ({latest.description})"


def verify_rollout(c: Context, target: Target, settings: Settings, timeout_seconds: int) -> None:
    for component in settings.rollout_deployments:
        deployment = plan.deployment_name(target.release, component)
        result = run(c, commands.rollout_argv(target, deployment, timeout_seconds), warn=True)
        if result.exited != 0:
            run(c, commands.describe_deployment_argv(target, deployment), warn=True)
            pods = run(c, commands.pods_argv(target, component), hide=True, warn=True)
            for pod in helmout.failing_pods(pods.stdout if pods.exited == 0 else ""):
                run(c, commands.logs_argv(target, pod, settings.log_lines), warn=True)
            raise OpsError(
                f"rollout of deployment/{deployment} did not finish (exit {result.exited}); "
                "events and pod logs above",
                code=result.exited,
            )


@dataclass(frozen=True)
class AuditRecord:
    action: str  # deploy | setup | rollback | recover
    env: str
    namespace: str
    context: str
    release: str
    revision: int | None
    chart_version: str
    image_tag: str
    git_sha: str
    user: str
    result: str  # succeeded | failed | refused | interrupted
    duration_seconds: float
    started_at: str
    helm_version: str
    detail: str = ""


class Operation:
    """One changing operation: its lock, its outcome and its audit record (see :meth:`steps`)."""

    def __init__(
        self, c: Context, environment: Environment, settings: Settings, options: Options
    ) -> None:
        self.c, self.environment, self.settings, self.options = c, environment, settings, options
        self.version = HelmVersion(0, 0, 0)
        self.target = Target(environment.name, environment.namespace, "", environment.release)
        self.git = GitState(sha="unknown", is_repo=False)
        self.lock: DeployLock | None = None
        self.started, self.clock = now(), time.monotonic()
        self.outcome, self.detail = "failed", ""

    def steps(self, steps: list[Step]) -> None:
        """Run ``steps`` (``step_<tag>`` methods); the ``finally`` ones on every exit path once
        the lock step was reached."""
        progress = Progress()
        final = [s for s in steps if "finally" in s.tags]
        try:
            for step in (s for s in steps if "finally" not in s.tags):
                progress(step.title)
                self.dispatch(step)
            self.outcome = "succeeded"
        except OpsError as err:
            self.outcome = (
                "interrupted"
                if isinstance(err, Interrupted)
                else ("refused" if isinstance(err, Refused) else "failed")
            )
            self.detail = err.message
            raise
        except KeyboardInterrupt:
            self.outcome, self.detail = "interrupted", "interrupted"
            raise
        finally:
            if self.lock is not None:
                for step in final:
                    progress(step.title)
                    self.dispatch(step)

    def dispatch(self, step: Step) -> None:
        (tag,) = step.tags - {"finally"}
        getattr(self, f"step_{tag}")()

    def step_prerequisites(self) -> None:
        self.version = prerequisites(self.c, self.options)
        if not is_dry(self.c):  # the audit record's directory is ours, before anything changes
            private_dir(self.settings.audit_log.parent, source="deploy.audit_log", tighten=False)

    def step_context(self) -> None:
        self.target = target_for(self.c, self.environment, self.options)

    def step_lock(self) -> None:
        holder = this_process(self.options.operation, self.git.label)
        lock = DeployLock(
            self.c,
            self.target,
            holder,
            stale_after=self.settings.lock_stale_after,
            env=self.environment.name,
        )
        lock.acquire()  # refused: nothing started, nothing to record or release
        self.lock, self.started, self.clock = lock, now(), time.monotonic()

    def release_state(self) -> list[helmout.Revision] | None:
        """:func:`check_not_stuck`, except after taking over a stale lock: a revision its dead
        holder left ``pending-*`` is settled under this same lock. Its helm got SIGTERM when
        the holder died and rolls back within the deploy timeout, so we wait for that (up to
        the timeout since the revision started); what is still pending then is recovered
        (:func:`helmout.plan_recovery`) before this operation goes on."""
        taken_over = self.lock.taken_over if self.lock is not None else None
        if taken_over is None:
            return check_not_stuck(self.c, self.target, self.options)
        history = read_history(self.c, self.target)
        stuck = helmout.stuck_revision(history or [])
        if history is None or stuck is None:
            return check_not_stuck(self.c, self.target, self.options)
        timeout = self.options.timeout_seconds
        wait = helmout.pending_wait(stuck, datetime.now(timezone.utc), timeout)
        who = f"{taken_over.user} pid {taken_over.pid or '?'}"
        if wait > 0:
            note(
                f"revision {stuck.revision} is {stuck.status}, left by the stale lock's holder "
                f"({who}): waiting up to {helmout.describe_age(wait)} for its helm to finish"
            )
        deadline = time.monotonic() + wait
        while stuck is not None and time.monotonic() < deadline:
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            history = read_history(self.c, self.target) or []
            stuck = helmout.stuck_revision(history)
        if stuck is None:
            note(f"settled on its own: revision {history[-1].revision}: {history[-1].status}")
            return history
        recovery = helmout.plan_recovery(history)
        what = (
            f"rolling back to revision {recovery.revision}"
            if recovery.action == "rollback"
            else "uninstalling the never-deployed release"
        )
        note(
            f"revision {stuck.revision} is {stuck.status}, left by the stale lock's holder "
            f"({who}) and older than the deploy timeout ({helmout.describe_age(timeout)}): "
            f"{what} under this same lock"
        )
        if recovery.action == "uninstall":
            argv = commands.uninstall_argv(self.target, self.version, timeout_seconds=timeout)
            run_helm(self.c, argv, self.target, "uninstall", self.version)
            return []
        argv = commands.rollback_argv(
            self.target,
            recovery.revision,
            self.version,
            timeout_seconds=timeout,
            history_max=self.settings.history_max,
        )
        run_helm(self.c, argv, self.target, "rollback", self.version)
        return check_not_stuck(self.c, self.target, self.options)

    def step_unlock(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def step_rollout(self) -> None:
        verify_rollout(self.c, self.target, self.settings, self.options.timeout_seconds)

    def step_audit(self) -> None:
        latest = None
        if self.outcome != "interrupted" and not is_dry(self.c):
            try:
                history = read_history(self.c, self.target, 1)
                latest = history[-1] if history else None
            except OpsError:  # the audit record must still be written
                latest = None
        record = AuditRecord(
            action=self.options.operation,
            env=self.target.environment,
            namespace=self.target.namespace,
            context=self.target.context,
            release=self.target.release,
            revision=latest.revision if latest else None,
            chart_version=helmout.chart_version(latest.chart) if latest else "",
            image_tag=self.options.image_tag or (latest.app_version if latest else ""),
            git_sha=self.git.label,
            user=getpass.getuser(),
            result=self.outcome,
            duration_seconds=round(time.monotonic() - self.clock, 1),
            started_at=self.started,
            helm_version=str(self.version),
            detail=self.detail,
        )
        if is_dry(self.c):
            note(f"(dry run: no audit record written to {self.settings.audit_log})")
            return
        jsonl.append(self.settings.audit_log, asdict(record))
        note(f"{self.outcome}: revision {record.revision} recorded in {self.settings.audit_log}")
