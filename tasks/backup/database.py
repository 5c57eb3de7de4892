"""SQL against a target's server (psql / mariadb client through the runner): existence and
emptiness checks, scratch databases, row counts and object counts for restore tests."""

from __future__ import annotations

import re

from tasks.backup.plan import Stage, mysql_client_binary, mysql_connection_args, pg_connection_args
from tasks.backup.stream import StageError, capture_stages, describe_code
from tasks.backup.targets import Credentials, DatabaseTarget
from tasks.core.errors import ConfigError, OpsError

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
PG_OBJECTS = (
    "select 'relkind ' || c.relkind::text, count(*) from pg_class c join pg_namespace n "
    "on n.oid = c.relnamespace where n.nspname not in ('pg_catalog', 'information_schema') "
    "and n.nspname not like 'pg_toast%' group by 1 union all "
    "select 'functions', count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
    "where n.nspname not in ('pg_catalog', 'information_schema') union all "
    "select 'triggers', count(*) from pg_trigger where not tgisinternal order by 1"
)
MYSQL_OBJECTS = (
    "select 'views', count(*) from information_schema.views where table_schema = '{db}' "
    "union all select 'triggers', count(*) from information_schema.triggers "
    "where trigger_schema = '{db}' union all select concat('routines ', routine_type), count(*) "
    "from information_schema.routines where routine_schema = '{db}' group by routine_type "
    "union all select 'events', count(*) from information_schema.events where event_schema = '{db}'"
)


def check_dbname(name: str, *, flag: str) -> str:
    if not DBNAME_RE.fullmatch(name):
        raise ConfigError(
            f"{flag}: {name!r} is not valid; valid: a database name (letters, digits, _; "
            "at most 63 characters, not starting with a digit)"
        )
    return name


class Session:
    """SQL against one target's server, with its credentials."""

    def __init__(self, target: DatabaseTarget, creds: Credentials) -> None:
        self.target, self.creds = target, creds

    def client(self, dbname: str) -> list[str]:
        if self.target.engine == "postgres":
            connection = pg_connection_args(self.target, dbname)
            return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *connection]
        connection = mysql_connection_args(self.target, self.creds.argv)
        return [mysql_client_binary(), *connection, f"--database={dbname}"]  # options follow

    def query(self, sql: str, dbname: str | None = None) -> list[list[str]]:
        if self.target.engine == "postgres":
            argv = [*self.client(dbname or "postgres"), "-A", "-t", "-F", "\t"]
        else:
            argv = [*self.client(dbname or "information_schema"), "-N", "-B"]
        try:
            out = capture_stages(
                [Stage(argv[0], tuple(argv), secret=True)], self.creds, input=sql.encode()
            )
        except StageError as error:
            raise OpsError(
                f"{argv[0]} failed ({describe_code(error.code)}): {error.last_line}",
                code=error.exit_code,
            ) from None
        text = out.decode("utf-8", "replace")
        return [line.split("\t") for line in text.splitlines() if line]

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

    def roles(self) -> set[str]:
        """Role names as ``quote_ident`` spells them (postgres)."""
        return {row[0] for row in self.query("select quote_ident(rolname) from pg_roles")}

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

    def objects(self, dbname: str) -> dict[str, int]:
        """Counts of tables, views, sequences, functions/routines, triggers, events."""
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            rows = self.query(PG_OBJECTS, dbname)
        else:
            rows = self.query(MYSQL_OBJECTS.format(db=dbname))  # nosec B608 - checked name
        return {row[0]: int(row[1]) for row in rows if int(row[1])}
