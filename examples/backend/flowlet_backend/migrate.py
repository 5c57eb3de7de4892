"""Versioned schema migrations of the ledger: ``python -m flowlet_backend.migrate [--check]``.

``migrations/NNNN_name.sql`` are applied in order of NNNN, each in one transaction that also
records it in ``schema_migrations`` (a failing one is rolled back whole: the version stays).
The run holds a PostgreSQL advisory lock (``pg_advisory_lock``), so migrations started at once
(several pods, a Helm hook and a dev stack) run one after the other and the later ones find
nothing to do; the lock is the session's, so a killed migrate leaves no stale lock behind.
Running it again is a no-op. A database made by the backend before migrations existed (it
created its tables at startup) is adopted: 0001 and 0002 are written to accept that schema.
After the migrations, :func:`ledger.non_negative` adds the balance CHECK once no balance is
negative (it reports the accounts otherwise, and the next run tries again).

``--check`` changes nothing: exit 0 when the database is up to date, 3 when it is behind.
The backend runs the same check at startup and refuses to serve a database that is behind.
Exit 1: a migration failed; 2: the database cannot be reached.

Hand-written (about 100 lines) rather than a library: alembic needs SQLAlchemy, and
yoyo-migrations brings its own dependencies and a lock table of its own; here the example's
only dependency stays psycopg, the migrations stay plain SQL files, and the lock is the
database's own.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from . import ledger
from .db import connect

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FILE_NAME = re.compile(r"^([0-9]{4})_([a-z0-9_]+)\.sql$")
LOCK = 0x466C6F776C6574  # "Flowlet": the advisory lock key every migrate takes
COMMAND = "python -m flowlet_backend.migrate"
VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


class Failed(Exception):
    def __init__(self, item: Migration, error: psycopg.Error) -> None:
        lines = str(error).strip().splitlines()
        super().__init__(f"{item.name}: {lines[0] if lines else type(error).__name__}")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def available(directory: Path = MIGRATIONS) -> list[Migration]:
    """The migration files, by version; a stray file or a version used twice is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith((".", "__")):  # editor and bytecode droppings
            continue
        match = FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: not a migration name (NNNN_lowercase_name.sql)")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"{path}: version {version} is also {found[version].path.name}")
        found[version] = Migration(version, path.stem, path)
    return [found[v] for v in sorted(found)]


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The highest applied version (0: no ``schema_migrations`` table, or an empty one)."""
    if conn.execute("SELECT to_regclass('schema_migrations') IS NULL").fetchone() == (True,):
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def behind(conn: psycopg.Connection[Any]) -> str | None:
    """Why the database is behind this code (one line naming the command), or None."""
    have, want = current_version(conn), available()[-1].version
    if have >= want:
        return None
    return f"the database schema is at version {have}, this backend needs {want}: run {COMMAND}"


def migrate(
    conn: psycopg.Connection[Any], say: Any = print, directory: Path = MIGRATIONS
) -> list[Migration]:
    """Apply what is pending (under the advisory lock); the migrations applied."""
    if conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK,)).fetchone() != (True,):
        say("migrate: another migration holds the lock: waiting for it")
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
    try:
        if conn.execute("SELECT to_regclass('schema_migrations') IS NULL").fetchone() == (True,):
            if conn.execute("SELECT to_regclass('accounts') IS NOT NULL").fetchone() == (True,):
                say("migrate: tables without schema_migrations: adopting them")
            conn.execute(VERSION_TABLE)
        have = current_version(conn)
        done = []
        for item in available(directory):
            if item.version <= have:
                continue
            try:
                with conn.transaction():
                    conn.execute(item.path.read_text(encoding="utf-8"))  # type: ignore
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (item.version, item.name),
                    )
            except psycopg.Error as exc:
                raise Failed(item, exc) from exc
            say(f"migrate: applied {item.name}")
            done.append(item)
        warning = ledger.non_negative(conn)
        if warning:
            print(f"migrate: {warning}", file=sys.stderr, flush=True)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print(f"usage: {COMMAND} [--check]", file=sys.stderr)
        return 2
    try:
        available()
    except (OSError, ValueError) as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    try:
        conn = connect()
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        print(f"migrate: cannot connect: {lines[0] if lines else exc!r}", file=sys.stderr)
        return 2
    with conn:
        if check:
            why = behind(conn)
            print(f"migrate: {why}" if why else f"migrate: up to date ({current_version(conn)})")
            return 3 if why else 0
        try:
            done = migrate(conn, lambda line: print(line, flush=True))
        except Failed as exc:
            kept = current_version(conn)
            print(
                f"migrate: {exc}; rolled back: the schema stays at version {kept}", file=sys.stderr
            )
            return 1
        version = current_version(conn)
        print(f"migrate: schema at version {version}" + ("" if done else " (nothing to do)"))
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
