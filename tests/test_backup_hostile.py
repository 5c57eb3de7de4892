"""Hostile database contents, from the ``inv`` command line: object names that are SQL
(quotes, backticks, ``;``, newlines, unicode) stay data; a forged plain dump with client
meta-commands (``\\!``, ``\\o |cmd``, ``\\copy ... program``, ``system``) is refused before it runs
anything."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import run_inv
from fixtures_backup import MariaServer, mysql_target, write_config

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
) -> tuple[Path, str]:
    """A database whose app account created hostile table, view, routine, trigger names."""
    db = mariadb_server
    dbname = "hostile_" + uuid.uuid4().hex[:6]
    password = uuid.uuid4().hex
    app = f"app_{dbname[-6:]}@'127.0.0.1'"
    db.sql(
        f"create database {dbname}; create user {app} identified by '{password}';"
        f"grant all on {dbname}.* to {app};"
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
    db.sql(f"drop database if exists {dbname}; drop user {app}; drop database if exists {PWNED}")


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
