"""Executing deploys, rollbacks and recoveries: the plans of :mod:`tasks.deploy.plan`, run
through :mod:`tasks.core.runner`, each step printed as ``==> N. title``.

Under Invoke's ``--dry`` every step is still shown: local read-only probes (tool versions, the
kubeconfig's contexts, git state, helm plugins) run; everything that talks to the cluster, even
read-only (``helm history``, ``kubectl get secret``, the lock's Lease), is only printed, so
``--dry`` works without cluster access; nothing is changed, nothing asked, no audit record.
"""

from __future__ import annotations

import getpass
from typing import Any

from invoke import Context

from tasks.core.environments import Environment
from tasks.core.errors import ConfigError, OpsError, Refused, last_line
from tasks.core.runner import is_dry, run
from tasks.core.settings import Settings, project_root
from tasks.deploy import commands, plan
from tasks.deploy.lease import lease_name
from tasks.deploy.operation import Operation, ask, chart_inputs, note, run_helm
from tasks.deploy.plan import ChartInputs, Options, Target
from tasks.deploy.safety import check_guards, interactive, read_git_state


class Deploy(Operation):
    """The steps of :func:`tasks.deploy.plan.deploy_steps`."""

    checksum = ""
    rendered_yaml = ""

    def step_guards(self) -> None:
        self.git = read_git_state(self.c, project_root(self.c))
        check_guards(
            self.environment,
            self.git,
            allow_dirty=self.options.allow_dirty,
            yes=self.options.yes,
            interactive=interactive(),
            dry=is_dry(self.c),
        )
        state = self.git
        tree = "not a git checkout" if not state.is_repo else ("dirty" if state.dirty else "clean")
        needed = "required" if self.environment.confirm else "not required"
        note(f"git {state.label} ({tree}); confirmation {needed}")

    def step_digest(self) -> None:
        from tasks.deploy import secrets

        name, c, t = self.settings.secret.name, self.c, self.target
        if self.options.operation == "setup":
            source = secrets.secret_source(self.settings.secret, t.environment, project_root(c))
            render_argv = commands.secret_render_argv(t.context, t.namespace, name)
            if is_dry(c):  # the values are not even read
                run(c, render_argv, hide=True)
                self.checksum = plan.DRY_CHECKSUM
                note(f"(dry run: the values from {source.describe()} are not read)")
                return
            rendered = run(c, render_argv, stdin=secrets.env_content(source), hide=True, warn=True)
            if rendered.exited != 0:  # stderr is not shown: it could quote the env file
                raise OpsError(
                    f"kubectl create secret generic {name} failed (exit {rendered.exited}); "
                    "check that the values are KEY=value lines",
                    code=rendered.exited,
                )
            self.rendered_yaml = rendered.stdout
            self.checksum = secrets.data_digest(
                secrets.data_of(rendered.stdout, what=f"secret/{name}")
            )
            note(
                f"from {source.describe()}: sha256 {self.checksum[:12]}... (the backend's pods "
                "roll when it changes)"
            )
            return
        got = run(c, commands.secret_get_argv(t, name), hide=True, warn=True)
        if is_dry(c):
            self.checksum = plan.DRY_CHECKSUM
            return
        if got.exited != 0:
            if "NotFound" in got.stderr or "not found" in got.stderr:
                how = (
                    f"inv setup --env {t.environment}"
                    if t.environment in ("staging", "production")
                    else f"kubectl --context {t.context} --namespace {t.namespace} create secret "
                    f"generic {name} --from-env-file=FILE"
                )
                raise Refused(
                    f"secret/{name} does not exist in {t.namespace}: the backend cannot "
                    f"start without it; create it with {how}"
                )
            raise OpsError(
                f"kubectl get secret {name} failed (exit {got.exited}): {last_line(got.stderr)}",
                code=got.exited,
            )
        self.checksum = secrets.data_digest(secrets.data_of(got.stdout, what=f"secret/{name}"))
        note(f"sha256 {self.checksum[:12]}... (unchanged data leaves the pods alone)")

    def chart(self) -> ChartInputs:
        return chart_inputs(self.environment, self.settings, self.options, self.checksum)

    def step_diff(self) -> None:
        from tasks.deploy.show import show_diff

        show_diff(self.c, self.target, self.chart())

    def step_confirm(self) -> None:
        what = "Deploy" if self.options.operation == "deploy" else "Set up and deploy"
        ask(self.c, self.environment, self.target, yes=self.options.yes, what=what)

    def step_namespace(self) -> None:
        from tasks.deploy.manifests import kinds, load_manifests

        t, manifests = self.target, self.settings.manifests
        text = load_manifests(manifests, t.environment, t.namespace)
        note(f"{', '.join(kinds(text))} for namespace {t.namespace} (server-side apply)")
        result = run(
            self.c,
            commands.apply_argv(t.context, self.settings.field_manager),
            stdin=text,
            warn=True,
        )
        if result.exited != 0:
            raise OpsError(
                f"kubectl apply of {manifests} failed (exit {result.exited}): "
                f"{last_line(result.stderr)}",
                code=result.exited,
            )

    def step_state(self) -> None:
        self.release_state()

    def step_secret(self) -> None:
        t, name = self.target, self.settings.secret.name
        argv = commands.apply_argv(
            t.context, self.settings.field_manager, t.namespace, force_conflicts=True
        )
        if is_dry(self.c):
            run(self.c, argv, hide=True)
            note(f"secret/{name} would be applied in {t.namespace}")
            return
        applied = run(self.c, argv, stdin=self.rendered_yaml, hide=True, warn=True)
        if applied.exited != 0:
            raise OpsError(
                f"kubectl apply of secret/{name} failed (exit {applied.exited}): "
                f"{last_line(applied.stderr)}",
                code=applied.exited,
            )
        note(f"secret/{name} applied in {t.namespace} (owned by {self.settings.field_manager})")

    def step_upgrade(self) -> None:
        description = plan.describe_change(
            environment=self.target.environment,
            git_sha=self.git.label,
            user=getpass.getuser(),
            when=self.started,
        )
        argv = commands.upgrade_argv(
            self.target,
            self.chart(),
            self.version,
            history_max=self.settings.history_max,
            description=description,
            force_conflicts=self.options.force_conflicts,
        )
        run_helm(self.c, argv, self.target, "upgrade", self.version)


def deploy(c: Context, environment: Environment, settings: Settings, options: Options) -> None:
    """``inv deploy`` (``options.operation == "deploy"``) and ``inv setup --env staging|production``
    (``"setup"``: the app Secret is applied too)."""
    if options.operation == "setup":  # where the Secret's values come from: checked first
        from tasks.deploy.secrets import secret_source

        secret_source(settings.secret, environment.name, project_root(c))
    steps = plan.deploy_steps(
        options,
        Target(environment.name, environment.namespace, "", environment.release),
        secret_name=settings.secret.name,
        lease=lease_name(environment.release),
    )
    Deploy(c, environment, settings, options).steps(steps)


def resolve(c: Context, env: str | None, namespace: str | None) -> tuple[Environment, Settings]:
    """The environment (``--env``/``--namespace``; it must have a values file) and ``deploy.*``."""
    from tasks.core.environments import resolve_environment
    from tasks.core.settings import load

    environment = resolve_environment(c, env, namespace, require=("values_file",))
    return environment, checked(load(c, "deploy"))


def checked(settings: Settings) -> Settings:
    """``deploy.*`` paths that must exist before anything runs: the chart and the manifests."""
    for key, what in (("chart", "the Helm chart"), ("manifests", "the namespace manifests")):
        path = settings[key]
        if path is None or not path.is_dir():
            raise ConfigError(
                f"deploy.{key}: {str(path)!r} is not valid; valid: an existing directory ({what})"
            )
    return settings


def options(
    settings: Settings,
    operation: str,
    *,
    image_tag: str | None = None,
    image_digest: tuple[str, ...] | None = None,
    timeout: int | None = None,
    **flags: Any,
) -> Options:
    """The flags of one task over the ``deploy.*`` defaults (flags already converted)."""
    return Options(
        operation=operation,
        image_tag=settings.image_tag if image_tag is None else image_tag,
        image_digests=plan.image_digests(image_digest, settings.image_digests),
        timeout_seconds=settings.timeout if timeout is None else timeout,
        **flags,
    )
