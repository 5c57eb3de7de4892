"""Executing deploys: the numbered steps of ``inv deploy`` (and ``inv setup``), one function each.

Under Invoke's ``--dry`` every step is still shown: local read-only probes (tool versions, the
kubeconfig's contexts, git state, helm plugins) run; everything that talks to the cluster, even
read-only (``helm history``, ``helm get manifest``, ``helm diff``), is only printed, so ``--dry``
works without cluster access; nothing is changed and no audit record is written.
"""

from __future__ import annotations

import difflib
import getpass
import io
import time
from datetime import datetime, timezone

from invoke import Context
from tasks.core.errors import OpsError

from tasks.deploy import helmout
from tasks.deploy.audit import AuditRecord, append_audit
from tasks.deploy.plan import (
    Target,
    apply_argv,
    deployment_name,
    describe_change,
    describe_deployment_argv,
    diff_plugin_argv,
    get_manifest_argv,
    history_argv,
    logs_argv,
    pods_argv,
    rollout_argv,
    template_argv,
    upgrade_argv,
)
from tasks.deploy.safety import (
    GitState,
    check_guards,
    interactive,
    interrupted_exit,
    read_git_state,
    run_forwarding_signals,
)
from tasks.deploy.secrets import SecretSource, apply_secret
from tasks.deploy.config import ChartInputs, Settings, chart_inputs, load_manifests
from tasks.core.environments import Environment
from tasks.core.settings import project_root
from tasks.kube import (
    HelmVersion,
    guard_context,
    require_kube_tools,
    resolve_context,
    upgrade_safety_flags,
)
from tasks.core.prompt import confirm
from tasks.core.runner import is_dry, probe, run


class Steps:
    """Prints ``==> N. title`` as each step starts."""

    def __init__(self) -> None:
        self.number = 0

    def __call__(self, title: str) -> None:
        self.number += 1
        print(f"==> {self.number}. {title}", flush=True)


def note(text: str) -> None:
    print(f"    {text}", flush=True)


# -- steps --------------------------------------------------------------------------------------


def prerequisites(c: Context) -> HelmVersion:
    version = require_kube_tools(c)
    kubectl_version = probe(c, ["kubectl", "version", "--client", "--output", "json"])
    client = (
        helmout.parse_client_version(kubectl_version.stdout)
        if kubectl_version.exited == 0
        else "unknown"
    )
    flags = " ".join(upgrade_safety_flags(version, "")[:2])
    note(f"kubectl {client}; helm {version} (Helm {version.major}: {flags})")
    return version


def check_context(c: Context, environment: Environment, flag: str | None) -> str:
    context, source = resolve_context(environment, flag)
    guard_context(c, context, source)
    note(f"kube context {context} (from {source}), passed explicitly to every kubectl/helm call")
    return context


def guards(c: Context, environment: Environment, *, yes: bool, allow_dirty: bool) -> GitState:
    state = read_git_state(c, project_root(c))
    check_guards(environment, state, allow_dirty=allow_dirty, yes=yes, interactive=interactive())
    tree = "not a git checkout" if not state.is_repo else ("dirty" if state.dirty else "clean")
    needed = "required" if environment.confirm else "not required"
    note(f"git {state.label} ({tree}); confirmation {needed}")
    return state


def recovery_command(environment: Environment, target: Target, context_flag: str | None) -> str:
    extra = f" --context={context_flag}" if context_flag is not None else ""
    return f"inv deploy.recover --env={environment.name} --namespace={target.namespace}{extra}"


def read_history(c: Context, target: Target) -> list[helmout.Revision] | None:
    """The release's revisions ([] if it does not exist); None under --dry (not read)."""
    result = run(c, history_argv(target), hide=True, warn=True)
    if is_dry(c):
        return None
    if result.exited != 0:
        if helmout.release_missing(result.stderr):
            return []
        reason = (result.stderr.strip().splitlines() or ["no error output"])[0]
        raise OpsError(f"helm history failed (exit {result.exited}): {reason}", code=result.exited)
    return helmout.parse_history(result.stdout)


def release_state(
    c: Context, environment: Environment, target: Target, context_flag: str | None
) -> list[helmout.Revision] | None:
    history = read_history(c, target)
    if history is None:
        note("(dry run: release history not read)")
        return None
    stuck = helmout.stuck_revision(history)
    if stuck is not None:
        raise OpsError(
            f"release {target.release} in {target.namespace} is stuck in {stuck.status} "
            f"(revision {stuck.revision}): another helm operation is running or was interrupted; "
            "if none is running, recover with: "
            + recovery_command(environment, target, context_flag)
        )
    note(
        f"revision {history[-1].revision}: {history[-1].status}" if history else "not installed yet"
    )
    return history


def manifest_diff(current: str, rendered: str) -> str:
    lines = difflib.unified_diff(
        current.splitlines(keepends=True),
        rendered.splitlines(keepends=True),
        fromfile="deployed (helm get manifest)",
        tofile="to deploy (helm template)",
    )
    return "".join(lines)


def show_diff(c: Context, target: Target, chart: ChartInputs) -> None:
    plugins = helmout.parse_plugins(probe(c, ["helm", "plugin", "list"]).stdout)
    if "diff" in plugins:
        result = run(c, diff_plugin_argv(target, chart), warn=True)
        if result.exited != 0:
            raise OpsError(f"helm diff failed (exit {result.exited})", code=result.exited)
        return
    note("helm-diff plugin not installed: comparing helm template with helm get manifest")
    rendered = run(c, template_argv(target, chart), hide=True, warn=True)
    current = run(c, get_manifest_argv(target), hide=True, warn=True)
    if is_dry(c):
        return
    if rendered.exited != 0:
        raise OpsError(f"helm template failed (exit {rendered.exited}): {rendered.stderr.strip()}")
    if current.exited != 0 and not helmout.release_missing(current.stderr):
        raise OpsError(f"helm get manifest failed (exit {current.exited}): {current.stderr.strip()}")
    text = manifest_diff(current.stdout if current.exited == 0 else "", rendered.stdout)
    print(text if text else "    no changes", flush=True)


def ask(
    c: Context, environment: Environment, target: Target, *, yes: bool, what: str, suffix: str = ""
) -> None:
    """Confirm where the environment says so (``confirm: true``); the question names the target."""
    if not environment.confirm:
        note(f"not required for {environment.name}")
        return
    question = (
        f"{what} {target.release} in {environment.name} "
        f"(namespace {target.namespace}, context {target.context}){suffix}?"
    )
    if is_dry(c):
        note(f"(dry run: would ask) {question}")
        return
    confirm(question, yes=yes)
    note("confirmed" if not yes else "confirmed by --yes")


def apply_namespace(c: Context, target: Target, settings: Settings, environment: str) -> None:
    text = load_manifests(settings.manifests, environment, target.namespace)
    kinds = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("kind:")
    ]
    note(f"{', '.join(kinds)} for namespace {target.namespace} (server-side apply)")
    result = run(
        c,
        apply_argv(target.context, settings.field_manager),
        in_stream=io.StringIO(text),
        warn=True,
    )
    if result.exited != 0:
        raise OpsError(
            f"kubectl apply of {settings.manifests} failed (exit {result.exited})",
            code=result.exited,
        )


def upgrade(
    c: Context,
    target: Target,
    chart: ChartInputs,
    version: HelmVersion,
    settings: Settings,
    description: str,
) -> None:
    argv = upgrade_argv(
        target, chart, version, history_max=settings.history_max, description=description
    )
    result, signum = run_forwarding_signals(c, argv)
    if signum is not None:
        raise interrupted_exit(
            signum, f"helm was asked to stop and exited {result.exited}; check inv deploy.status"
        )
    if result.exited != 0:
        raise OpsError(
            f"helm upgrade failed (exit {result.exited}) and was rolled back (rollback on "
            f"failure); see inv deploy.history --env={target.environment}",
            code=result.exited,
        )


def diagnose(c: Context, target: Target, component: str, deployment: str, lines: int) -> None:
    """After a failed rollout: the deployment's events and the last log lines of failing pods."""
    run(c, describe_deployment_argv(target, deployment), warn=True)
    pods = run(c, pods_argv(target, component), hide=True, warn=True)
    for pod in helmout.failing_pods(pods.stdout if pods.exited == 0 else ""):
        run(c, logs_argv(target, pod, lines), warn=True)


def verify_rollout(c: Context, target: Target, settings: Settings) -> None:
    for component in settings.rollout_components:
        deployment = deployment_name(target.release, component)
        result = run(c, rollout_argv(target, deployment, settings.timeout_seconds), warn=True)
        if result.exited != 0:
            diagnose(c, target, component, deployment, settings.log_lines)
            raise OpsError(
                f"rollout of deployment/{deployment} did not finish (exit {result.exited}); "
                "events and pod logs above",
                code=result.exited,
            )


def latest_revision(c: Context, target: Target) -> helmout.Revision | None:
    """The release's newest revision (``helm history --max 1``; ``helm status -o json`` carries
    no chart metadata), or None under --dry, without a release, or on any failure."""
    result = run(c, history_argv(target, 1), hide=True, warn=True)
    if is_dry(c) or result.exited != 0:
        return None
    try:
        history = helmout.parse_history(result.stdout)
    except OpsError:  # the audit record must still be written
        return None
    return history[-1] if history else None


# -- the whole deploy ---------------------------------------------------------------------------


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def deploy_flow(
    c: Context,
    environment: Environment,
    settings: Settings,
    *,
    context_flag: str | None,
    yes: bool,
    allow_dirty: bool,
    secret: SecretSource | None = None,
) -> None:
    """The steps of ``inv deploy`` (and, with ``secret``, of ``inv setup``)."""
    step = Steps()
    step("prerequisites: kubectl and helm")
    version = prerequisites(c)
    step("context guard")
    context = check_context(c, environment, context_flag)
    target = Target(environment.name, environment.namespace, context, environment.release)
    chart = chart_inputs(environment, settings)
    step("guards: git tree and confirmation")
    state = guards(c, environment, yes=yes, allow_dirty=allow_dirty)
    step(f"release state: {target.release} in {target.namespace}")
    release_state(c, environment, target, context_flag)
    if settings.diff:
        step("diff against the deployed release")
        show_diff(c, target, chart)
    step("confirmation")
    ask(c, environment, target, yes=yes, what="Deploy" if secret is None else "Set up and deploy")

    started, clock = now(), time.monotonic()
    outcome, detail = "failed", ""
    try:
        step(f"namespace {target.namespace}: manifests")
        apply_namespace(c, target, settings, environment.name)
        if secret is not None:
            step(f"secret {secret.name}")
            apply_secret(c, context, target.namespace, secret, settings.field_manager)
        step("helm upgrade --install")
        description = describe_change(
            environment=environment.name, git_sha=state.label, user=getpass.getuser(), when=started
        )
        upgrade(c, target, chart, version, settings, description)
        step("rollout verification")
        verify_rollout(c, target, settings)
        outcome = "succeeded"
    except OpsError as err:
        outcome = "interrupted" if err.code in (130, 143) else "failed"
        detail = str(err.message or "")
        raise
    except KeyboardInterrupt:
        outcome, detail = "interrupted", "Ctrl-C"
        raise
    finally:
        step("audit record")
        action = "deploy" if secret is None else "setup"
        record_audit(c, settings, target, action, outcome, detail, state, version, started, clock)


def record_audit(
    c: Context,
    settings: Settings,
    target: Target,
    action: str,
    outcome: str,
    detail: str,
    state: GitState,
    version: HelmVersion,
    started: str,
    clock: float,
) -> None:
    latest = latest_revision(c, target) if outcome != "interrupted" else None
    record = AuditRecord(
        action=action,
        env=target.environment,
        namespace=target.namespace,
        context=target.context,
        release=target.release,
        revision=latest.revision if latest else None,
        chart_version=helmout.chart_version(latest.chart) if latest else "",
        image_tag=settings.image_tag or (latest.app_version if latest else ""),
        git_sha=state.label,
        user=getpass.getuser(),
        result=outcome,
        duration_seconds=round(time.monotonic() - clock, 1),
        started_at=started,
        helm_version=str(version),
        detail=detail,
    )
    if is_dry(c):
        note(f"(dry run: no audit record written to {settings.audit_log})")
        return
    append_audit(settings.audit_log, record)
    note(f"{outcome}: revision {record.revision} recorded in {settings.audit_log}")
