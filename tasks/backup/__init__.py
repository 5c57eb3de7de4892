"""Backups that never lie: ``backup.postgres``, ``backup.mysql``, verify, restore, list, prune,
check, schedule, drill.

Dump -> compress -> (encrypt) -> checksum in one streamed pass; every stage's exit status is
checked; output lands atomically at its final name with a ``.sha256`` sidecar (locally and/or
on an rclone destination, confirmed there), or not at all.

Only the task definitions live here (``inv --list`` imports this module): each task imports its
machinery when it runs. ``backup``, ``backup.postgres`` and ``backup.mysql`` are one function
(:func:`_backup`) bound to an engine, each showing the flags that apply to it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Collection, Context

from tasks.backup.settings import DB_TYPE, NAME
from tasks.core.task import OpsTask, task

FLAG_KINDS: dict[str, Any] = {
    "format": "backup.format",
    "compress": "backup.compress",
    "level": "backup.level",
    "jobs": "backup.jobs",
    "output_dir": "backup.output_dir",
    "identity": "backup.identity",
    "to": NAME,
    "db_type": DB_TYPE,
    "max_age": "backup.check.max_age",
    "warn_age": "backup.check.warn_age",
    "textfile": "backup.check.textfile_dir",
    "on_calendar": "backup.schedule.on_calendar",
    "unit_dir": "backup.schedule.unit_dir",
}
BACKUP_HELP = {
    "db_type": "postgres or mysql (the old backup.sh flag); default postgres",
    "env": "environment (development, staging, production); default development",
    "database": "target name under environments.<env>.databases (default: the only one)",
    "format": "postgres dump format: plain, custom (-Fc) or directory (-Fd); default from config",
    "compress": "gzip, zstd or none; default from config (backup.compress)",
    "level": "compression level (gzip 1-9, zstd 1-19); 0 = the compressor's default",
    "jobs": "parallel dump jobs (directory format only); default backup.jobs",
    "output_dir": (
        "directory for backups and the manifest (0700; yours or root's, not writable by "
        "others); default backup.output_dir"
    ),
    "encrypt": "encrypt with age to backup.recipients before the data leaves the pipeline",
    "host": "run the dump on this SSH host (ssh_config alias) and stream it back",
    "keep_remote": "with --host: keep the backup in backup.remote_dir on that host",
    "to": "also upload to this destination (backup.destinations); default: the env's backup_to",
    "no_local": "with --to: keep no local copy (hosts without disk)",
    "globals": "postgres: also back up the cluster's roles and tablespaces (a companion file)",
}
SELECT_HELP = {
    "env": "environment (default development)",
    "database": "target name under environments.<env>.databases (default: every target)",
    "output_dir": "backup directory; default backup.output_dir",
    "from_": "look at this destination (backup.destinations) instead of the local directory",
}
TRUST_HELP = (
    "with --from: accept the destination's own sha256 sidecars for objects the local manifest "
    "does not vouch for (uploaded from elsewhere); says so on stderr"
)


class EngineTask(OpsTask):
    """A task whose body is :func:`functools.partial` of a shared function; its flags are the
    partial's ``__signature__`` (Invoke would read ``partial.__call__``: ``*args, **kwargs``)."""

    def argspec(self, body: Callable[..., Any]) -> inspect.Signature:
        signature = inspect.signature(body)
        return signature.replace(parameters=list(signature.parameters.values())[1:])


def _backup(
    engine: str | None,
    c: Context,
    db_type: str | None = None,
    env: str | None = None,
    database: str | None = None,
    format: str | None = None,
    compress: str | None = None,
    level: int | None = None,
    jobs: int | None = None,
    output_dir: Path | None = None,
    encrypt: bool = False,
    host: str | None = None,
    keep_remote: bool = False,
    to: str | None = None,
    no_local: bool = False,
    globals: bool = False,
) -> None:
    from tasks.backup.run import backup

    flags = dict(
        env=env,
        database=database,
        format=format,
        compress=compress,
        level=level,
        jobs=jobs,
        output_dir=output_dir,
        encrypt=encrypt,
        host=host,
        keep_remote=keep_remote,
        to=to,
        no_local=no_local,
        globals=globals,
    )
    backup(c, engine or db_type or "postgres", flags)


def _engine_task(engine: str | None, name: str, doc: str, drop: tuple[str, ...], **kw: Any) -> Any:
    body = functools.partial(_backup, engine)
    signature = inspect.signature(_backup)
    params = [p for n, p in signature.parameters.items() if n != "engine" and n not in drop]
    body.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    body.__doc__ = doc
    helps = {k: v for k, v in BACKUP_HELP.items() if k not in drop}
    return task(
        body, name=name, klass=EngineTask, help=helps, flags=FLAG_KINDS, auto_shortflags=False, **kw
    )


postgres = _engine_task(
    "postgres",
    "postgres",
    "Back up a PostgreSQL database: pg_dump -> compress -> checksum, atomically.",
    ("db_type",),
)
mysql = _engine_task(
    "mysql",
    "mysql",
    "Back up a MariaDB/MySQL database (events, routines, triggers): mariadb-dump -> compress.",
    ("db_type", "format", "jobs", "globals"),
)
backup = _engine_task(
    None,
    "backup",
    "Back up a database (old interface: --db-type postgres|mysql).",
    (),
    default=True,
)


@task(
    flags=FLAG_KINDS,
    help={
        **SELECT_HELP,
        "file": "backup file to verify (with --from: an object name there)",
        "latest": "verify the newest backup (of --env / --database)",
        "restore_test": "also restore into a scratch database and compare it with the source",
        "identity": "age identity file (encrypted backups); default backup.identity",
        "trust_destination": TRUST_HELP,
    },
)
def verify(
    c: Context,
    file: str | None = None,
    latest: bool = False,
    restore_test: bool = False,
    env: str | None = None,
    database: str | None = None,
    identity: Path | None = None,
    output_dir: Path | None = None,
    from_: str | None = None,
    trust_destination: bool = False,
) -> None:
    """Verify a backup: checksum, every byte decompressed and read; --restore-test restores it."""
    from tasks.backup.verify import verify as run_verify

    run_verify(
        c,
        file=file,
        latest=latest,
        restore_test=restore_test,
        env=env,
        database=database,
        identity=identity,
        output_dir=output_dir,
        source=from_,
        trust_destination=trust_destination,
    )


@task(
    positional=["file"],
    flags=FLAG_KINDS,
    help={
        "file": "backup file to restore (with --from: an object name there)",
        "database": "database name to restore into",
        "force": "replace a non-empty database (drop and recreate it)",
        "yes": "do not ask for confirmation (production)",
        "env": "restore into this environment's target (default: the file's environment)",
        "identity": "age identity file (encrypted backups); default backup.identity",
        "jobs": "parallel restore jobs (directory format); default backup.jobs",
        "from_": "fetch the backup from this destination first (checksum-verified)",
        "no_owner": "postgres: do not restore object ownership (roles may not exist there)",
        "globals": "postgres: restore the set's roles and tablespaces first (needs a superuser)",
        "output_dir": "where a backup fetched with --from is staged; default backup.output_dir",
        "trust_destination": TRUST_HELP,
    },
)
def restore(
    c: Context,
    file: str,
    database: str | None = None,
    force: bool = False,
    yes: bool = False,
    env: str | None = None,
    identity: Path | None = None,
    jobs: int | None = None,
    from_: str | None = None,
    no_owner: bool = False,
    globals: bool = False,
    output_dir: Path | None = None,
    trust_destination: bool = False,
) -> None:
    """Restore a backup into a named database; stops at the first SQL error."""
    from tasks.backup.restore import restore as run_restore

    run_restore(
        c,
        file=file,
        database=database,
        force=force,
        yes=yes,
        env=env,
        identity=identity,
        jobs=jobs,
        source=from_,
        no_owner=no_owner,
        with_globals=globals,
        output_dir=output_dir,
        trust_destination=trust_destination,
    )


@task(
    name="list",
    flags=FLAG_KINDS,
    help={**SELECT_HELP, "check": "recompute every checksum (reads every file)"},
)
def list_(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    output_dir: Path | None = None,
    check: bool = False,
    from_: str | None = None,
) -> None:
    """List backups newest first: size, age, state (verified, sidecar, FAILED partials)."""
    from tasks.backup.catalog import list_backups

    list_backups(c, env=env, database=database, output_dir=output_dir, check=check, source=from_)


@task(flags=FLAG_KINDS, help=SELECT_HELP)
def prune(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    output_dir: Path | None = None,
    from_: str | None = None,
) -> None:
    """Delete backups outside backup.retention (never the newest verified) and stale partials."""
    from tasks.backup.prune import prune as run_prune

    run_prune(c, env=env, database=database, output_dir=output_dir, source=from_)


@task(
    help={
        **SELECT_HELP,
        "max_age": "CRITICAL when the newest is older (e.g. 26h); default backup.check.max_age",
        "warn_age": "WARNING when older than this (e.g. 25h); default backup.check.warn_age",
        "textfile": "also write node-exporter textfile metrics into this directory",
        "identity": "age identity file (encrypted backups); default backup.identity",
        "trust_destination": TRUST_HELP,
    },
)
def check(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    max_age: str | None = None,
    warn_age: str | None = None,
    from_: str | None = None,
    textfile: str | None = None,
    output_dir: str | None = None,
    identity: str | None = None,
    trust_destination: bool = False,
) -> None:
    """Nagios-style freshness check: newest backup younger than --max-age and verified (0/1/2/3)."""
    from tasks.backup.freshness import check as run_check

    run_check(
        c,
        env=env,
        database=database,
        max_age=max_age,
        warn_age=warn_age,
        source=from_,
        textfile=textfile,
        output_dir=output_dir,
        identity=identity,
        trust_destination=trust_destination,
    )


@task(
    flags=FLAG_KINDS,
    help={
        "env": "environment (default development)",
        "database": "target (default: the environment's only target)",
        "on_calendar": "systemd OnCalendar ('*-*-* 02:15:00'); default backup.schedule.on_calendar",
        "to": "upload to this destination (default environments.<env>.backup_to)",
        "max_age": "the check's --max-age (default backup.check.max_age)",
        "textfile": "the check's --textfile directory (default backup.check.textfile_dir)",
        "unit_dir": "where the units go; default backup.schedule.unit_dir",
        "cron": "print the equivalent crontab line instead of writing units",
        "remove": "stop and remove the timer, the service and the environment file",
        "drill": "the restore drill's units instead (backup.drill; default weekly: "
        "backup.drill.on_calendar)",
    },
)
def schedule(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    on_calendar: str | None = None,
    to: str | None = None,
    max_age: int | None = None,
    textfile: Path | None = None,
    unit_dir: Path | None = None,
    cron: bool = False,
    remove: bool = False,
    drill: bool = False,
) -> None:
    """Run backup, check and prune from a systemd timer (--cron: a crontab line; --remove)."""
    from tasks.backup.schedule import schedule as run_schedule

    run_schedule(
        c,
        env=env,
        database=database,
        on_calendar=on_calendar,
        to=to,
        max_age=max_age,
        textfile=textfile,
        unit_dir=unit_dir,
        cron=cron,
        remove=remove,
        drill=drill,
    )


@task(
    flags=FLAG_KINDS,
    help={
        "env": "environment (default development)",
        "database": "target under environments.<env>.databases (default: the only one)",
        "from_": "drill the newest backup at this destination (fetched as restore --from does)",
        "output_dir": "backup directory (and the evidence file); default backup.output_dir",
        "textfile": "write flowlet_backup_drill_* metrics here; default backup.check.textfile_dir",
        "identity": "age identity file (encrypted backups); default backup.identity",
        "trust_destination": TRUST_HELP,
    },
)
def drill(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    from_: str | None = None,
    output_dir: Path | None = None,
    textfile: Path | None = None,
    identity: Path | None = None,
    trust_destination: bool = False,
) -> None:
    """Restore drill: the newest backup into a scratch database, verified and timed (evidence)."""
    from tasks.backup.drill import drill as run_drill

    run_drill(
        c,
        env=env,
        database=database,
        source=from_,
        output_dir=output_dir,
        textfile=textfile,
        identity=identity,
        trust_destination=trust_destination,
    )


ns = Collection(
    "backup", backup, postgres, mysql, verify, restore, list_, prune, check, schedule, drill
)
