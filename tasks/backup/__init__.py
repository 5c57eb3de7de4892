"""Backups that never lie: ``backup.postgres``, ``backup.mysql``, verify, restore, list, prune.

Dump -> compress -> (encrypt) -> checksum in one streamed pass; every stage's exit status is
checked; output lands atomically at its final name with a ``.sha256`` sidecar, or not at all.

This module holds only the task definitions (flags, help, config defaults) so that ``inv
--list`` stays light: each task imports its machinery (:mod:`.flows`, :mod:`.inventory`) when
it runs.
"""

from __future__ import annotations

from typing import Any

from invoke import Collection, Context
from tasks.core.errors import OpsError

from tasks.core.task import task

BACKUP_HELP = {
    "env": "environment (development, staging, production); default development",
    "database": "target name under environments.<env>.databases (default: the only one)",
    "format": "postgres dump format: plain, custom (-Fc) or directory (-Fd); default from config",
    "compress": "gzip, zstd or none; default from config (backup.compress)",
    "level": "compression level (gzip 1-9, zstd 1-19); 0 = config / compressor default",
    "jobs": "parallel dump jobs (directory format only); 0 = from config",
    "output_dir": "directory for backups (created 0700); default from config (backups/)",
    "encrypt": "encrypt with age to backup.recipients before the data touches disk",
    "host": "run the dump on this SSH host (ssh_config alias) and stream it back",
    "keep_remote": "with --host: keep the backup in backup.remote_dir on that host",
}
MYSQL_HELP = {k: v for k, v in BACKUP_HELP.items() if k not in ("format", "jobs")}
COMMON_HELP = {
    "env": "environment to look at (default: every environment)",
    "database": "target name under environments.<env>.databases (default: every target)",
    "output_dir": "backup directory; default from config (backup.output_dir)",
}
VERIFY_HELP = {
    **COMMON_HELP,
    "file": "backup file to verify",
    "latest": "verify the newest backup",
    "restore_test": "restore into a scratch database and compare row counts with the source",
    "identity": "age identity file (encrypted backups); default backup.identity",
}
RESTORE_HELP = {
    "file": "backup file to restore",
    "database": "database name to restore into",
    "force": "replace a non-empty database (drop and recreate it)",
    "yes": "do not ask for confirmation (production)",
    "env": "override the file's environment",
    "identity": "age identity file (encrypted backups); default backup.identity",
    "jobs": "parallel restore jobs (directory format)",
}


@task(help=BACKUP_HELP)
def postgres(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    format: str | None = None,
    compress: str | None = None,
    level: int = 0,
    jobs: int = 0,
    output_dir: str | None = None,
    encrypt: bool = False,
    host: str | None = None,
    keep_remote: bool = False,
) -> None:
    """Back up a PostgreSQL database: pg_dump -> compress -> checksum, atomically."""
    from tasks.backup.flows import run_backup

    run_backup(
        c, "postgres", env, database, format, compress, level, jobs, output_dir, encrypt, host,
        keep_remote,
    )  # fmt: skip


@task(help=MYSQL_HELP)
def mysql(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    compress: str | None = None,
    level: int = 0,
    output_dir: str | None = None,
    encrypt: bool = False,
    host: str | None = None,
    keep_remote: bool = False,
) -> None:
    """Back up a MariaDB/MySQL database: mariadb-dump --single-transaction -> compress."""
    from tasks.backup.flows import run_backup

    run_backup(
        c, "mysql", env, database, None, compress, level, 0, output_dir, encrypt, host,
        keep_remote,
    )  # fmt: skip


@task(default=True, help={**BACKUP_HELP, "db_type": "postgres or mysql (the old backup.sh flag)"})
def backup(
    c: Context,
    db_type: str = "postgres",
    env: str | None = None,
    database: str | None = None,
    format: str | None = None,
    compress: str | None = None,
    level: int = 0,
    jobs: int = 0,
    output_dir: str | None = None,
    encrypt: bool = False,
    host: str | None = None,
    keep_remote: bool = False,
) -> None:
    """Back up a database (old interface: --db-type postgres|mysql)."""
    if db_type not in ("postgres", "mysql"):
        raise OpsError(f"--db-type: {db_type!r} is not valid; valid: postgres, mysql")
    from tasks.backup.flows import run_backup

    run_backup(
        c, db_type, env, database, format, compress, level, jobs, output_dir, encrypt, host,
        keep_remote,
    )  # fmt: skip


@task(help=VERIFY_HELP)
def verify(
    c: Context,
    file: str | None = None,
    latest: bool = False,
    restore_test: bool = False,
    env: str | None = None,
    database: str | None = None,
    identity: str | None = None,
    output_dir: str | None = None,
) -> None:
    """Verify a backup: checksum, stream, archive readable; --restore-test restores it."""
    from tasks.backup import inventory

    inventory.verify(c, file, latest, restore_test, env, database, identity, output_dir)


@task(positional=["file"], help=RESTORE_HELP)
def restore(
    c: Context,
    file: str,
    database: str | None = None,
    force: bool = False,
    yes: bool = False,
    env: str | None = None,
    identity: str | None = None,
    jobs: int = 2,
) -> None:
    """Restore a backup into a named database; stops at the first SQL error."""
    from tasks.backup import inventory

    inventory.restore(c, file, database, force, yes, env, identity, jobs)


@task(name="list", help={**COMMON_HELP, "check": "recompute every checksum (reads every file)"})
def list_(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    output_dir: str | None = None,
    check: bool = False,
) -> None:
    """List backups newest first: size, age, checksum state."""
    from tasks.backup import inventory

    inventory.list_backups(c, env, database, output_dir, check)


@task(help=COMMON_HELP)
def prune(
    c: Context, env: str | None = None, database: str | None = None, output_dir: str | None = None
) -> None:
    """Delete backups outside the retention (backup.retention); never the newest verified."""
    from tasks.backup import inventory

    inventory.prune(c, env, database, output_dir)


ns = Collection("backup", backup, postgres, mysql, verify, restore, list_, prune)
