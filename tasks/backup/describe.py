"""What ``inv --dry backup.*`` prints: the pipelines and uploads, with placeholders where the
in-memory password files and credentials would be (never a secret, never a variable's value)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.backup.offsite import Destination, rclone_argv
from tasks.backup.plan import BackupPlan, local_parallel, plan_backup, plan_globals
from tasks.backup.tls import pg_tls_prefix
from tasks.core.runner import render

# placeholders shown instead of secrets (names of variables, never their values)
PG_SECRET = "<in-memory passfile from ${var}>"  # nosec B105
MYSQL_SECRET = "--defaults-extra-file=<in-memory option file from ${var}>"  # nosec B105


def credentials_note(dest: Destination) -> str:
    sources = [f"config {dest.config_file}"] if dest.config_file is not None else []
    sources += [f"${var}" for var in dest.env]
    return ", ".join(sources) or "RCLONE_CONFIG_* variables"


def upload_lines(dest: Destination, name: str) -> list[str]:
    temp = dest.join(name + ".partial")
    rcat = render(rclone_argv(dest, "rcat", "--", temp))
    return [
        f"| {rcat}   (credentials: {credentials_note(dest)})",
        f"confirm size + sha256 of {temp} on {dest.name}; move it to {dest.join(name)}; "
        f"then {dest.join(name + '.sha256')}",
    ]


def print_plan(job: Any) -> None:
    target = job.target
    out = Path(job.settings.remote_dir) if job.keep_remote else job.out
    var = target.password_env
    extra = [MYSQL_SECRET.format(var=var)] if target.engine == "mysql" and var else []
    plans: list[BackupPlan] = []
    parallel = not job.host and local_parallel()
    if job.options.with_globals:
        plans.append(
            plan_globals(target, job.options, out, role_passwords=False, parallel=parallel)
        )
    plans.append(plan_backup(target, job.options, out, mysql_extra=extra, parallel=parallel))
    if job.host:
        from tasks.backup.remote import remote_command

        secret = "on the channel's stdin (given to the dump tool only)" if var else "none"
        print(f"on {job.host} (ssh, bash -eo pipefail; password {secret}):")
        for plan in plans:
            print(f"  {remote_command(plan, job, has_secret=bool(var))}")
            print(
                f"  {'kept there as' if job.keep_remote else 'streamed back to'} {plan.final}"
                " (+ .sha256)"
            )
    else:
        if target.engine == "postgres" and var:
            print(f"PGPASSFILE={PG_SECRET.format(var=var)}")
        if target.engine == "postgres":
            print(pg_tls_prefix(target).strip())
        for plan in plans:
            lines = plan.describe()
            if not job.local:
                stream = lines[-2].rsplit(" > ", 1)[0] + "   (--no-local: nothing kept here)"
                lines = [*lines[:-2], stream]
            print("\n".join(lines))
    if job.destination is not None:
        for plan in plans:
            print("\n".join(upload_lines(job.destination, plan.final.name)))
    print(f"manifest line -> {job.manifest_path}")
