"""Secrets in memory only; the per-run private directory and the sweep of dead runs' dirs;
the JSON-lines writer; the one-operation-at-a-time lock."""

from __future__ import annotations

import json
import os
import stat
import subprocess  # nosec B404
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tasks.core import jsonl, locks, runner, secrets
from tasks.core.errors import Refused


def test_a_secret_file_is_readable_by_the_child_it_is_given_to_and_never_on_disk() -> None:
    with secrets.SecretFile("host:5432:*:user:s3cret\n") as secret:
        assert stat.S_IMODE(os.fstat(secret.fd).st_mode) == 0o600
        child = runner.spawn(["cat", secret.path], fds=(secret.fd,), stdout=subprocess.PIPE)
        out, _ = child.communicate()
        assert out == b"host:5432:*:user:s3cret\n"
        assert os.readlink(f"/proc/self/fd/{secret.fd}").startswith("/memfd:")
        assert "s3cret" not in repr(secret)
        other = runner.capture(["cat", secret.path])
        assert other.returncode != 0, "a child not given the descriptor must not read it"
    assert secret.fd == -1


def test_libpq_reads_a_passfile_from_a_secret_file() -> None:
    from conftest import need

    need("psql")
    with secrets.SecretFile("*:*:*:*:pw\n") as secret:
        child = runner.capture(
            ["sh", "-c", f"PGPASSFILE={secret.path} psql -h 127.0.0.1 -p 1 -w -c 'select 1' 2>&1"],
        )
    assert "password file" not in child.stdout  # libpq accepted it (no "not a plain file")


def test_run_dir_is_private_and_removed_by_the_boundary() -> None:
    from tasks.core import boundary

    path = secrets.run_dir()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert secrets.run_dir() == path
    finally:
        boundary.run_cleanups()
    assert not path.exists()


def test_sweep_removes_dirs_of_dead_runs_and_legacy_dirs_but_keeps_live_ones() -> None:
    base = secrets.base_dir()
    base.mkdir(mode=0o700, exist_ok=True)
    dead = subprocess.Popen(["true"])  # nosec B603
    dead.wait()
    gone = base / f"{dead.pid}-12345"
    gone.mkdir()
    (gone / "pgpass").write_text("secret")
    live = base / f"{os.getpid()}-{secrets._start_ticks(os.getpid())}"
    live.mkdir(exist_ok=True)
    legacy = Path(tempfile.mkdtemp(prefix="flowlet-backup-"))
    (legacy / "pgpass").write_text("secret")
    removed = secrets.sweep()
    assert gone in removed and not gone.exists()
    assert legacy in removed and not legacy.exists()
    assert live.exists()
    live.rmdir()


def test_jsonl_appends_whole_lines_0600_and_skips_a_torn_one(tmp_path: Path) -> None:
    log = tmp_path / "sub" / "audit.jsonl"
    jsonl.append(log, {"event": "deploy", "n": 1})
    with open(log, "a") as handle:
        handle.write('{"event": "torn"')  # a writer killed mid-line
    jsonl.append(log, {"event": "deploy", "n": 2})
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    assert [r["n"] for r in jsonl.read(log)] == [1]  # the torn line swallowed the next one
    assert list(jsonl.read(tmp_path / "missing.jsonl")) == []


HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from tasks.core import locks
with locks.hold(__import__("pathlib").Path({path!r}), "dev.start"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_holder_is_refused_naming_the_first_and_kill_9_frees_the_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run" / "dev.lock"
    code = HOLDER.format(repo=os.getcwd(), path=str(path))
    first = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )  # nosec
    assert first.stdout is not None and first.stdout.readline() == "held\n"
    try:
        with pytest.raises(Refused) as refused:
            with locks.hold(path, "dev.start", hint="stop it with inv dev.stop"):
                pass
        message = refused.value.message
        assert message.startswith("dev.start: already running: ")
        assert f"pid {first.pid} " in message and message.endswith("; stop it with inv dev.stop")
        assert json.loads(path.read_text())["pid"] == first.pid
        assert locks.holder(path)["pid"] == first.pid  # type: ignore[index]
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
    with locks.hold(path, "dev.start"):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert locks.holder(path) is None


def test_a_waiting_holder_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "fix.lock"
    code = HOLDER.format(repo=os.getcwd(), path=str(path)).replace(
        "time.sleep(60)", "time.sleep(0.5)"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )  # nosec
    assert first.stdout is not None and first.stdout.readline() == "held\n"
    started = time.monotonic()
    with locks.hold(path, "lint --fix", wait=30):
        assert time.monotonic() - started < 30
    first.wait()
    first.stdout.close()


def test_no_core_dumps_and_not_dumpable() -> None:
    """A task's process writes no core file and is not dumpable (its /proc/PID/environ and
    memory are root's); the core limit is inherited by every child it starts."""
    code = (
        "import ctypes, resource, subprocess\n"
        "from tasks.core.secrets import no_core_dumps\n"
        "no_core_dumps()\n"
        "libc = ctypes.CDLL(None)\n"
        "print(libc.prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))\n"
        "print(subprocess.run(['sh', '-c', 'ulimit -c; ulimit -Hc'], capture_output=True,"
        " text=True).stdout.split())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    assert done.stdout.splitlines() == ["0 (0, 0)", "['0', '0']"], done.stdout
