"""--encrypt: age to the configured recipients before the data touches disk; decrypt by identity."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import need, run_task
from tests.fixtures_backup import BackupEnv, backup_collection

pytestmark = pytest.mark.slow
NS = backup_collection()


@pytest.fixture
def age_env(pg_backup_env: BackupEnv, tmp_path: Path) -> BackupEnv:
    need("age", "age-keygen")
    identity = tmp_path / "keys" / "backup.key"
    identity.parent.mkdir()
    done = subprocess.run(
        ["age-keygen", "-o", str(identity)], capture_output=True, text=True, check=True
    )
    public = done.stderr.split("Public key: ")[1].strip()
    config = yaml.safe_load(pg_backup_env.config.read_text())
    config["backup"].update(recipients=[public], identity=str(identity))
    pg_backup_env.config.write_text(yaml.safe_dump(config))
    return pg_backup_env


@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
def test_encrypted_round_trip(age_env: BackupEnv, fmt: str) -> None:
    env = age_env
    assert (
        run_task(NS, ["backup.postgres", "--encrypt", "--format", fmt], config_file=env.config) == 0
    )
    (made,) = env.backups()
    assert made.name.endswith(".age")
    assert made.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert run_task(NS, ["backup.verify", "--file", str(made)], config_file=env.config) == 0
    target = "restored_" + uuid.uuid4().hex[:8]
    assert (
        run_task(NS, ["backup.restore", str(made), "--database", target], config_file=env.config)
        == 0
    )
    assert env.pg.row_counts(target) == env.pg.row_counts("flowlet")
    assert env.pg.checksum(target) == env.pg.checksum("flowlet")


def test_encryption_on_by_default_per_environment(age_env: BackupEnv) -> None:
    config = yaml.safe_load(age_env.config.read_text())
    config["environments"]["development"]["backup_encrypt"] = True
    age_env.config.write_text(yaml.safe_dump(config))
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
    assert (
        run_task(NS, ["backup.verify", "--latest", "--identity", missing], config_file=env.config)
        == 1
    )
    assert capsys.readouterr().err == (
        f"--identity: age identity file {missing!r} not found (needed to decrypt {made.name})\n"
    )
    assert run_task(NS, ["backup.restore", str(made), "--database", "x_restore", "--identity", ""],
                    config_file=env.config) == 1  # fmt: skip
    assert capsys.readouterr().err.startswith(f"--identity: {made.name} is encrypted;")


def test_no_recipients_refuses_to_write_plaintext(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_task(NS, ["backup.postgres", "--encrypt"], config_file=pg_backup_env.config) == 1
    assert (
        "backup.recipients: --encrypt needs at least one age recipient" in capsys.readouterr().err
    )
    assert pg_backup_env.backups() == []
