"""Remote backups over a real sshd (through a ProxyJump gateway) against the real PostgreSQL:
the password travels on the channel's stdin only (never on a command line or the remote disk)
and the remote pipeline dies with the connection (Ctrl-C, kill -9, a dropped session)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import run_task, start_inv
from fixtures_backup import (
    BackupEnv,
    backup_collection,
    descendants,
    files_containing,
    pids_alive,
    plant_earlier,
    secret_roots,
    update_config,
)
from fixtures_sshd import SshServer
from test_backup_faults import Locked, assert_all_gone, assert_untouched, wait_for

pytestmark = pytest.mark.slow
NS = backup_collection()


@pytest.fixture
def remote_env(pg_backup_env: BackupEnv, ssh_config: Path, tmp_path: Path) -> BackupEnv:
    update_config(
        pg_backup_env.config,
        ssh={"config_file": str(ssh_config), "connect_timeout": 5},
        backup={"remote_dir": str(tmp_path / "remote")},
    )
    return pg_backup_env


def inv(env: BackupEnv, *argv: str) -> subprocess.Popen[str]:
    return start_inv(["-f", str(env.config), *argv], env={"FLOWLET_DB_PASSWORD": env.pg.password})


def remote_dumps(sshd: SshServer) -> dict[int, list[str]]:
    """pg_dump processes run by the test sshd's sessions (scoped to that sshd)."""
    return {
        pid: argv
        for pid, argv in descendants(sshd.process.pid).items()
        if argv and argv[0].endswith("pg_dump") and "--dbname" in argv
    }


@pytest.mark.parametrize(
    "fmt,compress",
    [("custom", "zstd"), ("plain", "gzip"), ("plain", "none"), ("directory", "gzip")],
    ids=["custom-zstd", "plain-gzip", "plain-none", "directory-gzip"],
)
def test_round_trip_streamed_through_gateway(
    remote_env: BackupEnv, fmt: str, compress: str
) -> None:
    env = remote_env
    argv = ["backup.postgres", "--host", "flowlet-db", "--format", fmt, "--compress", compress]
    if fmt == "directory":
        argv += ["--jobs", "2", "--globals"]
    assert run_task(NS, argv, config_file=env.config) == 0
    made = [p for p in env.backups() if ".globals." not in p.name]
    assert len(made) == 1 and made[0].stat().st_mode & 0o777 == 0o600
    record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["locations"] == {"local": str(made[0])} and record["ran_on"] == "flowlet-db"
    assert record["server_version"].startswith("15.") and "pg_dump" in record["dump_version"]
    assert run_task(NS, ["backup.verify", "--file", str(made[0])], config_file=env.config) == 0
    target = "restored_" + uuid.uuid4().hex[:8]
    restore = ["backup.restore", str(made[0]), "--database", target]
    assert run_task(NS, restore, config_file=env.config) == 0
    pg = env.pg
    assert pg.schema(target) == pg.schema("flowlet")
    assert pg.row_counts(target) == pg.row_counts("flowlet")
    assert pg.checksum(target) == pg.checksum("flowlet")


def test_keep_remote(remote_env: BackupEnv, tmp_path: Path) -> None:
    env = remote_env
    argv = ["backup.postgres", "--host", "flowlet-direct", "--keep-remote"]
    assert run_task(NS, argv, config_file=env.config) == 0
    remote = tmp_path / "remote"
    names = sorted(p.name for p in remote.iterdir())
    assert len(names) == 2 and names[0].endswith(".sql.gz") and names[1].endswith(".sha256")
    assert remote.stat().st_mode & 0o777 == 0o700
    assert (remote / names[0]).stat().st_mode & 0o777 == 0o600
    (line,) = (env.out / "manifest.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["locations"] == {"remote": f"flowlet-direct:{remote / names[0]}"}
    assert record["server_version"].startswith("15.") and "pg_dump" in record["dump_version"]
    verify = ["backup.verify", "--file", str(remote / names[0])]
    assert run_task(NS, verify, config_file=env.config) == 0


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
        assert err.count("\n") == 1, err
    assert_untouched(env, earlier)
    remote = tmp_path / "remote"
    assert not remote.exists() or list(remote.iterdir()) == []


def test_ssh_dropped_mid_stream(
    remote_env: BackupEnv, earlier_backup: Path, sshd: SshServer
) -> None:
    env = remote_env
    earlier = plant_earlier(earlier_backup, env.out)
    proc = inv(
        env,
        "backup.postgres",
        "--host",
        "flowlet-direct",
        "--database",
        "big",
        "--compress",
        "none",
    )

    def partial() -> bool:
        parts = list(env.out.glob("*.partial"))
        return bool(parts) and parts[0].exists() and parts[0].stat().st_size > 1_000_000

    wait_for(partial, timeout=60)
    assert sshd.kill_sessions()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and err.count("\n") == 1, err
    assert "connection lost" in err and "nothing written" in err
    assert_untouched(env, earlier)


def test_unreachable_host(
    remote_env: BackupEnv, sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fixtures_sshd import free_port

    closed = sshd.write_ssh_config(tmp_path / "closed_config", port=free_port())
    update_config(remote_env.config, ssh={"config_file": str(closed)})
    argv = ["backup.postgres", "--host", "flowlet-direct"]
    assert run_task(NS, argv, config_file=remote_env.config) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssh flowlet-direct") and "refused" in err and "\n" not in err
    assert [n for n in remote_env.files() if n != "manifest.jsonl"] == []


def test_dry_run_shows_remote_pipeline_without_secret(
    remote_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--dry", "backup.postgres", "--host", "flowlet-db", "--keep-remote"]
    assert run_task(NS, argv, config_file=remote_env.config) == 0
    out = capsys.readouterr().out
    assert out.startswith("on flowlet-db (ssh, bash -eo pipefail; password on the channel's stdin")
    assert 'PGPASSWORD="$FLOWLET_SECRET" pg_dump' in out
    assert "kept there as" in out and remote_env.pg.password not in out
    assert remote_env.files() == []


def test_password_never_on_argv_or_remote_disk(remote_env: BackupEnv, sshd: SshServer) -> None:
    """During a remote backup: no argv anywhere has the password, the remote side has no file
    with it (it is a shell variable, then pg_dump's PGPASSWORD), gzip there has neither."""
    env = remote_env
    password = env.pg.password.encode()
    locker = Locked(env)
    before = set(remote_dumps(sshd))
    proc = inv(env, "backup.postgres", "--host", "flowlet-db")
    try:
        (dump,) = wait_for(lambda: set(remote_dumps(sshd)) - before)  # type: ignore[misc]
        time.sleep(0.3)
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert password not in cmdline, f"password in argv of pid {entry.name}"
        session = descendants(sshd.process.pid)
        gzips = [pid for pid, argv in session.items() if argv and argv[0].endswith("gzip")]
        assert gzips
        for pid in gzips:
            assert password not in Path(f"/proc/{pid}/environ").read_bytes()
        environ = Path(f"/proc/{dump}/environ").read_bytes().split(b"\0")
        assert b"PGPASSWORD=" + password in environ  # given to pg_dump only
        assert not any(v.startswith(b"PGPASSFILE=") for v in environ)
        assert files_containing(secret_roots(env.out), password) == []
    finally:
        locker.release()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert password.decode() not in out + err


@pytest.mark.signals
@pytest.mark.parametrize("keep", [False, True], ids=["streamed", "keep-remote"])
def test_ctrl_c_during_remote_backup(
    remote_env: BackupEnv, earlier_backup: Path, sshd: SshServer, tmp_path: Path, keep: bool
) -> None:
    """SIGINT while the remote pg_dump waits on a lock: exit 130, nothing left on either side.

    The remote pg_dump must not outlive us (an orphan would wait for the lock, then dump the
    whole database into a closed pipe).
    """
    env = remote_env
    earlier = plant_earlier(earlier_backup, env.out)
    locker = Locked(env)
    before = set(remote_dumps(sshd))
    proc = inv(env, "backup.postgres", "--host", "flowlet-db", *(["--keep-remote"] if keep else []))
    remote = tmp_path / "remote"
    try:
        (dump,) = wait_for(lambda: set(remote_dumps(sshd)) - before)  # type: ignore[misc]
        time.sleep(0.3)  # pg_dump is connected and queued behind the lock
        assert pids_alive([dump]) and list((remote if keep else env.out).glob("*.partial"))
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert err == "interrupted (SIGINT): postgres stopped\n"
        assert_untouched(env, earlier)
        # still holding the lock: the remote dump must go away on its own, promptly
        assert_all_gone([dump], timeout=5)
        assert not remote.exists() or list(remote.iterdir()) == []
    finally:
        proc.kill()
        locker.release()


@pytest.mark.signals
@pytest.mark.parametrize("fmt", ["plain", "directory"])
def test_kill_9_during_remote_backup(
    remote_env: BackupEnv, earlier_backup: Path, sshd: SshServer, tmp_path: Path, fmt: str
) -> None:
    """kill -9 of inv mid --host backup: the remote pipeline dies with the connection, no
    password on disk on either side, the next run's prune removes the stale partial."""
    env = remote_env
    password = env.pg.password.encode()
    earlier = plant_earlier(earlier_backup, env.out)
    before = set(remote_dumps(sshd))
    extra = ["--format", "directory", "--jobs", "2", "--level", "9"] if fmt == "directory" else []
    proc = inv(env, "backup.postgres", "--host", "flowlet-db", "--database", "big", *extra)

    def busy() -> list[int]:
        dumps = set(remote_dumps(sshd)) - before
        return sorted(dumps) if len(dumps) >= (3 if fmt == "directory" else 1) else []

    wait_for(busy, timeout=60)
    time.sleep(0.5)
    remote_pids = sorted(set(descendants(sshd.process.pid)) - before)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert_all_gone(remote_pids, timeout=10)
    assert files_containing(secret_roots(env.out, tmp_path), password) == []
    prune = inv(env, "backup.prune")
    out, err = prune.communicate(timeout=60)
    assert prune.returncode == 0 and "deleted stale partial" in out, out + err
    assert_untouched(env, earlier)
