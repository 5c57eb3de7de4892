"""Real MariaDB: round trips per compressor, wrong password, option file never left behind."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import run_task
from tests.fixtures_backup import MariaServer, backup_collection, mysql_target, write_config

pytestmark = pytest.mark.slow
NS = backup_collection()


@pytest.fixture
def my_config(mariadb_server: MariaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWLET_MYSQL_PASSWORD", mariadb_server.password)
    return write_config(tmp_path / "invoke.yaml", {"shop": mysql_target(mariadb_server)})


def made(config: Path) -> list[Path]:
    out = config.parent / "backups"
    return sorted(p for p in out.iterdir() if p.name.endswith((".sql", ".gz", ".zst")))


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
def test_round_trip(mariadb_server: MariaServer, my_config: Path, compress: str) -> None:
    assert run_task(NS, ["backup.mysql", "--compress", compress], config_file=my_config) == 0
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


def test_default_task_db_type_mysql(my_config: Path) -> None:
    assert run_task(NS, ["backup", "--db-type", "mysql"], config_file=my_config) == 0
    assert [p.name.endswith(".sql.gz") for p in made(my_config)] == [True]


def test_wrong_password(
    my_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWLET_MYSQL_PASSWORD", "wrong")
    assert run_task(NS, ["backup.mysql"], config_file=my_config) != 0
    err = capsys.readouterr().err
    assert "Access denied for user 'flowlet'" in err and "nothing written" in err
    out = my_config.parent / "backups"
    assert [p.name for p in out.iterdir()] == []


def test_dry_run_shows_option_file_not_password(
    mariadb_server: MariaServer, my_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_task(NS, ["--dry", "backup.mysql"], config_file=my_config) == 0
    out = capsys.readouterr().out
    assert "--defaults-extra-file=<0600 temp option file>" in out
    assert "--single-transaction" in out
    assert mariadb_server.password not in out


def test_remote_round_trip(
    mariadb_server: MariaServer, my_config: Path, ssh_config: Path, tmp_path: Path
) -> None:
    import yaml

    config = yaml.safe_load(my_config.read_text())
    config["ssh"] = {"config_file": str(ssh_config)}
    my_config.write_text(yaml.safe_dump(config))
    argv = ["backup.mysql", "--host", "flowlet-db", "--compress", "zstd"]
    assert run_task(NS, argv, config_file=my_config) == 0
    (backup,) = made(my_config)
    target = "restored_" + uuid.uuid4().hex[:8]
    restore = ["backup.restore", str(backup), "--database", target]
    assert run_task(NS, restore, config_file=my_config) == 0
    assert mariadb_server.checksum(target) == mariadb_server.checksum("shop")
