"""Remote backups over a real sshd (through a ProxyJump gateway) against the real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_task
from tests.fixtures_backup import BackupEnv, backup_collection, plant_earlier
from tests.fixtures_sshd import SshServer

pytestmark = pytest.mark.slow
NS = backup_collection()


@pytest.fixture
def remote_env(pg_backup_env: BackupEnv, ssh_config: Path, tmp_path: Path) -> BackupEnv:
    config = yaml.safe_load(pg_backup_env.config.read_text())
    config["ssh"] = {"config_file": str(ssh_config), "connect_timeout": 5}
    config["backup"]["remote_dir"] = str(tmp_path / "remote")
    pg_backup_env.config.write_text(yaml.safe_dump(config))
    return pg_backup_env


@pytest.mark.parametrize(
    "fmt,compress",
    [("custom", "zstd"), ("plain", "gzip"), ("plain", "none"), ("custom", "gzip")],
    ids=["custom-zstd", "plain-gzip", "plain-none", "custom-gzip"],
)
def test_round_trip_streamed_through_gateway(
    remote_env: BackupEnv, fmt: str, compress: str
) -> None:
    env = remote_env
    argv = ["backup.postgres", "--host", "flowlet-db", "--format", fmt, "--compress", compress]
    assert run_task(NS, argv, config_file=env.config) == 0
    (made,) = env.backups()
    assert made.stat().st_mode & 0o777 == 0o600
    assert run_task(NS, ["backup.verify", "--file", str(made)], config_file=env.config) == 0
    target = "restored_" + uuid.uuid4().hex[:8]
    restore = ["backup.restore", str(made), "--database", target]
    assert run_task(NS, restore, config_file=env.config) == 0
    pg = env.pg
    assert pg.schema(target) == pg.schema("flowlet")
    assert pg.row_counts(target) == pg.row_counts("flowlet")
    assert pg.checksum(target) == pg.checksum("flowlet")


def test_keep_remote(remote_env: BackupEnv, tmp_path: Path) -> None:
    env = remote_env
    secrets_before = set(Path("/tmp").glob("flowlet-*/secret"))
    argv = ["backup.postgres", "--host", "flowlet-direct", "--keep-remote"]
    assert run_task(NS, argv, config_file=env.config) == 0
    remote = tmp_path / "remote"
    names = sorted(p.name for p in remote.iterdir())
    assert len(names) == 2 and names[0].endswith(".sql.gz") and names[1].endswith(".sha256")
    assert remote.stat().st_mode & 0o777 == 0o700
    assert (remote / names[0]).stat().st_mode & 0o777 == 0o600
    (line,) = (env.out / "manifest.jsonl").read_text().splitlines()
    assert f'"location": "flowlet-direct:{remote / names[0]}"' in line
    record = json.loads(line)
    assert record["server_version"].startswith("15.") and "pg_dump" in record["dump_version"]
    assert (
        run_task(NS, ["backup.verify", "--file", str(remote / names[0])], config_file=env.config)
        == 0
    )
    # the remote passfile is gone (other processes' files may come and go meanwhile)
    assert not set(Path("/tmp").glob("flowlet-*/secret")) - secrets_before


def test_remote_pipeline_failure(
    remote_env: BackupEnv,
    earlier_backup: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = remote_env
    earlier = plant_earlier(earlier_backup, env.out)
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "wrong")
    for extra in ([], ["--keep-remote"]):
        argv = ["backup.postgres", "--host", "flowlet-db", *extra]
        assert run_task(NS, argv, config_file=env.config) != 0
        err = capsys.readouterr().err
        assert "password authentication failed" in err and "nothing written" in err
    assert sorted(n for n in env.files() if n != "manifest.jsonl") == sorted(earlier)
    remote = tmp_path / "remote"
    assert not remote.exists() or list(remote.iterdir()) == []


def test_ssh_dropped_mid_stream(
    remote_env: BackupEnv, earlier_backup: Path, sshd: SshServer
) -> None:
    env = remote_env
    earlier = plant_earlier(earlier_backup, env.out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-f", str(env.config), "backup.postgres", "--host",
         "flowlet-direct", "--database", "big", "--compress", "none"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        partials = list(env.out.glob("*.partial"))
        if partials and partials[0].exists() and partials[0].stat().st_size > 1_000_000:
            break
        time.sleep(0.005)
    assert sshd.kill_sessions()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "nothing written" in err
    assert sorted(n for n in env.files() if n != "manifest.jsonl") == sorted(earlier)


def test_unreachable_host(
    remote_env: BackupEnv, sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures_sshd import free_port

    closed = sshd.write_ssh_config(tmp_path / "closed_config", port=free_port())
    config = yaml.safe_load(remote_env.config.read_text())
    config["ssh"]["config_file"] = str(closed)
    remote_env.config.write_text(yaml.safe_dump(config))
    argv = ["backup.postgres", "--host", "flowlet-direct"]
    assert run_task(NS, argv, config_file=remote_env.config) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssh flowlet-direct") and "refused" in err and "\n" not in err
    assert [n for n in remote_env.files()] == []


def test_dry_run_shows_remote_pipeline_without_secret(
    remote_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--dry", "backup.postgres", "--host", "flowlet-db", "--keep-remote"]
    assert run_task(NS, argv, config_file=remote_env.config) == 0
    out = capsys.readouterr().out
    assert out.startswith("on flowlet-db (ssh, bash -eo pipefail): PGPASSFILE='<0600 remote")
    assert "kept there as" in out and remote_env.pg.password not in out
    assert remote_env.files() == []


def test_password_never_on_argv_during_remote_backup(remote_env: BackupEnv) -> None:
    from tests.test_backup_faults import wait_for

    env = remote_env
    password = env.pg.password.encode()
    locker = subprocess.Popen(
        ["psql", "-X", "-q", "-h", str(env.pg.socket_dir), "-p", str(env.pg.port), "-U", "postgres",
         "-d", "flowlet"], stdin=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert locker.stdin is not None
    locker.stdin.write("begin; lock table accounts in access exclusive mode; select 1;\n")
    locker.stdin.flush()
    time.sleep(0.3)

    def remote_dumps() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"pg_dump") and b"--dbname" in argv:
                found.append(int(entry.name))
        return found

    before = set(remote_dumps())
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-f", str(env.config), "backup.postgres", "--host",
         "flowlet-db"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: set(remote_dumps()) - before)
        time.sleep(0.3)
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert password not in cmdline, f"password in argv of pid {entry.name}"
    finally:
        locker.stdin.write("commit;\n")
        locker.stdin.close()
        locker.wait(timeout=30)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert password.decode() not in out + err


@pytest.mark.parametrize(
    "fixture,message",
    [
        ("ssh_config_bad_hostkey", "HOST KEY MISMATCH"),
        ("ssh_config_unknown_hostkey", "host key not verified"),
        ("ssh_config_wrong_key", "authentication failed for user root"),
    ],
    ids=["hostkey-mismatch", "unknown-hostkey", "auth-failure"],
)
def test_ssh_refusals_are_one_line(
    remote_env: BackupEnv,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    fixture: str,
    message: str,
) -> None:
    config = yaml.safe_load(remote_env.config.read_text())
    config["ssh"]["config_file"] = str(request.getfixturevalue(fixture))
    remote_env.config.write_text(yaml.safe_dump(config))
    argv = ["backup.postgres", "--host", "flowlet-direct"]
    assert run_task(NS, argv, config_file=remote_env.config) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssh flowlet-direct") and message in err and "\n" not in err
    assert remote_env.files() == []


@pytest.mark.parametrize("keep", [False, True], ids=["streamed", "keep-remote"])
def test_ctrl_c_during_remote_backup(
    remote_env: BackupEnv, earlier_backup: Path, sshd: SshServer, tmp_path: Path, keep: bool
) -> None:
    """SIGINT while the remote pg_dump waits on a lock: exit 130, nothing left on either side.

    The remote pg_dump must not outlive us (an orphan would wait for the lock, then dump the
    whole database into a closed pipe), and the uploaded passfile must be gone.
    """
    from tests.test_backup_faults import assert_untouched, children, wait_for

    env = remote_env
    earlier = plant_earlier(earlier_backup, env.out)
    locker = subprocess.Popen(
        ["psql", "-X", "-q", "-h", str(env.pg.socket_dir), "-p", str(env.pg.port), "-U", "postgres",
         "-d", "flowlet"], stdin=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert locker.stdin is not None
    locker.stdin.write("begin; lock table accounts in access exclusive mode; select 1;\n")
    locker.stdin.flush()
    time.sleep(0.3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-f", str(env.config), "backup.postgres", "--host",
         "flowlet-db", *(["--keep-remote"] if keep else [])], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    remote = tmp_path / "remote"

    def remote_dump() -> list[int]:
        return [
            pid
            for pid, argv in children(sshd.process.pid).items()
            if argv and argv[0].endswith("pg_dump") and "--dbname" in argv
        ]

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state not in ("Z", "X")

    try:
        (dump,) = wait_for(remote_dump)  # type: ignore[misc]
        environ = Path(f"/proc/{dump}/environ").read_bytes().split(b"\0")
        (passfile,) = [
            v[len(b"PGPASSFILE=") :].decode() for v in environ if v.startswith(b"PGPASSFILE=")
        ]
        assert Path(passfile).is_file()
        time.sleep(0.3)  # pg_dump is connected and queued behind the lock
        assert alive(dump) and list((remote if keep else env.out).glob("*.partial"))
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "interrupted: removed the partial backup" in err
        assert_untouched(env, earlier)
        # still holding the lock: the remote dump must go away on its own, promptly
        wait_for(lambda: not alive(dump), timeout=5)
        assert not Path(passfile).exists() and not Path(passfile).parent.exists()
        assert not remote.exists() or list(remote.iterdir()) == []
    finally:
        proc.kill()
        locker.stdin.write("commit;\n")
        locker.stdin.close()
        locker.wait(timeout=30)
