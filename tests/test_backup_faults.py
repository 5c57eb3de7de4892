"""Faults: each exits != 0 with one line, leaves nothing at the final path and the earlier
backup intact. Signals and ``kill -9``: no password on disk, no process left, the next run
cleans up. Secrets: never on any argv, in output or --dry; no child but the database tool
gets the password (and only as an in-memory file)."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import start_inv
from fixtures_backup import (
    BackupEnv,
    descendants,
    files_containing,
    free_port,
    make_identity,
    pg_target,
    pids_alive,
    plant_earlier,
    secret_roots,
    write_config,
)

pytestmark = pytest.mark.slow


def assert_untouched(env: BackupEnv, earlier: dict[str, bytes]) -> None:
    """Only the earlier backup (byte-identical) is in the backup dir: no partial, no new file."""
    present = [n for n in env.files() if n != "manifest.jsonl"]
    assert present == sorted(earlier), present
    for name, content in earlier.items():
        assert (env.out / name).read_bytes() == content


def inv(env: BackupEnv, *argv: str, **kwargs: object) -> subprocess.Popen[str]:
    """``inv -f CONFIG ARGV`` as a real process (default signal dispositions)."""
    extra = {"FLOWLET_DB_PASSWORD": os.environ.get("FLOWLET_DB_PASSWORD", "")}
    return start_inv(["-f", str(env.config), *argv], env=extra, **kwargs)  # type: ignore[arg-type]


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError("timed out waiting")


def assert_all_gone(pids: list[int], timeout: float = 10) -> None:
    """Every recorded pid stops running within ``timeout`` (scoped: pids we started)."""
    deadline = time.monotonic() + timeout
    while pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in pids_alive(pids)}
    assert not left, f"left running: {left}"


def partial_bytes(env: BackupEnv) -> int:
    partials = [p for p in env.out.glob("*.partial")] if env.out.exists() else []
    return sum(p.stat().st_size for p in partials if p.exists())


def dump_pids(proc: subprocess.Popen[str]) -> list[int]:
    return [
        pid
        for pid, argv in descendants(proc.pid).items()
        if argv and argv[0].endswith("pg_dump") and "--dbname" in argv
    ]


class Locked:
    """Hold an exclusive lock on a table so that pg_dump waits, connected, its pipeline idle."""

    def __init__(self, env: BackupEnv, table: str = "accounts", db: str = "flowlet") -> None:
        self.proc = subprocess.Popen(
            [
                "psql",
                "-X",
                "-q",
                "-h",
                str(env.pg.socket_dir),
                "-p",
                str(env.pg.port),
                "-U",
                "postgres",
                "-d",
                db,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"begin; lock table {table} in access exclusive mode; select 1;\n")
        self.proc.stdin.flush()
        time.sleep(0.3)

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("commit;\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_wrong_password(
    pg_backup_env: BackupEnv, earlier_backup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "not-the-password")
    _out, err = inv(env, "backup.postgres").communicate(timeout=60)
    assert err.count("\n") == 1, err
    assert err.startswith("backup failed: pg_dump failed (exit 1): ")
    assert 'password authentication failed for user "flowlet"' in err and "nothing written" in err
    assert_untouched(env, earlier)
    assert '"event": "failed"' in (env.out / "manifest.jsonl").read_text()


def test_missing_password_variable(
    pg_backup_env: BackupEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWLET_DB_PASSWORD")
    proc = start_inv(["-f", str(pg_backup_env.config), "backup.postgres"])
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err == (
        "environments.development.databases.postgres.password_env: environment variable "
        "FLOWLET_DB_PASSWORD is not set (it must hold the database password)\n"
    )


@pytest.mark.parametrize("fmt", ["plain", "directory"])
def test_unreachable_server(pg_backup_env: BackupEnv, earlier_backup: Path, fmt: str) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    write_config(env.config, {"postgres": pg_target(env.pg, port=free_port())})
    proc = inv(env, "backup.postgres", "--format", fmt)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and err.count("\n") == 1, err
    assert "Connection refused" in err and "nothing written" in err
    assert_untouched(env, earlier)


def test_dump_killed_mid_stream(pg_backup_env: BackupEnv, earlier_backup: Path) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    proc = inv(env, "backup.postgres", "--database", "big", "--compress", "none")
    wait_for(lambda: partial_bytes(env) > 1_000_000)
    (dump,) = dump_pids(proc)
    os.kill(dump, signal.SIGKILL)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 137, err
    assert err == "backup failed: pg_dump failed (killed by SIGKILL); nothing written\n"
    assert_untouched(env, earlier)


def test_disk_full(pg_backup_env: BackupEnv, earlier_backup: Path) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    limit = 2_000_000

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)

    proc = subprocess.Popen(
        [
            "inv",
            "-f",
            str(env.config),
            "backup.postgres",
            "--database",
            "big",
            "--compress",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=small_files,
    )
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.endswith("File too large; nothing written\n") and err.count("\n") == 1, err
    assert_untouched(env, earlier)


@pytest.mark.signals
@pytest.mark.parametrize(
    "signum,code",
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_interrupted_mid_dump(
    pg_backup_env: BackupEnv, earlier_backup: Path, signum: int, code: int
) -> None:
    env = pg_backup_env
    earlier = plant_earlier(earlier_backup, env.out)
    proc = inv(env, "backup.postgres", "--database", "big", "--compress", "gzip")
    wait_for(lambda: partial_bytes(env) > 200_000)
    children = list(descendants(proc.pid))
    assert len(children) >= 2, children  # pg_dump and gzip (and the probes, maybe)
    os.kill(proc.pid, signum)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err == f"interrupted ({signal.Signals(signum).name}): postgres stopped\n"
    assert_untouched(env, earlier)
    assert_all_gone(children, timeout=5)  # recorded before the signal: they are ours


def test_the_leftover_check_can_fail() -> None:
    """assert_all_gone fails for a process that outlives its parent (the old check looked for
    children of a reaped parent, which /proc no longer lists: it could never fail)."""
    parent = subprocess.Popen(
        ["bash", "-c", "sleep 60 & echo $!; exit 0"], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    orphan = int(parent.stdout.readline())
    parent.wait()
    parent.stdout.close()
    try:
        with pytest.raises(AssertionError, match="left running"):
            assert_all_gone([orphan], timeout=0.5)
    finally:
        os.kill(orphan, signal.SIGKILL)
    assert_all_gone([orphan], timeout=5)


def legacy_leftovers(password: str) -> tuple[Path, Path]:
    """What older versions and a killed run leave: /tmp/flowlet-backup-*/pgpass (plain text)
    and a dead run's private directory."""
    legacy = Path(tempfile.mkdtemp(prefix="flowlet-backup-"))
    (legacy / "pgpass").write_text(f"127.0.0.1:1:*:flowlet:{password}\n")
    from tasks.core.secrets import base_dir

    base_dir().mkdir(mode=0o700, exist_ok=True)
    dead = base_dir() / "999999999-1"
    dead.mkdir(exist_ok=True)
    (dead / "secret").write_text(password)
    return legacy, dead


@pytest.mark.signals
@pytest.mark.parametrize("fmt", ["plain", "directory"])
def test_kill_9_leaves_no_password_and_no_process(
    pg_backup_env: BackupEnv, earlier_backup: Path, tmp_path: Path, fmt: str
) -> None:
    """kill -9 of inv mid-backup (an OOM kill): no password anywhere on disk, no child left
    (pg_dump's parallel workers included), and the next run cleans up."""
    env = pg_backup_env
    password = env.pg.password.encode()
    earlier = plant_earlier(earlier_backup, env.out)
    # directory: pg_dump's workers compress at level 9 (seconds of work left when we kill)
    extra = (
        ["--format", "directory", "--jobs", "2", "--level", "9"]
        if fmt == "directory"
        else ["--compress", "gzip"]
    )
    proc = inv(env, "backup.postgres", "--database", "big", *extra)

    def progressed() -> bool:
        if fmt == "plain":
            return partial_bytes(env) > 200_000
        dumps = [
            a
            for a in descendants(proc.pid).values()
            if a and a[0].endswith("pg_dump") and "--format=directory" in a
        ]
        work = [d for d in env.out.glob("*.partial.d")]
        written = sum(f.stat().st_size for d in work for f in d.iterdir()) if work else 0
        return len(dumps) >= 3 and written > 100_000  # the leader and two workers, busy

    wait_for(progressed)
    children = list(descendants(proc.pid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)

    assert_all_gone(children, timeout=1.0)  # at once: not when a worker finishes its table
    assert files_containing(secret_roots(env.out, tmp_path), password) == []
    listing = inv(env, "backup.list")
    out, err = listing.communicate(timeout=60)
    assert "FAILED (stale partial" in out, out + err
    legacy, dead = legacy_leftovers(env.pg.password)
    prune = inv(env, "backup.prune")
    out, err = prune.communicate(timeout=60)
    assert prune.returncode == 0, err
    assert "deleted stale partial" in out
    assert not legacy.exists() and not dead.exists()
    assert_untouched(env, earlier)


def test_password_never_on_argv_in_output_or_dry(pg_backup_env: BackupEnv) -> None:
    env = pg_backup_env
    password = env.pg.password
    locker = Locked(env)
    proc = inv(env, "backup.postgres")
    try:
        dump = wait_for(lambda: dump_pids(proc))
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
        assert passfile.startswith("/dev/fd/")
        fd = passfile.rsplit("/", 1)[1]
        target = os.readlink(f"/proc/{dump[0]}/fd/{fd}")  # type: ignore[index]
        assert target.startswith("/memfd:"), target  # in memory, never a file on disk
        assert not [v for v in environ if password.encode() in v]
    finally:
        locker.release()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert password not in out + err
    assert password not in (env.out / "manifest.jsonl").read_text()
    dry = inv(env, "--dry", "backup.postgres")
    out, err = dry.communicate(timeout=60)
    assert dry.returncode == 0, err
    assert "pg_dump --host 127.0.0.1" in out
    assert "PGPASSFILE=<in-memory passfile from $FLOWLET_DB_PASSWORD>" in out
    assert password not in out + err


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_only_the_dump_tool_gets_the_password(
    pg_backup_env: BackupEnv, tmp_path: Path, compress: str
) -> None:
    """/proc/<pid>/environ and open files of every child during a backup: the compressor and
    age have neither the password variable nor the password file; pg_dump has the file only."""
    import yaml

    env = pg_backup_env
    public, _identity = make_identity(tmp_path)
    config = yaml.safe_load(env.config.read_text())
    config["backup"]["recipients"] = [public]
    env.config.write_text(yaml.safe_dump(config))
    password = env.pg.password.encode()
    locker = Locked(env)
    proc = inv(env, "backup.postgres", "--compress", compress, "--encrypt")
    try:
        wait_for(lambda: dump_pids(proc))
        time.sleep(0.3)
        kids = descendants(proc.pid)
        names = {Path(a[0]).name: pid for pid, a in kids.items() if a}
        compressor = {"gzip": "pigz" if shutil.which("pigz") else "gzip"}.get(compress, compress)
        assert {"pg_dump", compressor, "age"} <= set(names), kids
        for pid in (proc.pid, *names.values()):  # no core file ever holds a password
            limits = Path(f"/proc/{pid}/limits").read_text()
            assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M), limits
        for name, pid in names.items():
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert password not in environ and b"FLOWLET_DB_PASSWORD=" not in environ, name
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            memfds = [f for f in fds if f.startswith("/memfd:flowlet-db-password")]
            assert bool(memfds) == (name in ("pg_dump", "psql")), (name, fds)
    finally:
        locker.release()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


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
    children = list(descendants(proc.pid))
    os.kill(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert_untouched(env, earlier)
    assert_all_gone(children, timeout=5)
