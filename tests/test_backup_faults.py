"""Faults: each exits != 0, leaves nothing at the final path and the earlier backup intact.

Also the secrets check: the password never shows in any process's argv, in output or --dry.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, run_task
from tests.fixtures_backup import (
    BackupEnv,
    backup_collection,
    free_port,
    pg_target,
    plant_earlier,
    write_config,
)

pytestmark = pytest.mark.slow
NS = backup_collection()


def assert_untouched(env: BackupEnv, earlier: dict[str, bytes]) -> None:
    """Only the earlier backup (byte-identical) is in the backup dir: no partial, no new file."""
    present = [n for n in env.files() if n != "manifest.jsonl"]
    assert present == sorted(earlier), present
    for name, content in earlier.items():
        assert (env.out / name).read_bytes() == content


def inv(env: BackupEnv, *argv: str, **kwargs: object) -> subprocess.Popen[str]:
    """``inv -f CONFIG ARGV`` as a subprocess (for signals and resource limits)."""
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "-f", str(env.config), *argv],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def children(pid: int) -> dict[int, list[str]]:
    """Descendant pids of ``pid`` with their argv."""
    found: dict[int, list[str]] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            kids = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found[kid] = [a.decode(errors="replace") for a in argv if a]
            todo.append(kid)
    return found


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError("timed out waiting")


def partial_bytes(env: BackupEnv) -> int:
    partials = [p for p in env.out.glob("*.partial")] if env.out.exists() else []
    return sum(p.stat().st_size for p in partials if p.exists())


def test_wrong_password(
    pg_backup_env: BackupEnv,
    earlier_backup: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "not-the-password")
    assert run_task(NS, ["backup.postgres"], config_file=env.config) != 0
    err = capsys.readouterr().err
    assert 'password authentication failed for user "flowlet"' in err
    assert "backup failed: pg_dump failed (exit 1); nothing written" in err
    assert_untouched(env, earlier)


def test_missing_password_variable(
    pg_backup_env: BackupEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FLOWLET_DB_PASSWORD")
    assert run_task(NS, ["backup.postgres"], config_file=pg_backup_env.config) == 1
    assert capsys.readouterr().err.strip() == (
        "environments.development.databases.postgres.password_env: environment variable "
        "FLOWLET_DB_PASSWORD is not set (it must hold the database password)"
    )


@pytest.mark.parametrize("fmt", ["plain", "directory"])
def test_unreachable_server(
    pg_backup_env: BackupEnv, earlier_backup: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    target = pg_target(env.pg, port=free_port())
    write_config(env.config, {"postgres": target})
    assert run_task(NS, ["backup.postgres", "--format", fmt], config_file=env.config) != 0
    err = capsys.readouterr().err
    assert "Connection refused" in err and "nothing written" in err
    assert_untouched(env, earlier)


def test_dump_killed_mid_stream(pg_backup_env: BackupEnv, earlier_backup: Path) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    proc = inv(env, "backup.postgres", "--database", "big", "--compress", "none")
    wait_for(lambda: partial_bytes(env) > 1_000_000)
    (dump,) = [
        pid
        for pid, argv in children(proc.pid).items()
        if argv and argv[0].endswith("pg_dump") and "--dbname" in argv
    ]
    os.kill(dump, signal.SIGKILL)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "pg_dump failed (killed by SIGKILL); nothing written" in err
    assert_untouched(env, earlier)


def test_disk_full(pg_backup_env: BackupEnv, earlier_backup: Path) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    limit = 2_000_000

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = inv(env, "backup.postgres", "--database", "big", "--compress", "none",
               preexec_fn=small_files)  # fmt: skip
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "File too large; nothing written" in err
    assert_untouched(env, earlier)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_mid_dump(pg_backup_env: BackupEnv, earlier_backup: Path, signum: int) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    proc = inv(env, "backup.postgres", "--database", "big", "--compress", "none")
    wait_for(lambda: partial_bytes(env) > 1_000_000)
    os.kill(proc.pid, signum)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: removed the partial backup" in err
    assert_untouched(env, earlier)
    time.sleep(0.2)
    assert not [a for a in children(proc.pid).values()]


def test_password_never_on_argv_in_output_or_dry(pg_backup_env: BackupEnv) -> None:
    env = pg_backup_env
    password = env.pg.password
    # Hold a lock so that pg_dump waits (connected, passfile in place) while we look around.
    locker = subprocess.Popen(
        ["psql", "-X", "-q", "-h", str(env.pg.socket_dir), "-p", str(env.pg.port), "-U", "postgres",
         "-d", "flowlet"], stdin=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert locker.stdin is not None
    locker.stdin.write("begin; lock table accounts in access exclusive mode; select 1;\n")
    locker.stdin.flush()
    time.sleep(0.3)
    proc = inv(env, "backup.postgres")
    try:
        dump = wait_for(
            lambda: [
                p
                for p, a in children(proc.pid).items()
                if a and a[0].endswith("pg_dump") and "--dbname" in a
            ]
        )
        time.sleep(0.3)
        seen = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                seen += 1
                assert password.encode() not in cmdline, f"password in argv of pid {entry.name}"
        assert seen > 5
        environ = Path(f"/proc/{dump[0]}/environ").read_bytes().split(b"\0")  # type: ignore[index]
        (passfile,) = [
            v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PGPASSFILE=")
        ]
        assert os.stat(passfile).st_mode & 0o777 == 0o600
        assert not [v for v in environ if password.encode() in v]
    finally:
        locker.stdin.write("commit;\n")
        locker.stdin.close()
        locker.wait(timeout=30)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not Path(passfile).exists() and not Path(passfile).parent.exists()
    assert password not in out + err
    assert password not in (env.out / "manifest.jsonl").read_text()
    dry = subprocess.run(
        [sys.executable, "-m", "invoke", "-f", str(env.config), "--dry", "backup.postgres"],
        cwd=REPO, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "pg_dump --host 127.0.0.1" in dry.stdout
    assert "PGPASSFILE=<0600 temp passfile written from $FLOWLET_DB_PASSWORD>" in dry.stdout
    assert password not in dry.stdout + dry.stderr


def test_interrupted_directory_dump_removes_work_dir(
    pg_backup_env: BackupEnv, earlier_backup: Path
) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    proc = inv(env, "backup.postgres", "--database", "big", "--format", "directory", "--jobs", "2")

    def work_dir_bytes() -> int:
        try:
            return sum(f.stat().st_size for d in env.out.glob("*.partial.d") for f in d.iterdir())
        except OSError:  # a file or the directory went away between listing and stat
            return 0

    wait_for(lambda: work_dir_bytes() > 500_000)
    os.kill(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert_untouched(env, earlier)
