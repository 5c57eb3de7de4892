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
    "select format('select %L, count(*) from %I.%I', "
    "encode(convert_to(n.nspname || '.' || c.relname, 'UTF8'), 'hex'), n.nspname, c.relname) "
    "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
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
    "select 'views', count(*) from information_schema.views where table_schema = {db} "
    "union all select 'triggers', count(*) from information_schema.triggers "
    "where trigger_schema = {db} union all select concat('routines ', routine_type), count(*) "
    "from information_schema.routines where routine_schema = {db} group by routine_type "
    "union all select 'events', count(*) from information_schema.events where event_schema = {db}"
)
# Table names never become SQL text here: the server quotes them (backticks doubled) into a
# statement it prepares itself, labelling each count with the name's hex (decoded here).
MYSQL_ROW_COUNTS = (
    "set session group_concat_max_len = 4294967295;\n"
    "select group_concat(concat('select ''', hex(table_name), ''', count(*) from `', "
    "replace(table_schema, '`', '``'), '`.`', replace(table_name, '`', '``'), '`') "
    "order by table_name separator ' union all ') into @flowlet_row_counts "
    "from information_schema.tables where table_schema = {db} and table_type = 'BASE TABLE';\n"
    "set @flowlet_row_counts = "
    "coalesce(@flowlet_row_counts, 'select null, null from dual where false');\n"
    "prepare flowlet_row_counts from @flowlet_row_counts;\n"
    "execute flowlet_row_counts;\n"
    "deallocate prepare flowlet_row_counts;\n"
)


def mysql_literal(value: str) -> str:
    """A MySQL/MariaDB string literal meaning ``value`` whatever the sql_mode (a hex literal:
    no quote or backslash to escape)."""
    return f"convert(x'{value.encode().hex()}' using utf8mb4)"


def mysql_ident(name: str) -> str:
    """A MySQL/MariaDB quoted identifier (backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def pg_ident(name: str) -> str:
    """A PostgreSQL quoted identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def pg_literal(value: str) -> str:
    """A PostgreSQL string literal (``standard_conforming_strings`` on, the default)."""
    return "'" + value.replace("'", "''") + "'"


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

    # Database names are checked against DBNAME_RE, and quoted as literals or identifiers.
    def exists(self, dbname: str) -> bool:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            sql = f"select 1 from pg_database where datname = {pg_literal(dbname)}"  # nosec B608
        else:
            sql = "select 1 from information_schema.schemata where schema_name = "  # nosec B608
            sql += mysql_literal(dbname)
        return bool(self.query(sql))

    def relations(self, dbname: str) -> int:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            return int(self.query(PG_USER_RELATIONS, dbname)[0][0])
        sql = "select count(*) from information_schema.tables where table_schema = "  # nosec B608
        sql += mysql_literal(dbname)
        return int(self.query(sql)[0][0])

    def create(self, dbname: str) -> None:
        check_dbname(dbname, flag="database")
        quoted = pg_ident(dbname) if self.target.engine == "postgres" else mysql_ident(dbname)
        self.query(f"create database {quoted}")

    def drop(self, dbname: str) -> None:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            self.query(f"drop database if exists {pg_ident(dbname)} with (force)")
        else:
            self.query(f"drop database if exists {mysql_ident(dbname)}")

    def roles(self) -> set[str]:
        """Role names as ``quote_ident`` spells them (postgres)."""
        return {row[0] for row in self.query("select quote_ident(rolname) from pg_roles")}

    def row_counts(self, dbname: str) -> dict[str, int]:
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            rows = self.query(PG_ROW_COUNTS, dbname)
        else:
            rows = self.query(MYSQL_ROW_COUNTS.format(db=mysql_literal(dbname)))
        # Labels are hex: a name with a tab or a newline cannot split a row.
        return {bytes.fromhex(row[0]).decode("utf-8", "replace"): int(row[1]) for row in rows}

    def objects(self, dbname: str) -> dict[str, int]:
        """Counts of tables, views, sequences, functions/routines, triggers, events."""
        check_dbname(dbname, flag="database")
        if self.target.engine == "postgres":
            rows = self.query(PG_OBJECTS, dbname)
        else:
            rows = self.query(MYSQL_OBJECTS.format(db=mysql_literal(dbname)))
        return {row[0]: int(row[1]) for row in rows if int(row[1])}
