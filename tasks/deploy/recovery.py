"""``inv deploy.rollback`` and ``inv deploy.recover``: under the deploy lock, like a deploy.

Recovery is safe by default: it takes the lock (so it refuses while a live operation holds it)
and refuses a ``pending-*`` revision younger than the deploy timeout (``helm history``'s
``updated``: the operation that left it may still be running) unless ``--force``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from invoke import Context

from tasks.core.environments import Environment
from tasks.core.errors import ConfigError, Refused
from tasks.core.prompt import confirm
from tasks.core.runner import is_dry, run
from tasks.core.settings import Settings
from tasks.core.steps import Step
from tasks.deploy import commands, helmout
from tasks.deploy.lease import lease_name
from tasks.deploy.operation import Operation, ask, check_not_stuck, note, read_history, run_helm
from tasks.deploy.plan import Options


def _steps(*middle: tuple[str, str]) -> list[Step]:
    return [
        Step(title, tags=frozenset(tags.split()))
        for title, tags in (
            ("prerequisites: kubectl and helm", "prerequisites"),
            ("context guard", "context"),
            *middle,
            ("audit record", "audit finally"),
            ("deploy lock: release", "unlock finally"),
        )
    ]


class Rollback(Operation):
    """``--revision N``, or by default the last good revision (:func:`helmout.last_good_revision`),
    chosen before the prompt and named in it; under the lock the history must still end where it
    ended when the target was chosen."""

    revision = 0
    latest = 0
    described = ""

    def step_history(self) -> None:
        """Before asking: the release exists and knows the revision asked for."""
        history = read_history(self.c, self.target)
        revision = self.options.revision
        if history is None:
            note("(dry run: release history not read; would roll back to the last good revision)")
            self.revision = revision
            return
        if history == []:
            raise Refused(
                f"release {self.target.release} is not installed in {self.target.namespace}"
            )
        if revision and revision not in {r.revision for r in history}:
            known = ", ".join(str(r.revision) for r in history)
            raise ConfigError(
                f"--revision: {revision} is not in the release history; known: {known}"
            )
        if revision:
            (target,) = (r for r in history if r.revision == revision)
        else:
            found, skipped = helmout.last_good_revision(history)
            for reason in skipped:
                note(f"skipped {reason}")
            if found is None:
                raise Refused(
                    f"release {self.target.release} has no good revision before revision "
                    f"{history[-1].revision} to roll back to; see inv deploy.history "
                    f"--env={self.target.environment} and pass --revision"
                )
            target = found
        manifest = run(
            self.c,
            commands.revision_manifest_argv(self.target, target.revision),
            hide=True,
            warn=True,
        )
        images = helmout.manifest_images(manifest.stdout) if manifest.exited == 0 else None
        self.revision, self.latest = target.revision, history[-1].revision
        self.described = helmout.describe_revision(target, images, datetime.now(timezone.utc))
        note(
            f"current: revision {history[-1].revision} ({history[-1].status}); "
            f"target: {self.described}"
        )

    def step_confirm(self) -> None:
        to = f"to {self.described}" if self.described else "to the last good revision"
        ask(self.c, self.environment, self.target, yes=self.options.yes, what=f"Roll back {to}:")

    def step_state(self) -> None:
        history = check_not_stuck(self.c, self.target, self.options)
        if history and self.latest and history[-1].revision != self.latest:
            raise Refused(
                f"the release changed while we waited for the lock (revision "
                f"{history[-1].revision} is now the latest, not {self.latest}); nothing rolled "
                f"back: run inv deploy.rollback --env={self.target.environment} again"
            )

    def step_rollback(self) -> None:
        argv = commands.rollback_argv(
            self.target,
            self.revision,
            self.version,
            timeout_seconds=self.options.timeout_seconds,
            history_max=self.settings.history_max,
            force_conflicts=self.options.force_conflicts,
        )
        run_helm(self.c, argv, self.target, "rollback", self.version)
        if self.described:
            note(f"rolled back to {self.described}")


def rollback(c: Context, environment: Environment, settings: Settings, options: Options) -> None:
    lease = f"deploy lock: lease {lease_name(environment.release)} in {environment.namespace}"
    Rollback(c, environment, settings, options).steps(
        _steps(
            (f"release history: {environment.release} in {environment.namespace}", "history"),
            ("confirmation", "confirm"),
            (lease, "lock"),
            (f"release state: {environment.release} in {environment.namespace}", "state"),
            ("helm rollback", "rollback"),
            ("rollout verification", "rollout"),
        )
    )


class Recover(Operation):
    recovery: helmout.Recovery | None = None
    what = ""

    def step_state(self) -> None:
        history = read_history(self.c, self.target)
        if history is None:
            note("(dry run: history not read; would roll back to the last deployed revision)")
            return
        recovery = helmout.plan_recovery(history)
        if recovery.action == "none":
            note(f"nothing to recover: {recovery.reason}")
            return
        stuck = recovery.stuck or history[-1]
        age = stuck.age_seconds(datetime.now(timezone.utc))
        timeout = self.options.timeout_seconds
        if (age is None or age < timeout) and not self.options.force:
            how_old = f"{helmout.describe_age(age)} old" if age is not None else "of unknown age"
            raise Refused(
                f"deploy.recover: revision {stuck.revision} is {stuck.status} since "
                f"{stuck.updated[:19]} ({how_old}), younger than the deploy timeout "
                f"({helmout.describe_age(timeout)}): the "
                "operation that left it may still be running; wait, or pass --force if you know "
                "it has ended"
            )
        what = (
            f"roll back to revision {recovery.revision}"
            if recovery.action == "rollback"
            else "uninstall the never-deployed release"
        )
        age_text = helmout.describe_age(age) if age is not None else "unknown age"
        note(f"revision {stuck.revision} is {stuck.status} ({age_text} old): will {what}")
        self.recovery, self.what = recovery, what

    def step_confirm(self) -> None:
        if self.recovery is None:
            note("nothing to confirm")
            return
        t = self.target
        question = f"{self.what.capitalize()}: {t.release} in {t.namespace} ({t.context})?"
        if is_dry(self.c):
            note(f"(dry run: would ask) {question}")
            return
        confirm(question, yes=self.options.yes)

    def step_recover(self) -> None:
        recovery, t, o = self.recovery, self.target, self.options
        if recovery is None and not is_dry(self.c):
            return
        if recovery is not None and recovery.action == "uninstall":
            argv = commands.uninstall_argv(t, self.version, timeout_seconds=o.timeout_seconds)
            run_helm(self.c, argv, t, "uninstall", self.version)
            return
        revision = recovery.revision if recovery is not None else 0
        argv = commands.rollback_argv(
            t,
            revision,
            self.version,
            timeout_seconds=o.timeout_seconds,
            history_max=self.settings.history_max,
            force_conflicts=o.force_conflicts,
        )
        run_helm(self.c, argv, t, "rollback", self.version)


def recover(c: Context, environment: Environment, settings: Settings, options: Options) -> None:
    lease = f"deploy lock: lease {lease_name(environment.release)} in {environment.namespace}"
    Recover(c, environment, settings, options).steps(
        _steps(
            (lease, "lock"),
            (f"release state: {environment.release} in {environment.namespace}", "state"),
            ("confirmation", "confirm"),
            ("recovery", "recover"),
        )
    )
