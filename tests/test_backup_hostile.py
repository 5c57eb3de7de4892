"""Hostile database contents, from the ``inv`` command line: object names that are SQL
(quotes, backticks, ``;``, newlines, unicode) stay data; a forged plain dump with client
meta-commands (``\\!``, ``\\o |cmd``, ``\\copy ... program``, ``system``) is refused before it runs
anything."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_inv
from fixtures_backup import MariaServer, PgServer, mysql_target, pg_target, write_config

from tasks.backup.sqlguard import guard_script, psql_restricts
from tasks.core.errors import Refused

pytestmark = pytest.mark.slow

PWNED = "pwned_" + uuid.uuid4().hex[:6]
HOSTILE_TABLES = [
    f"x',1;create database if not exists {PWNED};select 'y",
    f"a`b`;create database {PWNED};--x",
    'new\nline\ttab\\back"dq',
    "caf\u00e9 \u540d\u524d \u20ac",
]
HOSTILE_VIEW = f"v'`;\ncreate database {PWNED};#"
HOSTILE_ROUTINE = f"r'`;drop database {PWNED};\u00e9"
HOSTILE_DATABASE = f"d'`;create database {PWNED};#\u00e9"


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "''") + "'"


def as_app(db: MariaServer, dbname: str, password: str, sql: str) -> None:
    """Run ``sql`` as the low-privilege app account (only ``dbname``'s objects)."""
    argv = [
        "mariadb",
        "--protocol=TCP",
        "--default-character-set=utf8mb4",
        "-h",
        db.host,
        "-P",
        str(db.port),
        "-u",
        "app_" + dbname[-6:],
        f"-p{password}",
        dbname,
    ]
    subprocess.run(argv, input=sql, text=True, check=True, capture_output=True)


def mysql_counts(db: MariaServer, dbname: str) -> dict[str, int]:
    names = db.sql(
        "select hex(table_name) from information_schema.tables where table_schema = "
        f"'{dbname}' and table_type = 'BASE TABLE'"
    ).split()
    counts = {}
    for encoded in names:
        name = bytes.fromhex(encoded).decode()
        counts[name] = int(db.sql(f"select count(*) from {ident(dbname)}.{ident(name)}"))
    return counts


@pytest.fixture
def hostile_mysql(
    mariadb_server: MariaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """A database whose app account created hostile table, view, routine, trigger names; a
    hostile database name beside it."""
    db = mariadb_server
    dbname = "hostile_" + uuid.uuid4().hex[:6]
    password = uuid.uuid4().hex
    app = f"app_{dbname[-6:]}@'127.0.0.1'"
    db.sql(
        f"create database {dbname}; create user {app} identified by '{password}';"
        f"grant all on {dbname}.* to {app};"
        f"create database {ident(HOSTILE_DATABASE)};"
        f"create table {ident(HOSTILE_DATABASE)}.{ident(HOSTILE_TABLES[0])} (id int);"
    )
    sql = []
    for number, name in enumerate(HOSTILE_TABLES, start=1):
        sql.append(
            f"create table {ident(name)} (id int primary key, {ident(name + 'c')} text) "
            "default charset utf8mb4;"
        )
        sql.append(
            f"insert into {ident(name)} select seq, {literal(name)} from seq_1_to_{number * 7};"
        )
    first = ident(HOSTILE_TABLES[0])
    sql.append(f"create view {ident(HOSTILE_VIEW)} as select count(*) as n from {first};")
    sql.append(f"create function {ident(HOSTILE_ROUTINE)}() returns int return 7;")
    sql.append(
        f"create trigger {ident(HOSTILE_ROUTINE + 't')} before insert on {first} "
        "for each row set new.id = new.id;"
    )
    as_app(db, dbname, password, "\n".join(sql))
    monkeypatch.setenv("FLOWLET_MYSQL_PASSWORD", db.password)
    config = write_config(tmp_path / "invoke.yaml", {"hostile": mysql_target(db, dbname)})
    yield config, dbname
    db.sql(
        f"drop database if exists {dbname}; drop user {app}; drop database if exists {PWNED};"
        f"drop database if exists {ident(HOSTILE_DATABASE)}"
    )


def test_mysql_hostile_names_stay_data(
    mariadb_server: MariaServer, hostile_mysql: tuple[Path, str]
) -> None:
    """Backup, verify --restore-test and restore of hostile names: no injected statement runs,
    the row counts are right and the restored database is the source's."""
    db = mariadb_server
    config, dbname = hostile_mysql
    source = mysql_counts(db, dbname)
    assert sorted(source) == sorted(HOSTILE_TABLES)
    assert sorted(source.values()) == [7, 14, 21, 28]
    done = run_inv(["-f", str(config), "backup.mysql", "--database", "hostile"])
    assert done.returncode == 0, done.stderr
    done = run_inv(["-f", str(config), "backup.verify", "--latest", "--restore-test"])
    assert done.returncode == 0, done.stderr
    assert "restore test ok (4 tables, row counts and 3 objects match)" in done.stdout
    (backup,) = (config.parent / "backups").glob("*.sql.gz")
    target = "restored_" + uuid.uuid4().hex[:8]
    done = run_inv(["-f", str(config), "backup.restore", str(backup), "--database", target])
    assert done.returncode == 0, done.stderr
    assert f"into {target}: 4 tables" in done.stdout
    try:
        assert mysql_counts(db, target) == source
        assert db.objects(target) == db.objects(dbname)
        assert db.schema(target) == db.schema(dbname)
        for name in HOSTILE_TABLES:
            query = f"select group_concat({ident(name + 'c')}) from "
            assert db.sql(query + f"{ident(target)}.{ident(name)}") == db.sql(
                query + f"{ident(dbname)}.{ident(name)}"
            )
    finally:
        db.sql(f"drop database if exists {target}")
    assert db.sql(f"show databases like '{PWNED}'") == ""


def forge(out: Path, name: str, sql: str) -> Path:
    """A forged plain dump with a matching sidecar (whoever can write one can write both)."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = gzip.compress(sql.encode())
    path = out / name
    path.write_bytes(data)
    (out / f"{name}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    return path


PG_HEAD = (
    "--\n-- PostgreSQL database dump\n--\n\nSET standard_conforming_strings = on;\n"
    "CREATE TABLE public.before_bad (a integer, b text);\n"
    "COPY public.before_bad (a, b) FROM stdin;\n1\t\\\\! not a command in COPY data\n\\.\n"
)
PG_TAIL = "\n--\n-- PostgreSQL database dump complete\n--\n\n"
PG_PAYLOADS = {
    "shell": ("\\! touch {file}\n", 10, "psql meta-command \\!"),
    "output-pipe": ("\\o |touch {file}\n", 10, "psql meta-command \\o"),
    "copy-program": ("\\copy public.before_bad from program 'touch {file}'\n", 10, "\\copy"),
    "mid-line": ("select 1; \\! touch {file}\n", 10, "psql meta-command \\!"),
    "in-a-statement": ("select\n'x' \\! touch {file}\n;\n", 11, "psql meta-command \\!"),
    "after-begin-atomic": (
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n select 1;\n"
        "COPY public.before_bad (a, b) FROM stdin;\n\\! touch {file}\nEND;\n",
        14,
        "psql meta-command \\!",
    ),
}


@pytest.fixture
def pg_env(pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", pg_server.password)
    return write_config(tmp_path / "invoke.yaml", {"postgres": pg_target(pg_server)})


@pytest.mark.parametrize("payload", sorted(PG_PAYLOADS))
def test_forged_plain_dump_runs_no_psql_meta_command(
    pg_server: PgServer, pg_env: Path, tmp_path: Path, payload: str
) -> None:
    """restore and verify --restore-test refuse the forged dump in one line naming the line;
    the command never runs and the SQL before it is rolled back."""
    marker = tmp_path / "pwned"
    text, line, found = PG_PAYLOADS[payload]
    name = "development-postgres-20250101T000000Z.sql.gz"
    backup = forge(tmp_path / "backups", name, PG_HEAD + text.format(file=marker) + PG_TAIL)
    target = pg_server.create_db("forged_" + uuid.uuid4().hex[:8])  # exists, empty: kept
    done = run_inv(["-f", str(pg_env), "backup.restore", str(backup), "--database", target])
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"{name}: refusing to restore it: line {line}: "), done.stderr
    assert found in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not marker.exists()
    assert (
        pg_server.sql("select count(*) from pg_tables where schemaname = 'public'", target) == "0"
    )
    verify = ["-f", str(pg_env), "backup.verify", "--file", str(backup), "--restore-test"]
    done = run_inv(verify)
    assert done.returncode == 1, done.stderr
    assert f"refusing to restore it: line {line}: " in done.stderr, done.stderr
    assert not marker.exists()
    assert "_verify_" not in pg_server.sql("select string_agg(datname, ' ') from pg_database")


MYSQL_PAYLOADS = {
    "system": "system touch {file}\n",
    "shell": "\\! touch {file}\n",
    "tee": "tee {file}\nselect 1;\n",
    "local-infile": "load data local infile '/etc/hostname' into table before_bad;\n",
}


@pytest.mark.parametrize("payload", sorted(MYSQL_PAYLOADS))
def test_forged_mysql_dump_runs_no_client_command(
    mariadb_server: MariaServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    payload: str,
) -> None:
    """The mariadb client restores in --sandbox (and without LOCAL INFILE): the forged dump
    fails, the file is never created."""
    marker = tmp_path / "pwned"
    monkeypatch.setenv("FLOWLET_MYSQL_PASSWORD", mariadb_server.password)
    config = write_config(tmp_path / "invoke.yaml", {"shop": mysql_target(mariadb_server)})
    name = "development-shop-20250101T000000Z.sql.gz"
    sql = (
        "-- MariaDB dump\ncreate table before_bad (a text);\n"
        + MYSQL_PAYLOADS[payload].format(file=marker)
        + "-- Dump completed on 2025-01-01\n"
    )
    backup = forge(tmp_path / "backups", name, sql)
    target = "forged_" + uuid.uuid4().hex[:8]
    try:
        restore = ["backup.restore", str(backup), "--database", target]
        done = run_inv(["-f", str(config), *restore])
        assert done.returncode != 0, done.stdout
        assert done.stderr.count("\n") == 1, done.stderr
        assert not marker.exists()
        verify = ["-f", str(config), "backup.verify", "--file", str(backup), "--restore-test"]
        done = run_inv(verify)
        assert done.returncode != 0, done.stdout
        assert not marker.exists()
        assert "_verify_" not in mariadb_server.sql("show databases")
    finally:
        mariadb_server.sql(f"drop database if exists {target}")


HIDDEN_FROM_THE_GUARD = {
    "standard-conforming-strings-off": "SET standard_conforming_strings = off;\n"
    "select 'a\\' ' \\! touch {file}\n';\n",
    "sjis-hides-a-quote": "SET client_encoding = 'SJIS';\nselect \u0081' \\! touch {file}\n';\n",
}


@pytest.mark.parametrize("trick", sorted(HIDDEN_FROM_THE_GUARD))
def test_psql_restricts_itself_where_the_guard_reads_a_quote_otherwise(
    pg_server: PgServer, pg_env: Path, tmp_path: Path, trick: str
) -> None:
    """Settings the dump itself changes make psql read a quote otherwise than the guard does
    (standard_conforming_strings off: ``'a\\' '`` is one string; client_encoding SJIS: 0x81
    hides the quote after it): psql's own \\restrict with our random key refuses the command
    the guard took for a string; without it the guard refuses those lines (unit tests)."""
    version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout
    if not psql_restricts(version):
        pytest.skip(f"{version.strip()} has no \\restrict (15.14, 16.10, 17.6 and later)")
    marker = tmp_path / "pwned"
    name = "development-postgres-20250101T000000Z.sql.gz"
    hidden = HIDDEN_FROM_THE_GUARD[trick].format(file=marker)
    backup = forge(tmp_path / "backups", name, PG_HEAD + hidden + PG_TAIL)
    target = pg_server.create_db("forged_" + uuid.uuid4().hex[:8])
    done = run_inv(["-f", str(pg_env), "backup.restore", str(backup), "--database", target])
    assert done.returncode != 0, done.stderr
    assert "backslash commands are restricted" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert not marker.exists()
    assert (
        pg_server.sql("select count(*) from pg_tables where schemaname = 'public'", target) == "0"
    )


PG_HOSTILE = f"""
create table "x',1;create database {PWNED};select 'y" (id int, v text);
insert into "x',1;create database {PWNED};select 'y"
  select g, 'C:\\dir\\' || g from generate_series(1, 7) g;
create table "new
line\ttab\\back""dq" (id int);
insert into "new
line\ttab\\back""dq" select generate_series(1, 14);
create schema "s\\!x;";
create table "s\\!x;"."café 名前" ("a;b" text);
insert into "s\\!x;"."café 名前" select E'\\\\! not a command\\n' || g from generate_series(1, 21) g;
create view "v\\!" as select replace(v, '\\', '/') as r
  from "x',1;create database {PWNED};select 'y";
create function "f\\!"() returns text language plpgsql as $$
begin
  return E'\\\\! x';
end $$;
create function atomic_f() returns int language sql begin atomic select 1; select 2; end;
comment on table "new
line\ttab\\back""dq" is 'C:\\path\\';
"""


def pg_counts(pg: PgServer, db: str) -> dict[str, int]:
    names = pg.sql(
        "select encode(convert_to(format('%I.%I', schemaname, relname), 'UTF8'), 'hex') "
        "from pg_stat_user_tables",
        db,
    ).split()
    counts = {}
    for encoded in names:
        name = bytes.fromhex(encoded).decode()
        counts[name] = int(pg.sql(f"select count(*) from {name}", db))
    return counts


def test_postgres_hostile_names_round_trip(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain dump of hostile names and backslashes in DDL passes the guard: verify
    --restore-test and restore give the source back; nothing injected runs."""
    pg = pg_server
    dbname = pg.create_db("hostile_" + uuid.uuid4().hex[:6], PG_HOSTILE)
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", pg.password)
    config = write_config(tmp_path / "invoke.yaml", {"hostile": pg_target(pg, dbname)})
    source = pg_counts(pg, dbname)
    assert sorted(source.values()) == [7, 14, 21]
    done = run_inv(["-f", str(config), "backup.postgres", "--database", "hostile"])
    assert done.returncode == 0, done.stderr
    done = run_inv(["-f", str(config), "backup.verify", "--latest", "--restore-test"])
    assert done.returncode == 0, done.stderr
    assert "restore test ok (3 tables, row counts and" in done.stdout
    (backup,) = (tmp_path / "backups").glob("*.sql.gz")
    target = "restored_" + uuid.uuid4().hex[:8]
    done = run_inv(["-f", str(config), "backup.restore", str(backup), "--database", target])
    assert done.returncode == 0, done.stderr
    assert pg_counts(pg, target) == source
    assert pg.schema(target) == pg.schema(dbname)
    assert PWNED not in pg.sql("select string_agg(datname, ' ') from pg_database")


FRAGMENTS = [
    "select 1", ";", ";\n", "\n", " ", "'", "''", "\\", "\\\\", "\\'", "E'", "U&'", "b'", "N'",
    "$$", "$a$", "$1", "a$b$", "12$a$", "/*", "*/", "--", '"', '""', "(", ")", "x", "1", "1e",
    "::int", ":FOO", ":'v'", "create function f() returns int language sql begin atomic ",
    "create or replace procedure p() begin atomic ", "end", "case", "begin",
    "COPY t (a) FROM stdin;\n", "\\.\n", "SET standard_conforming_strings = off;\n",
    "\\echo FLOWLET_META\n", " \\echo FLOWLET_META ",
]  # fmt: skip


def test_the_guard_refuses_every_script_in_which_psql_runs_a_command(pg_server: PgServer) -> None:
    """Differential: random scripts of quotes, comments, dollar quotes, COPY blocks, BEGIN
    ATOMIC bodies and backslashes; whenever psql itself (no \\restrict) runs ``\\echo``, the
    guard refused the script."""
    import random

    db = pg_server.create_db("guardfuzz_" + uuid.uuid4().hex[:6], "create table t (a text)")
    where = ["-h", str(pg_server.socket_dir), "-p", str(pg_server.port), "-U", "postgres"]
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *where, "-d", db]
    rng = random.Random(23)
    ran = refused = 0
    for _ in range(200):
        script = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(3, 16)))
        out = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=60)
        try:
            guard_script("fuzz", script.encode())
        except Refused:
            refused += 1
        else:
            assert "FLOWLET_META" not in out.stdout, script
        ran += "FLOWLET_META" in out.stdout
    assert ran > 20 and refused > ran  # the corpus does reach psql's meta-commands


def test_mysql_session_answers_for_empty_and_missing_databases(
    mariadb_server: MariaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepared row-count statement of a database without tables is empty, not an error."""
    from tasks.backup.database import Session
    from tasks.backup.targets import DatabaseTarget, credentials

    db = mariadb_server
    monkeypatch.setenv("FLOWLET_MYSQL_PASSWORD", db.password)
    empty = "empty_" + uuid.uuid4().hex[:6]
    db.sql(f"create database {empty}")
    target = DatabaseTarget(
        "development", "shop", "mysql", db.host, db.port, "shop", db.user, "FLOWLET_MYSQL_PASSWORD"
    )
    try:
        with credentials(target) as creds:
            session = Session(target, creds)
            assert session.row_counts(empty) == {}
            assert session.row_counts("shop") == {"customers": 200, "payments": 3000}
            assert session.exists(empty) and not session.exists(empty + "_no")
            assert session.relations(empty) == 0 and session.objects(empty) == {}
    finally:
        db.sql(f"drop database {empty}")
