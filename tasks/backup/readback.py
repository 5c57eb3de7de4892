"""Pure planning of reading a backup back: decrypt/decompress stages, full reads (verify),
the restore clients, and the globals script filter. Nothing here runs anything."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tasks.backup.plan import Stage, mysql_client_binary, mysql_connection_args, pg_connection_args
from tasks.backup.targets import DatabaseTarget
from tasks.core.errors import ConfigError

PG_TRAILER = b"-- PostgreSQL database dump complete"
PG_GLOBALS_TRAILER = b"-- PostgreSQL database cluster dump complete"
MYSQL_TRAILER = b"-- Dump completed"
MYSQL_RESTORE_SAFETY = ("--sandbox", "--local-infile=0")
# Drops "ALTER ... OWNER TO ...;" lines of a plain dump outside COPY data (restore --no-owner).
NO_OWNER_AWK = (
    r"/^COPY .* FROM stdin;$/ {copy = 1} "
    r"copy && /^\\\.$/ {copy = 0; print; next} "
    r"!copy && /^ALTER .* OWNER TO .*;$/ {next} {print}"
)


def read_stages(name: str, identity: str | None) -> list[Stage]:
    """Stages that turn a backup file back into the dump stream (decrypt, decompress)."""
    stages: list[Stage] = []
    if name.endswith(".age"):
        if not identity:
            raise ConfigError(f"--identity: {name} is encrypted; give the age identity file")
        stages.append(Stage("age", ("age", "-d", "-i", identity)))
        name = name[: -len(".age")]
    if name.endswith(".gz"):
        stages.append(Stage("gzip", ("gzip", "-d", "-c")))
    elif name.endswith(".zst"):
        stages.append(Stage("zstd", ("zstd", "-q", "-d", "-c")))
    return stages


def untar_stage(workdir: Path) -> Stage:
    return Stage("tar", ("tar", "-x", "-f", "-", "-C", str(workdir)))


def read_all_stage(kind: str, workdir: Path | None = None) -> Stage:
    """``pg_restore -f /dev/null``: reads every byte of a custom archive (stdin) or of an
    extracted directory archive (every data file decompressed), writing nothing."""
    argv = ["pg_restore", "-f", "/dev/null"]
    if kind == "directory" and workdir is not None:
        argv += ["--format=directory", "--", str(workdir)]
    return Stage("pg_restore", tuple(argv))


def restore_stage(
    target: DatabaseTarget,
    kind: str,
    dbname: str,
    *,
    jobs: int = 1,
    no_owner: bool = False,
    workdir: Path | None = None,
    client_extra: Sequence[str] = (),
) -> list[Stage]:
    """The stages that load a dump stream (or an extracted directory) into ``dbname``."""
    if target.engine == "mysql":
        client = [mysql_client_binary(), *mysql_connection_args(target, client_extra)]
        # No client command (system, \!, tee, source) and no LOCAL INFILE from a dump's text.
        client += [*MYSQL_RESTORE_SAFETY, "--", dbname]
        return [Stage(client[0], tuple(client), secret=True)]
    owner = ["--no-owner"] if no_owner else []
    if kind == "plain":
        psql = (
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            *pg_connection_args(target, dbname),
            "--single-transaction",
            "-o",
            "/dev/null",
        )
        stages = [Stage("awk", ("awk", NO_OWNER_AWK))] if no_owner else []
        return [*stages, Stage("psql", psql, secret=True)]
    if kind == "custom":
        argv = (
            "pg_restore",
            "--exit-on-error",
            "--single-transaction",
            *owner,
            *pg_connection_args(target, dbname),
        )
        return [Stage("pg_restore", argv, secret=True)]
    argv = (
        "pg_restore",
        "--exit-on-error",
        f"--jobs={max(jobs, 1)}",
        *owner,
        *pg_connection_args(target, dbname),
        "--format=directory",
        "--",
        str(workdir),
    )
    return [Stage("pg_restore", argv, secret=True, forks=jobs > 1)]


def globals_restore_stage(target: DatabaseTarget) -> Stage:
    argv = (
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        *pg_connection_args(target, "postgres"),
        "-o",
        "/dev/null",
    )
    return Stage("psql", argv, secret=True)


_CREATE_ROLE = re.compile(r"^CREATE ROLE (.+);$")
_ALTER_ROLE_WITH = re.compile(r"^ALTER ROLE (.+?) WITH .*;$")


def globals_for_existing(script: str, existing: set[str]) -> str:
    """A globals script without CREATE ROLE / ALTER ROLE ... WITH for roles that exist
    already (``existing``: names as ``quote_ident`` spells them): a fresh cluster gets the
    missing roles, existing ones (the superuser, the restoring user) are left alone."""
    kept = []
    for line in script.splitlines(keepends=True):
        match = _CREATE_ROLE.match(line.rstrip("\n")) or _ALTER_ROLE_WITH.match(line.rstrip("\n"))
        if match is not None and match.group(1) in existing:
            continue
        kept.append(line)
    return "".join(kept)
