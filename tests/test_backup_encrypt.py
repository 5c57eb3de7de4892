"""--encrypt: age to the configured recipients before the data leaves the pipeline; decrypt by
identity for verify and restore."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import run_task
from fixtures_backup import BackupEnv, backup_collection, make_identity, update_config

pytestmark = pytest.mark.slow
NS = backup_collection()


@pytest.fixture
def age_env(pg_backup_env: BackupEnv, tmp_path: Path) -> BackupEnv:
    public, identity = make_identity(tmp_path)
    update_config(pg_backup_env.config, backup={"recipients": [public], "identity": str(identity)})
    return pg_backup_env


@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
def test_encrypted_round_trip(age_env: BackupEnv, fmt: str) -> None:
    env = age_env
    argv = ["backup.postgres", "--encrypt", "--format", fmt, "--globals"]
    assert run_task(NS, argv, config_file=env.config) == 0
    made = [p for p in env.backups() if ".globals." not in p.name]
    assert len(made) == 1 and made[0].name.endswith(".age")
    for path in env.backups():  # the globals companion is encrypted too
        assert path.read_bytes().startswith(b"age-encryption.org/v1\n"), path
    assert run_task(NS, ["backup.verify", "--file", str(made[0])], config_file=env.config) == 0
    target = "restored_" + uuid.uuid4().hex[:8]
    argv = ["backup.restore", str(made[0]), "--database", target]
    assert run_task(NS, argv, config_file=env.config) == 0
    assert env.pg.row_counts(target) == env.pg.row_counts("flowlet")
    assert env.pg.checksum(target) == env.pg.checksum("flowlet")


def test_encryption_on_by_default_per_environment(age_env: BackupEnv) -> None:
    update_config(age_env.config, environments={"development": {"backup_encrypt": True}})
    assert run_task(NS, ["backup.postgres"], config_file=age_env.config) == 0
    assert [p.name.endswith(".sql.gz.age") for p in age_env.backups()] == [True]


def test_missing_identity_is_one_clear_line(
    age_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = age_env
    assert run_task(NS, ["backup.postgres", "--encrypt"], config_file=env.config) == 0
    (made,) = env.backups()
    capsys.readouterr()
    missing = str(tmp_path / "nope.key")
    argv = ["backup.verify", "--latest", "--identity", missing]
    assert run_task(NS, argv, config_file=env.config) == 1
    assert capsys.readouterr().err == (
        f"--identity: age identity file {missing!r} not found (needed to decrypt {made.name})\n"
    )
    update_config(env.config, backup={"identity": ""})
    argv = ["backup.restore", str(made), "--database", "x_restore"]
    assert run_task(NS, argv, config_file=env.config) == 1
    assert capsys.readouterr().err.startswith(f"--identity: {made.name} is encrypted;")


def test_no_recipients_refuses_to_write_plaintext(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_task(NS, ["backup.postgres", "--encrypt"], config_file=pg_backup_env.config) == 1
    assert capsys.readouterr().err == (
        "backup.recipients: --encrypt needs at least one age recipient (public key)\n"
    )
    assert pg_backup_env.backups() == []
