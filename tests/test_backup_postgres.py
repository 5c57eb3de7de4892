"""Real PostgreSQL 15: round trips per format and compressor, verify, restore, list, prune."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_task
from tests.fixtures_backup import BackupEnv, backup_collection, plant_earlier

pytestmark = pytest.mark.slow
NS = backup_collection()


def fresh_name() -> str:
    return "restored_" + uuid.uuid4().hex[:10]


def backup(env: BackupEnv, *argv: str) -> int:
    return run_task(NS, ["backup.postgres", *argv], config_file=env.config)


def assert_same_database(env: BackupEnv, source: str, restored: str) -> None:
    pg = env.pg
    assert pg.schema(restored) == pg.schema(source)
    assert pg.row_counts(restored) == pg.row_counts(source)
    assert pg.checksum(restored) == pg.checksum(source)
    assert len(pg.row_counts(restored)) == 2


@pytest.mark.parametrize(
    "fmt,compress,extra",
    [
        ("plain", "gzip", []),
        ("plain", "zstd", ["--level", "9"]),
        ("plain", "none", []),
        ("custom", "gzip", []),
        ("custom", "zstd", []),
        ("custom", "none", []),
        ("directory", "gzip", ["--jobs", "2"]),
        ("directory", "none", ["--jobs", "2"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else v,
)
def test_round_trip(pg_backup_env: BackupEnv, fmt: str, compress: str, extra: list[str]) -> None:
    env = pg_backup_env
    assert backup(env, "--format", fmt, "--compress", compress, *extra) == 0
    (made,) = env.backups()
    assert stat.S_IMODE(env.out.stat().st_mode) == 0o700
    for path in env.out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not [name for name in env.files() if "partial" in name]
    record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["file"] == made.name and record["bytes"] == made.stat().st_size
    assert record["sha256"] == (env.out / f"{made.name}.sha256").read_text().split()[0]
    assert record["server_version"].startswith("15.") and "pg_dump" in record["dump_version"]
    assert run_task(NS, ["backup.verify", "--file", str(made)], config_file=env.config) == 0
    target = fresh_name()
    assert (
        run_task(NS, ["backup.restore", str(made), "--database", target], config_file=env.config)
        == 0
    )
    assert_same_database(env, "flowlet", target)


def test_default_task_old_interface(pg_backup_env: BackupEnv) -> None:
    env = pg_backup_env
    assert run_task(NS, ["backup", "--db-type", "postgres"], config_file=env.config) == 0
    assert [p.name.endswith(".sql.gz") for p in env.backups()] == [True]
    assert run_task(NS, ["backup", "--db-type", "oracle"], config_file=env.config) == 1


def test_verify_latest_with_restore_test(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env, "--format", "custom") == 0
    capsys.readouterr()
    assert (
        run_task(NS, ["backup.verify", "--latest", "--restore-test"], config_file=env.config) == 0
    )
    out = capsys.readouterr().out
    assert "restore test ok (2 tables, row counts match)" in out
    assert not [
        db for db in env.pg.sql("select datname from pg_database").split() if "_verify_" in db
    ]
    assert run_task(NS, ["backup.list"], config_file=env.config) == 0
    assert "verified" in capsys.readouterr().out


def test_verify_detects_corruption(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env) == 0
    (made,) = env.backups()
    data = bytearray(made.read_bytes())
    data[len(data) // 2] ^= 0xFF
    made.write_bytes(bytes(data))
    assert run_task(NS, ["backup.verify", "--latest"], config_file=env.config) == 1
    assert "checksum MISMATCH" in capsys.readouterr().err
    # A valid checksum over a truncated stream: the stream check catches it.
    made.write_bytes(bytes(data[: len(data) // 2]))
    import hashlib

    digest = hashlib.sha256(made.read_bytes()).hexdigest()
    (env.out / f"{made.name}.sha256").write_text(f"{digest}  {made.name}\n")
    assert run_task(NS, ["backup.verify", "--file", str(made)], config_file=env.config) != 0
    assert (
        run_task(
            NS, ["backup.restore", str(made), "--database", fresh_name()], config_file=env.config
        )
        != 0
    )


def test_restore_refuses_non_empty_without_force(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env, "--format", "custom", "--compress", "zstd") == 0
    (made,) = env.backups()
    target = env.pg.create_db(fresh_name(), "create table keep_me (id int)")
    argv = ["backup.restore", str(made), "--database", target]
    assert run_task(NS, argv, config_file=env.config) == 1
    assert (
        f"--database: {target} is not empty (1 relations); --force replaces it"
        in capsys.readouterr().err
    )
    assert env.pg.tables(target) == ["public.keep_me"]
    assert run_task(NS, [*argv, "--force"], config_file=env.config) == 0
    assert_same_database(env, "flowlet", target)


def test_restore_stops_at_first_sql_error(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env, "--compress", "none") == 0
    (made,) = env.backups()
    text = made.read_text()
    broken = text.replace("CREATE TABLE public.accounts", "CREATE TABLE public.accounts broken", 1)
    made.write_text(broken)
    import hashlib

    (env.out / f"{made.name}.sha256").write_text(
        f"{hashlib.sha256(broken.encode()).hexdigest()}  {made.name}\n"
    )
    target = fresh_name()
    assert (
        run_task(NS, ["backup.restore", str(made), "--database", target], config_file=env.config)
        == 3
    )
    assert "syntax error" in capsys.readouterr().err
    assert env.pg.tables(target) == []  # one transaction: nothing half-restored


def test_restore_in_production_needs_confirmation(
    pg_backup_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env) == 0
    (made,) = env.backups()
    prod = made.with_name(made.name.replace("development-", "production-"))
    made.rename(prod)
    (env.out / f"{made.name}.sha256").rename(env.out / f"{prod.name}.sha256")
    config = (
        env.config.read_text()
        .replace("development:", "production:")
        .replace("flowlet-dev", "flowlet-prod")
    )
    prod_config = tmp_path / "prod.yaml"
    prod_config.write_text(config)
    (env.out / f"{prod.name}.sha256").write_text(
        (env.out / f"{prod.name}.sha256").read_text().replace(made.name, prod.name)
    )
    target = fresh_name()
    argv = ["backup.restore", str(prod), "--database", target]
    assert run_task(NS, argv, config_file=prod_config) == 1
    assert "refusing: no terminal to confirm on; pass --yes" in capsys.readouterr().err
    assert run_task(NS, [*argv, "--yes"], config_file=prod_config) == 0
    assert_same_database(env, "flowlet", target)


def test_prune_keeps_retention_and_newest_verified(
    pg_backup_env: BackupEnv, earlier_backup, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    plant_earlier(earlier_backup, env.out)
    good = earlier_backup.name
    payload = (env.out / good).read_bytes()
    names = [f"development-postgres-2021010{d}T000000Z.sql.gz" for d in range(1, 6)]
    for name in names:  # newer backups whose checksum no longer matches: not verified
        (env.out / name).write_bytes(payload + b"x")
        (env.out / f"{name}.sha256").write_text((env.out / f"{good}.sha256").read_text())
    os.chmod(env.out, 0o700)
    config = yaml.safe_load(env.config.read_text())
    config["backup"]["retention"] = {"keep_last": 2, "daily": 0, "weekly": 0}
    env.config.write_text(yaml.safe_dump(config))
    assert run_task(NS, ["--dry", "backup.prune"], config_file=env.config) == 0
    out = capsys.readouterr().out
    assert out.count("would delete") == 4  # 3 files + the summary line
    assert len(env.backups()) == 6
    assert run_task(NS, ["backup.prune"], config_file=env.config) == 0
    assert [p.name for p in env.backups()] == sorted([good, names[3], names[4]])


def test_password_from_a_configured_passfile(
    pg_backup_env: BackupEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.backup.targets import DatabaseTarget, pgpass_line
    from tests.fixtures_backup import pg_target, write_config

    env = pg_backup_env
    monkeypatch.delenv("FLOWLET_DB_PASSWORD")
    passfile = tmp_path / "pgpass"
    target = DatabaseTarget("development", "postgres", "postgres", "127.0.0.1", env.pg.port,
                            "flowlet", "flowlet")  # fmt: skip
    passfile.write_text(pgpass_line(target, env.pg.password))
    passfile.chmod(0o600)
    config = pg_target(env.pg)
    del config["password_env"]
    write_config(env.config, {"postgres": {**config, "passfile": str(passfile)}})
    assert backup(env) == 0
    assert len(env.backups()) == 1
