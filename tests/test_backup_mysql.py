"""Real MariaDB: round trips per compressor, the sakila-like schema (views, triggers, routines,
an event) complete, wrong password, the option file only in memory."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import run_task
from fixtures_backup import (
    MariaServer,
    backup_collection,
    mysql_target,
    update_config,
    write_config,
)

pytestmark = pytest.mark.slow
NS = backup_collection()


@pytest.fixture
def my_config(mariadb_server: MariaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWLET_MYSQL_PASSWORD", mariadb_server.password)
    return write_config(
        tmp_path / "invoke.yaml",
        {
            "shop": mysql_target(mariadb_server),
            "sakila": mysql_target(mariadb_server, "sakila"),
        },
    )


def made(config: Path) -> list[Path]:
    out = config.parent / "backups"
    return sorted(p for p in out.iterdir() if p.name.endswith((".sql", ".gz", ".zst")))


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
def test_round_trip(mariadb_server: MariaServer, my_config: Path, compress: str) -> None:
    argv = ["backup.mysql", "--database", "shop", "--compress", compress]
    assert run_task(NS, argv, config_file=my_config) == 0
    (backup,) = made(my_config)
    verify = ["backup.verify", "--file", str(backup), "--restore-test"]
    assert run_task(NS, verify, config_file=my_config) == 0
    target = "restored_" + uuid.uuid4().hex[:8]
    argv = ["backup.restore", str(backup), "--database", target]
    assert run_task(NS, argv, config_file=my_config) == 0
    db = mariadb_server
    assert db.schema(target) == db.schema("shop")
    assert db.row_counts(target) == db.row_counts("shop") == {"customers": 200, "payments": 3000}
    assert db.checksum(target) == db.checksum("shop")
    assert run_task(NS, argv, config_file=my_config) == 1  # now non-empty: refused


def test_sakila_round_trip_is_complete(
    mariadb_server: MariaServer, my_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Views, triggers, the function, the procedure and the event all come back."""
    db = mariadb_server
    source = db.objects("sakila")
    kinds = sorted({name.split()[0] for name in source})
    assert kinds == ["event", "routine", "trigger", "view"], source
    assert run_task(NS, ["backup.mysql", "--database", "sakila"], config_file=my_config) == 0
    (backup,) = made(my_config)
    capsys.readouterr()
    verify = ["backup.verify", "--latest", "--restore-test"]
    assert run_task(NS, verify, config_file=my_config) == 0
    assert "row counts and 9 objects match" in capsys.readouterr().out
    target = "sakila_" + uuid.uuid4().hex[:8]
    argv = ["backup.restore", str(backup), "--database", target]
    assert run_task(NS, argv, config_file=my_config) == 0
    assert db.objects(target) == source
    assert db.row_counts(target) == db.row_counts("sakila")
    assert db.checksum(target) == db.checksum("sakila")


def test_restore_test_notices_a_missing_event(
    mariadb_server: MariaServer, my_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dump without the event (as before --events) does not pass --restore-test."""
    import gzip
    import hashlib

    assert run_task(NS, ["backup.mysql", "--database", "sakila"], config_file=my_config) == 0
    (backup,) = made(my_config)
    data = gzip.decompress(backup.read_bytes())
    start = data.index(b"/*!50106 CREATE*/")
    end = data.index(b"DELIMITER ;", start)
    stripped = gzip.compress(data[:start] + data[end:])
    backup.write_bytes(stripped)
    backup.with_name(backup.name + ".sha256").write_text(
        f"{hashlib.sha256(stripped).hexdigest()}  {backup.name}\n"
    )
    capsys.readouterr()
    verify = ["backup.verify", "--file", str(backup), "--restore-test"]
    assert run_task(NS, verify, config_file=my_config) == 1
    assert "restore test objects differ from sakila: ['events']" in capsys.readouterr().err


def test_default_task_db_type_mysql(my_config: Path) -> None:
    argv = ["backup", "--db-type", "mysql", "--database", "shop"]
    assert run_task(NS, argv, config_file=my_config) == 0
    assert [p.name.endswith(".sql.gz") for p in made(my_config)] == [True]


def test_wrong_password(
    my_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWLET_MYSQL_PASSWORD", "wrong")
    assert run_task(NS, ["backup.mysql", "--database", "shop"], config_file=my_config) != 0
    err = capsys.readouterr().err
    assert "Access denied for user 'flowlet'" in err and "nothing written" in err
    assert err.count("\n") == 1
    out = my_config.parent / "backups"
    assert [p.name for p in out.iterdir()] == ["manifest.jsonl"]


def test_dry_run_shows_option_file_not_password(
    mariadb_server: MariaServer, my_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--dry", "backup.mysql", "--database", "shop"]
    assert run_task(NS, argv, config_file=my_config) == 0
    out = capsys.readouterr().out
    assert "--defaults-extra-file=<in-memory option file from $FLOWLET_MYSQL_PASSWORD>" in out
    assert "--single-transaction" in out and "--events" in out
    assert mariadb_server.password not in out


def test_remote_round_trip(mariadb_server: MariaServer, my_config: Path, ssh_config: Path) -> None:
    update_config(my_config, ssh={"config_file": str(ssh_config)})
    argv = ["backup.mysql", "--database", "sakila", "--host", "flowlet-db", "--compress", "zstd"]
    assert run_task(NS, argv, config_file=my_config) == 0
    (backup,) = made(my_config)
    target = "restored_" + uuid.uuid4().hex[:8]
    restore = ["backup.restore", str(backup), "--database", target]
    assert run_task(NS, restore, config_file=my_config) == 0
    assert mariadb_server.checksum(target) == mariadb_server.checksum("sakila")
    assert mariadb_server.objects(target) == mariadb_server.objects("sakila")
