"""The read-only deploy tasks: diff, status, history, render, lint.

Each says why a query failed in one line of its own (the tool's last line) and exits with the
tool's code; ``deploy.diff --exit-code`` exits 2 when a deploy would change something.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Context

from tasks.core.environments import Environment, resolve_environment
from tasks.core.errors import ConfigError, OpsError, last_line
from tasks.core.files import make_dirs, write_atomic
from tasks.core.runner import is_dry, probe, run
from tasks.core.settings import Settings
from tasks.deploy import commands, diffs, helmout, plan
from tasks.deploy.operation import chart_inputs, note, prerequisites, read_history, target_for
from tasks.deploy.plan import ChartInputs, Options, Target


def show_diff(
    c: Context, target: Target, chart: ChartInputs, *, show_secrets: bool = False
) -> bool:
    """Print what a deploy would change; True if anything would (None-safe under --dry)."""
    plugins = helmout.parse_plugins(probe(c, ["helm", "plugin", "list"]).stdout)
    if "diff" in plugins:
        result = run(
            c, commands.diff_plugin_argv(target, chart, show_secrets=show_secrets), warn=True
        )
        if result.exited not in (0, 2):
            raise OpsError(
                f"helm diff failed (exit {result.exited}): {last_line(result.stderr)}",
                code=result.exited,
            )
        return result.exited == 2
    note("helm-diff plugin not installed: comparing helm template with helm get manifest")
    rendered = run(c, commands.template_argv(target, chart, hooks=False), hide=True, warn=True)
    current = run(c, commands.get_manifest_argv(target), hide=True, warn=True)
    if is_dry(c):
        return False
    if rendered.exited != 0:
        raise OpsError(
            f"helm template failed (exit {rendered.exited}): {last_line(rendered.stderr)}",
            code=rendered.exited,
        )
    if current.exited != 0 and not helmout.release_missing(current.stderr):
        raise OpsError(
            f"helm get manifest failed (exit {current.exited}): {last_line(current.stderr)}",
            code=current.exited,
        )
    deployed = current.stdout if current.exited == 0 else ""
    text = diffs.manifest_diff(deployed, rendered.stdout, show_secrets=show_secrets)
    print(text if text else "    no changes", end="" if text.endswith("\n") else "\n", flush=True)
    return bool(text)


def diff(
    c: Context,
    environment: Environment,
    settings: Settings,
    options: Options,
    *,
    exit_code: bool,
    show_secrets: bool,
) -> None:
    from tasks.deploy import secrets

    try:
        prerequisites(c, options)
        target = target_for(c, environment, options)
        name = settings.secret.name
        got = run(c, commands.secret_get_argv(target, name), hide=True, warn=True)
        checksum = plan.DRY_CHECKSUM if is_dry(c) else ""
        if not is_dry(c) and got.exited == 0:
            checksum = secrets.data_digest(secrets.data_of(got.stdout, what=f"secret/{name}"))
        elif not is_dry(c) and "NotFound" not in got.stderr:
            # a Secret we cannot read (403, no answer) is an error, not "the checksum changed"
            raise OpsError(
                f"kubectl get secret {name} failed (exit {got.exited}): {last_line(got.stderr)}",
                code=got.exited,
            )
        changed = show_diff(
            c,
            target,
            chart_inputs(environment, settings, options, checksum),
            show_secrets=show_secrets,
        )
    except OpsError as err:
        if exit_code and err.code == 2:  # 2 means "changes pending": an error is 1
            raise OpsError(err.message, code=1) from None
        raise
    if exit_code and changed:
        raise OpsError("", code=2)  # like helm diff --detailed-exitcode: 2 means changes


def status(c: Context, environment: Environment, options: Options) -> None:
    target = target_for(c, environment, options)
    result = run(c, commands.status_argv(target), hide=True, warn=True)
    if is_dry(c):
        run(c, commands.history_argv(target, 1), hide=True)
        run(c, commands.workloads_argv(target), hide=True)
        return
    if result.exited != 0:
        if helmout.release_missing(result.stderr):
            raise OpsError(f"release {target.release} is not installed in {target.namespace}")
        raise OpsError(
            f"helm status failed (exit {result.exited}): {last_line(result.stderr)}",
            code=result.exited,
        )
    s = helmout.parse_status(result.stdout)
    history = read_history(c, target, 1)  # the chart is not in helm status's JSON
    latest = history[-1] if history else None
    chart = f"chart {latest.chart} (app {latest.app_version}); " if latest else ""
    print(
        f"{s.name} in {s.namespace}: revision {s.revision} {s.status}; {chart}"
        f"deployed {s.last_deployed}; {s.description}",
        flush=True,
    )
    workloads = run(c, commands.workloads_argv(target), hide=True, warn=True)
    if workloads.exited != 0:
        raise OpsError(
            f"kubectl get deployments,pods,hpa,pdb failed (exit {workloads.exited}): "
            f"{last_line(workloads.stderr)}",
            code=workloads.exited,
        )
    print(workloads.stdout, end="", flush=True)


def history(c: Context, environment: Environment, options: Options, *, max_revisions: int) -> None:
    target = target_for(c, environment, options)
    revisions = read_history(c, target, max_revisions)
    if revisions is None:
        return
    if not revisions:
        raise OpsError(f"release {target.release} is not installed in {target.namespace}")
    print(helmout.history_table(revisions[-max_revisions:]))


def environments_with_values(c: Context, env: str | None) -> list[str]:
    from tasks.core.settings import load

    if env is not None:
        return [env]
    return [name for name, raw in sorted(load(c, "environments").items()) if raw.values_file]


def render_one(c: Context, environment: Environment, settings: Settings, options: Options) -> str:
    target = Target(environment.name, environment.namespace, "", environment.release)
    result = probe(c, commands.template_argv(target, chart_inputs(environment, settings, options)))
    if result.exited != 0:
        raise OpsError(
            f"{environment.name}: helm template failed: {last_line(result.stderr)}",
            code=result.exited,
        )
    return str(result.stdout)


def render(
    c: Context, settings: Settings, options: Options, *, env: str | None, output: Path | None
) -> None:
    for name in environments_with_values(c, env):
        environment = resolve_environment(c, name, require=("values_file",))
        text = render_one(c, environment, settings, options)
        if output is None:
            print(text, end="")
            continue
        path = output / f"{name}.yaml"
        try:
            make_dirs(output, 0o755)
            write_atomic(path, text, 0o644)  # never through a symlink planted at the name
        except OSError as exc:
            raise ConfigError(
                f"--output: {str(output)!r} is not valid; cannot write {path}: "
                f"{exc.strerror or exc}"
            ) from None
        print(f"{name}: wrote {path}")


def lint(c: Context, settings: Settings, options: Options, *, env: str | None) -> None:
    from tasks.deploy.manifests import load_manifests
    from tasks.deploy.validate import load_objects, validate_objects

    problems = 0
    for name in environments_with_values(c, env):
        environment = resolve_environment(c, name, require=("values_file",))
        chart = chart_inputs(environment, settings, options)
        linted = probe(c, commands.lint_argv(chart.chart, chart.values_file, environment.namespace))
        if linted.exited != 0:
            problems += 1
            print(f"{name}: helm lint --strict failed:\n{linted.stdout}{linted.stderr}")
            continue
        sources = {
            "chart": render_one(c, environment, settings, options),
            "manifests": load_manifests(settings.manifests, name, environment.namespace),
        }
        counts = []
        for source, text in sources.items():
            objects = load_objects(text)
            findings = validate_objects(
                objects,
                source=f"{name} {source}",
                kubernetes_version=settings.kubernetes_version,
                crd_allowlist=settings.crd_allowlist,
            )
            for finding in findings:
                print(("  skipped " if finding.skipped else "  ERROR ") + str(finding))
            problems += sum(not f.skipped for f in findings)
            counts.append(f"{len(objects)} {source} objects")
        print(
            f"{name}: helm lint --strict ok; {' + '.join(counts)} checked against "
            f"Kubernetes {settings.kubernetes_version} (strict)"
        )
    if problems:
        raise OpsError(f"deploy.lint: {problems} problem(s)")
