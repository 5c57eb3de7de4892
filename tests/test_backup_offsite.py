"""Offsite destinations through real rclone: ``rclone serve s3`` on 127.0.0.1 and SFTP through
the test sshd. Round trips (--to, --no-local, --host, --from for list/verify/restore/prune),
faults (server killed mid-upload, a full destination, wrong credentials, an object corrupted
afterwards) and the credentials: never on any argv, in output or --dry, nor given to any child
but rclone."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import run_task, start_inv
from fixtures_backup import BackupEnv, backup_collection, descendants, plant_earlier, update_config
from fixtures_s3 import S3Server
from fixtures_sshd import SshServer
from test_backup_faults import Locked, dump_pids, wait_for

pytestmark = pytest.mark.slow
NS = backup_collection()


class Offsite:
    def __init__(
        self,
        env: BackupEnv,
        bucket: Path,
        variables: dict[str, str],
        server: S3Server | None = None,
    ) -> None:
        self.env, self.bucket, self.variables, self.server = env, bucket, variables, server

    def objects(self) -> list[str]:
        return sorted(p.name for p in self.bucket.iterdir()) if self.bucket.exists() else []

    def inv(self, *argv: str, **extra: str) -> Any:
        variables = {**self.variables, "FLOWLET_DB_PASSWORD": self.env.pg.password, **extra}
        return start_inv(["-f", str(self.env.config), *argv], env=variables)


def use(
    env: BackupEnv, server: S3Server, monkeypatch: pytest.MonkeyPatch, name: str = "offsite"
) -> Offsite:
    config, variables, bucket = server.destination(name)
    update_config(env.config, backup={"destinations": {name: config}})
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    return Offsite(env, bucket, variables, server)


@pytest.fixture
def offsite(
    pg_backup_env: BackupEnv, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Offsite:
    return use(pg_backup_env, s3_server, monkeypatch)


def run(offsite: Offsite, *argv: str) -> int:
    return run_task(NS, list(argv), config_file=offsite.env.config)


def test_round_trip_through_s3(offsite: Offsite, capsys: pytest.CaptureFixture[str]) -> None:
    env = offsite.env
    assert (
        run(
            offsite,
            "backup.postgres",
            "--to",
            "offsite",
            "--format",
            "custom",
            "--compress",
            "zstd",
            "--globals",
        )
        == 0
    )
    local = [p.name for p in env.backups()]
    assert len(local) == 2  # the dump and its globals companion, kept locally too
    objects = offsite.objects()
    assert objects == sorted([*local, *(f"{n}.sha256" for n in local)]), objects
    for name in local:
        assert (offsite.bucket / name).read_bytes() == (env.out / name).read_bytes()
    record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
    (main,) = [n for n in local if ".globals." not in n]
    assert record["locations"] == {
        "local": str(env.out / main),
        "offsite": f"offsite:{offsite.bucket.parent.name}/flowlet/{main}",
    }
    assert "offsite" in record["globals"]["locations"]
    capsys.readouterr()
    assert run(offsite, "backup.list", "--from", "offsite") == 0
    assert f"{main}\t" in capsys.readouterr().out
    assert run(offsite, "backup.verify", "--latest", "--from", "offsite") == 0
    assert "sha256 ok, every block read by pg_restore" in capsys.readouterr().out
    shutil_rm(env.out, main)  # the bastion lost its copy: restore from offsite
    target = "restored_" + uuid.uuid4().hex[:8]
    assert run(offsite, "backup.restore", main, "--from", "offsite", "--database", target) == 0
    assert env.pg.checksum(target) == env.pg.checksum("flowlet")
    assert not [n for n in env.files() if n.endswith(".partial")]


def shutil_rm(directory: Path, name: str) -> None:
    for path in (directory / name, directory / f"{name}.sha256"):
        path.unlink()


def test_no_local_copy_and_the_environment_default(offsite: Offsite) -> None:
    env = offsite.env
    update_config(env.config, environments={"development": {"backup_to": "offsite"}})
    assert run(offsite, "backup.postgres", "--no-local") == 0
    assert env.files() == ["manifest.jsonl"]
    (name,) = [n for n in offsite.objects() if not n.endswith(".sha256")]
    record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
    assert list(record["locations"]) == ["offsite"]
    assert run(offsite, "backup.verify", "--file", name, "--from", "offsite") == 0


def test_sftp_destination_through_the_test_sshd(
    pg_backup_env: BackupEnv, sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = pg_backup_env
    known = sshd.write_known_hosts(tmp_path / "known_hosts")
    remote = tmp_path / "sftp-target"
    variables = {
        "RCLONE_CONFIG_VAULT_TYPE": "sftp",
        "RCLONE_CONFIG_VAULT_HOST": sshd.host,
        "RCLONE_CONFIG_VAULT_PORT": str(sshd.port),
        "RCLONE_CONFIG_VAULT_USER": sshd.user,
        "RCLONE_CONFIG_VAULT_KEY_FILE": str(sshd.client_key),
        "RCLONE_CONFIG_VAULT_KNOWN_HOSTS_FILE": str(known),
    }
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    update_config(env.config, backup={"destinations": {"vault": {"url": f"vault:{remote}"}}})
    assert (
        run_task(
            NS, ["backup.postgres", "--to", "vault", "--compress", "zstd"], config_file=env.config
        )
        == 0
    )
    (made,) = env.backups()
    assert (remote / made.name).read_bytes() == made.read_bytes()
    assert (remote / f"{made.name}.sha256").read_text().split()[0] == (
        env.out / f"{made.name}.sha256"
    ).read_text().split()[0]
    assert (
        run_task(NS, ["backup.verify", "--latest", "--from", "vault"], config_file=env.config) == 0
    )


def test_remote_host_backup_goes_offsite_in_the_same_run(
    offsite: Offsite, ssh_config: Path
) -> None:
    env = offsite.env
    update_config(env.config, ssh={"config_file": str(ssh_config)})
    assert (
        run(
            offsite,
            "backup.postgres",
            "--host",
            "flowlet-db",
            "--to",
            "offsite",
            "--compress",
            "zstd",
        )
        == 0
    )
    (made,) = env.backups()
    assert (offsite.bucket / made.name).read_bytes() == made.read_bytes()
    record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
    assert set(record["locations"]) == {"local", "offsite"} and record["ran_on"] == "flowlet-db"


def test_prune_from_the_destination(offsite: Offsite, capsys: pytest.CaptureFixture[str]) -> None:
    env = offsite.env
    assert run(offsite, "backup.postgres", "--to", "offsite") == 0
    (newest,) = env.backups()
    data = (offsite.bucket / newest.name).read_bytes()
    sidecar = (offsite.bucket / f"{newest.name}.sha256").read_text()
    olds = [f"development-postgres-2021010{d}T000000Z.sql.gz" for d in range(1, 4)]
    for name in olds:
        (offsite.bucket / name).write_bytes(data)
        (offsite.bucket / f"{name}.sha256").write_text(sidecar)
    (offsite.bucket / "development-postgres-20210104T000000Z.sql.gz.partial").write_bytes(b"x")
    update_config(env.config, backup={"retention": {"keep_last": 2, "daily": 0, "weekly": 0}})
    capsys.readouterr()
    assert run(offsite, "backup.list", "--from", "offsite") == 0
    assert "FAILED (stale partial" in capsys.readouterr().out
    assert run(offsite, "backup.prune", "--from", "offsite") == 0
    left = [n for n in offsite.objects() if not n.endswith(".sha256")]
    assert left == sorted([olds[2], newest.name])
    assert len(env.backups()) == 1  # the local copy is another place: untouched


def test_corrupted_object_fails_verify_and_check(
    offsite: Offsite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(offsite, "backup.postgres", "--to", "offsite") == 0
    (name,) = [n for n in offsite.objects() if not n.endswith(".sha256")]
    obj = offsite.bucket / name
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    capsys.readouterr()
    assert run(offsite, "backup.verify", "--latest", "--from", "offsite") == 1
    assert capsys.readouterr().err == (
        f"{name}: checksum MISMATCH at offsite (sidecar {name}.sha256)\n"
    )
    assert run(offsite, "backup.check", "--database", "postgres", "--from", "offsite") == 2
    assert "does NOT verify" in capsys.readouterr().out
    assert run(offsite, "backup.verify", "--latest") == 0  # the local copy is fine


def test_s3_server_killed_mid_upload(
    pg_backup_env: BackupEnv,
    private_s3: Any,
    earlier_backup: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local copy is completed and kept; no object at the final name; one line, exit 1."""
    server = private_s3()
    offsite = use(pg_backup_env, server, monkeypatch)
    env = offsite.env
    plant_earlier(earlier_backup, env.out)
    proc = offsite.inv(
        "backup.postgres",
        "--database",
        "big",
        "--compress",
        "none",
        "--to",
        "offsite",
        RCLONE_LOW_LEVEL_RETRIES="1",
        RCLONE_RETRIES="1",
    )

    def uploading() -> bool:
        temps = list(server.root.rglob(".rclone_temp_multipart_*"))
        return bool(temps) and sum(p.stat().st_size for p in temps if p.exists()) > 4_000_000

    wait_for(uploading, timeout=60)
    server.stop()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("upload to offsite failed: ") and "the local copy" in err
    made = [p for p in env.backups() if "big" in p.name]
    assert len(made) == 1 and (env.out / f"{made[0].name}.sha256").exists()
    assert run_task(NS, ["backup.verify", "--file", str(made[0])], config_file=env.config) == 0
    server.start()
    assert made[0].name not in offsite.objects()
    lines = (env.out / "manifest.jsonl").read_text().splitlines()
    record = [json.loads(line) for line in lines if '"event": "backup"' in line][-1]
    assert list(record["locations"]) == ["local"] and record["upload_error"]


def test_full_destination(
    pg_backup_env: BackupEnv, private_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = private_s3(fsize_limit=3_000_000)
    offsite = use(pg_backup_env, server, monkeypatch)
    proc = offsite.inv(
        "backup.postgres",
        "--database",
        "big",
        "--compress",
        "none",
        "--to",
        "offsite",
        RCLONE_LOW_LEVEL_RETRIES="1",
        RCLONE_RETRIES="1",
    )
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("upload to offsite failed: ")
    assert len(offsite.env.backups()) == 1  # the local copy
    assert [n for n in offsite.objects() if not n.startswith(".")] == []


def test_wrong_credentials(offsite: Offsite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY", "not-the-key")
    proc = offsite.inv(
        "backup.postgres", "--to", "offsite", RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY="not-the-key"
    )
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert "SignatureDoesNotMatch" in err and "not-the-key" not in err
    assert len(offsite.env.backups()) == 1 and offsite.objects() == []


def test_credentials_reach_rclone_only(offsite: Offsite) -> None:
    """During an upload: the secret key is in no process's argv, in rclone's environment only
    (not pg_dump's, not gzip's), never in output, the manifest or --dry."""
    env = offsite.env
    secret = offsite.variables["RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY"].encode()
    locker = Locked(env)
    proc = offsite.inv("backup.postgres", "--to", "offsite")
    try:
        wait_for(lambda: dump_pids(proc))
        wait_for(
            lambda: len(
                [a for a in descendants(proc.pid).values() if a and a[0].endswith("rclone")]
            )
            >= 2
        )
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert secret not in cmdline, f"secret key in argv of pid {entry.name}"
        checked = 0
        for pid, argv in descendants(proc.pid).items():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:  # a short-lived probe that just ended
                continue
            if not argv:  # it ended between the listing and now (a zombie has no argv)
                continue
            checked += 1
            assert (secret in environ) == argv[0].endswith("rclone"), argv[:2]
        assert checked >= 4  # pg_dump, gzip, rclone rcat, rclone rcd
    except BaseException:
        proc.kill()  # leave no run behind for the next test
        proc.communicate()
        raise
    finally:
        locker.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert secret.decode() not in out + err + (env.out / "manifest.jsonl").read_text()
    dry = offsite.inv("--dry", "backup.postgres", "--to", "offsite")
    out, err = dry.communicate(timeout=60)
    assert dry.returncode == 0, err
    assert "rclone --config /dev/null --log-level ERROR --contimeout=20s --timeout=20s " in out
    assert " rcat -- offsite:" in out
    assert "(credentials: $RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY)" in out
    assert secret.decode() not in out + err


def test_config_file_must_be_private(
    pg_backup_env: BackupEnv,
    s3_server: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conf = s3_server.config_file(tmp_path / "rclone.conf", "cfgdest")
    bucket = s3_server.bucket()
    update_config(
        pg_backup_env.config,
        backup={"destinations": {"cfg": {"url": f"cfgdest:{bucket}", "config_file": str(conf)}}},
    )
    argv = ["backup.postgres", "--to", "cfg"]
    assert run_task(NS, argv, config_file=pg_backup_env.config) == 0
    assert len(list((s3_server.root / bucket).iterdir())) == 2
    conf.chmod(0o644)
    capsys.readouterr()
    assert run_task(NS, argv, config_file=pg_backup_env.config) == 1
    assert capsys.readouterr().err == (
        f"backup.destinations.cfg.config_file: '{conf}' has mode 0644; valid: a file only its "
        "owner can read (chmod 600)\n"
    )


@pytest.mark.signals
def test_interrupted_upload_leaves_no_object(offsite: Offsite) -> None:
    env = offsite.env
    proc = offsite.inv(
        "backup.postgres", "--database", "big", "--compress", "none", "--to", "offsite"
    )

    def uploading() -> bool:
        return bool(list(offsite.bucket.parent.rglob(".rclone_temp_multipart_*")))

    wait_for(uploading, timeout=60)
    os.kill(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert [n for n in offsite.objects() if not n.startswith(".")] == []
    assert [p for p in env.backups() if "big" in p.name] == []
