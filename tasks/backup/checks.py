"""Database-side checks: emptiness, row counts, scratch databases, restore and verify pipelines."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from tasks.core.errors import OpsError

from tasks.backup.pipeline import (
    MYSQL_TRAILER,
    PG_TRAILER,
    Stage,
    dump_kind,
    mysql_client_binary,
    mysql_connection_args,
    pg_connection_args,
    read_stages,
)
from tasks.backup.stream import StageError, run_pipeline
from tasks.backup.targets import DatabaseTarget

DBNAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PG_USER_RELATIONS = (
    "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
    "where n.nspname not in ('pg_catalog', 'information_schema') "
    "and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'"
)
PG_ROW_COUNTS = (
    "select format('select %L, count(*) from %I.%I', n.nspname || '.' || c.relname, "
    "n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
    "where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') "
    "and n.nspname not like 'pg_toast%' order by 1 \\gexec\n"
)


def check_dbname(name: str, *, flag: str) -> str:
    if not DBNAME_RE.match(name):
        raise OpsError(f"{flag}: {name!r} is not a valid database name (letters, digits, _)")
    return name


class Session:
    """SQL against one target's server, with credentials already in ``env`` / ``extra``."""

    def __init__(self, target: DatabaseTarget, env: Mapping[str, str], extra: list[str]) -> None:
        self.target, self.env, self.extra = target, dict(env), extra

    def client(self, dbname: str) -> list[str]:
        if self.target.engine == "postgres":
            connection = pg_connection_args(self.target, dbname)
            return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *connection]
        return [mysql_client_binary(), *mysql_connection_args(self.target, self.extra), dbname]

    def query(self, sql: str, dbname: str | None = None) -> list[list[str]]:
        if self.target.engine == "postgres":
            argv = [*self.client(dbname or "postgres"), "-A", "-t", "-F", "\t"]
        else:
            argv = [*self.client(dbname or "information_schema"), "-N", "-B"]
        done = subprocess.run(
            argv, input=sql, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise OpsError(f"{argv[0]} failed (exit {done.returncode}): {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    # Database names reaching SQL text are checked against DBNAME_RE first (names only).
    def exists(self, dbname: str) -> bool:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            sql = f"select 1 from pg_database where datname = '{dbname}'"  # nosec B608
        else:
            sql = "select 1 from information_schema.schemata where schema_name = "  # nosec B608
            sql += f"'{dbname}'"
        return bool(self.query(sql))

    def relations(self, dbname: str) -> int:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            return int(self.query(PG_USER_RELATIONS, dbname)[0][0])
        sql = "select count(*) from information_schema.tables where table_schema = "  # nosec B608
        sql += f"'{dbname}'"
        return int(self.query(sql)[0][0])

    def create(self, dbname: str) -> None:
        check_dbname(dbname, flag="database")
        quote = '"' if self.target.engine == "postgres" else "`"
        self.query(f"create database {quote}{dbname}{quote}")  # nosec B608

    def drop(self, dbname: str) -> None:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            self.query(f'drop database if exists "{dbname}" with (force)')
        else:
            self.query(f"drop database if exists `{dbname}`")  # nosec B608

    def row_counts(self, dbname: str) -> dict[str, int]:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            rows = self.query(PG_ROW_COUNTS, dbname)
        else:
            listing = "select table_name from information_schema.tables where "  # nosec B608
            listing += f"table_schema = '{dbname}' and table_type = 'BASE TABLE' order by 1"
            tables = self.query(listing)
            if not tables:
                return {}
            sql = " union all ".join(
                f"select '{t[0]}', count(*) from `{dbname}`.`{t[0]}`" for t in tables  # nosec B608
            )
            rows = self.query(sql)
        return {row[0]: int(row[1]) for row in rows}


def _tail_sink(keep: list[bytes]) -> Callable[[bytes], None]:
    def sink(chunk: bytes) -> None:
        keep[0] = (keep[0] + chunk)[-4096:]

    return sink


def _list_custom(stages: list[Stage], handle: IO[bytes]) -> None:
    """Decompress the whole stream (so all of it is checked) while ``pg_restore --list`` reads
    the archive's table of contents from the front of it."""
    listing = subprocess.Popen(
        ["pg_restore", "--list"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    if listing.stdin is None or listing.stderr is None:  # pragma: no cover - PIPE always set
        raise RuntimeError("pg_restore pipes missing")
    feeding = [True]

    def sink(chunk: bytes) -> None:
        if feeding[0]:
            try:
                listing.stdin.write(chunk)  # type: ignore[union-attr]
            except BrokenPipeError:
                feeding[0] = False  # it has read the table of contents; keep draining

    try:
        run_pipeline(stages or [Stage("cat", ("cat",))], os.environ, sink=sink, stdin=handle)
    finally:
        try:
            listing.stdin.close()
        except BrokenPipeError:
            pass
        error = listing.stderr.read().decode("utf-8", "replace").strip()
        listing.stderr.close()
        listing.wait()
    if listing.returncode != 0:
        raise StageError(Stage("pg_restore", ("pg_restore", "--list")), listing.returncode, error)


def check_readable(path: Path, identity: str | None) -> str:
    """Decrypt/decompress the whole stream and check the archive; return what was checked."""
    stages = read_stages(path, identity)
    kind = dump_kind(path)
    with open(path, "rb") as handle:
        try:
            if kind == "plain":
                tail = [b""]
                reader = stages or [Stage("cat", ("cat",))]
                run_pipeline(reader, os.environ, sink=_tail_sink(tail), stdin=handle)
                if PG_TRAILER not in tail[0] and MYSQL_TRAILER not in tail[0]:
                    raise OpsError(f"{path.name}: the dump's completion trailer is missing (truncated)")
                return "stream intact, completion trailer present"
            if kind == "custom":
                _list_custom(stages, handle)
                return "stream intact, pg_restore --list reads the archive"
            with tempfile.TemporaryDirectory(prefix="flowlet-verify-") as tmp:
                untar = Stage("tar", ("tar", "-x", "-f", "-", "-C", tmp))
                run_pipeline([*stages, untar], os.environ, stdin=handle)
                listing = Stage("pg_restore", ("pg_restore", "--list", tmp))
                run_pipeline([listing], os.environ, sink=lambda chunk: None)
            return "stream intact, pg_restore --list reads the directory archive"
        except StageError as error:
            detail = error.stderr.splitlines()[-1] if error.stderr else ""
            raise OpsError(f"{path.name}: {error}: {detail}", code=error.exit_code) from None


def restore_into(
    session: Session, path: Path, dbname: str, identity: str | None, jobs: int
) -> None:
    """Stream ``path`` into the (existing, empty) database ``dbname``; stop at the first error."""
    target = session.target
    stages = read_stages(path, identity)
    kind = dump_kind(path)
    try:
        with open(path, "rb") as handle:
            if target.engine == "mysql" or kind == "plain":
                client = [*session.client(dbname)]
                if target.engine == "postgres":
                    client += ["--single-transaction", "-o", "/dev/null"]
                run_pipeline([*stages, Stage(client[0], tuple(client))], session.env, stdin=handle)
            elif kind == "custom":
                restore = ("pg_restore", "--exit-on-error", "--single-transaction",
                           *pg_connection_args(target, dbname))  # fmt: skip
                run_pipeline([*stages, Stage("pg_restore", restore)], session.env, stdin=handle)
            else:
                with tempfile.TemporaryDirectory(prefix="flowlet-restore-") as tmp:
                    untar = Stage("tar", ("tar", "-x", "-f", "-", "-C", tmp))
                    run_pipeline([*stages, untar], session.env, stdin=handle)
                    restore = ("pg_restore", "--exit-on-error", f"--jobs={max(jobs, 1)}",
                               *pg_connection_args(target, dbname), tmp)  # fmt: skip
                    run_pipeline([Stage("pg_restore", restore)], session.env)
    except StageError as error:
        if error.stderr:
            import sys

            sys.stderr.write(error.stderr + "\n")
        raise OpsError(f"restore into {dbname} failed: {error}", code=error.exit_code) from None
    if session.relations(dbname) == 0:
        raise OpsError(f"restore into {dbname} restored nothing: the database is still empty")
