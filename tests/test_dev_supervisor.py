"""The supervisor in real life: concurrent starts, signals under a pseudo-terminal, ``kill -9``
of the foreground ``inv``, restart policies. Real processes in a copy of the project; every
/proc scan is scoped to that copy (fixtures_dev.project_pids)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import INV, inv_env
from fixtures_dev import DevProject

from tasks.dev import procs

pytestmark = [pytest.mark.slow, pytest.mark.signals]


def read_until(fd: int, pattern: str, timeout: float = 60) -> str:
    """Read a pty until ``pattern`` shows up (or EOF / timeout); returns what was read."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if re.search(pattern, seen.decode(errors="replace")):
            break
    return seen.decode(errors="replace")


def start_under_pty(project: DevProject, *argv: str) -> tuple[subprocess.Popen[bytes], int]:
    """``inv dev.start`` with a pseudo-terminal as its controlling terminal (a new session)."""
    master, slave = pty.openpty()

    def child() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [INV, *project.argv(*argv)],
        cwd=project.root,
        env=inv_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=child,
    )
    os.close(slave)
    return proc, master


@pytest.mark.parametrize(
    "sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"]
)
def test_foreground_stops_gracefully_on_sigterm_and_sighup(
    stack_project: DevProject, sig: int, code: int
) -> None:
    project = stack_project
    proc, master = start_under_pty(project, "dev.start")
    try:
        seen = read_until(master, r"dev\.start: all ready")
        assert "dev.start: all ready; Ctrl-C stops everything" in seen, seen
        assert len(project.records()) == 3
        proc.send_signal(sig)
        seen += read_until(master, r"interrupted \(", timeout=60)
        assert proc.wait(timeout=60) == code, seen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    name = signal.Signals(sig).name
    assert re.search(
        r"dev\.start: stopped frontend, backend, db|dev\.start: stopped backend, frontend, db", seen
    ), seen
    assert f"interrupted ({name}): start stopped" in seen
    assert project.wait_for_no_leftovers() == []
    assert project.records() == []
    db_log = (project.root / ".flowlet" / "logs" / "db.log").read_text()
    assert db_log.rstrip().endswith("db: exited with code 0")
    assert "received fast shutdown request" in db_log.rsplit("db: start (run", 1)[1]


def test_hangup_of_the_terminal_stops_the_stack(stack_project: DevProject) -> None:
    """The terminal goes away (its master side closes): SIGHUP, and no write may fail the stop."""
    project = stack_project
    proc, master = start_under_pty(project, "dev.start")
    seen = read_until(master, r"dev\.start: all ready")
    assert "all ready" in seen, seen
    os.close(master)  # the kernel hangs up the session: SIGHUP to inv
    assert proc.wait(timeout=60) == 129
    assert project.wait_for_no_leftovers() == []
    assert project.records() == []


def test_kill_9_of_the_foreground_inv_stops_its_stack(stack_project: DevProject) -> None:
    project = stack_project
    proc = project.popen("dev.start")
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "all ready" not in line:
            line = proc.stdout.readline()
            if not line:
                break
        assert "all ready" in line
        children = [project.state(n)["child"]["pid"] for n in ("db", "backend", "frontend")]
        proc.kill()
        proc.wait()
    finally:
        proc.communicate(timeout=30)
    assert project.wait_for_no_leftovers(timeout=20) == [], "the stack must die with inv"
    for pid in children:
        stat = procs.read_stat(pid)
        assert stat is None or stat.state == "Z", f"pid {pid} still runs"
    db_log = (project.root / ".flowlet" / "logs" / "db.log").read_text()
    assert "received fast shutdown request" in db_log.rsplit("db: start (run", 1)[1]
    status = project.inv("dev.status")
    assert status.returncode == 1
    assert project.inv("dev.start", "--detach").returncode == 0  # stale records are cleared
    assert project.inv("dev.stop").returncode == 0


def test_concurrent_starts_exactly_one_wins_nothing_orphaned(stack_project: DevProject) -> None:
    project = stack_project
    racers = [project.popen("dev.start", "--detach") for _ in range(3)]
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        results.append((racer.returncode, out, err))
    winners = [r for r in results if "dev.start: all ready" in r[1]]
    assert len(winners) == 1, results
    assert winners[0][0] == 0
    for code, out, err in results:
        if "all ready" in out:
            continue
        refused = code == 1 and re.fullmatch(
            r"dev\.start: already running: \S+ pid \d+ \(inv -f \S+ dev\.start --detach\) since "
            r"\S+; it supervises the stack: stop it there with Ctrl-C, or run inv dev\.stop\n",
            err,
        )
        late = code == 0 and out.startswith("dev.start: already running: db (pid ")
        assert refused or late, (code, out, err)
    records = project.records()
    assert sorted(r.name for r in records) == ["backend", "db", "frontend"]
    keepers = {r.pid for r in records}
    children = {project.state(r.name)["child"]["pid"] for r in records}
    stray = set(project.leftovers()) - keepers - children
    # what else runs is ours by lineage: postgres backends under the postmaster
    for pid in stray:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        assert parent in children, f"pid {pid} is orphaned"
    assert project.inv("dev.stop").returncode == 0
    assert project.wait_for_no_leftovers() == []


CRASHES_LATER = (
    "import socket, sys, time; s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); "
    "s.listen(); print('flaky up', flush=True); time.sleep(1.0); print('flaky dies', flush=True); "
    "sys.exit(3)"
)


def flaky_config(project: DevProject, name: str, policy: str, retries: int) -> object:
    return project.write_config(
        name,
        "      health_url: ''\n"
        f"      command: ['{{python}}', '-c', \"{CRASHES_LATER}\"]\n"
        f"      restart: {policy}\n      max_restarts: {retries}\n      backoff: 0.2\n",
    )


def test_restart_policy_restarts_and_the_retry_limit_stops_it(stack_project: DevProject) -> None:
    project = stack_project
    config = flaky_config(project, "flaky.yaml", "on-failure", 2)
    result = project.inv("dev.start", config=config, timeout=120)  # foreground: it gives up
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("frontend | flaky up") == 3, result.stdout
    assert "frontend | --- " in result.stdout and "restart 1 of 2 in 0.2s" in result.stdout
    assert "restart 2 of 2 in 0.4s" in result.stdout
    assert re.search(r"dev\.start: frontend restarted \(restart 1, pid \d+\)", result.stdout)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "dev.start: frontend exited with code 3 and was restarted 2 times (gave up: max_restarts);"
        " stopped "
    ), last
    assert project.wait_for_no_leftovers() == []
    assert project.records() == []


def test_detached_restart_policy_is_reported_by_status(stack_project: DevProject) -> None:
    project = stack_project
    config = flaky_config(project, "flaky-detached.yaml", "on-failure", 1)
    assert project.inv("dev.start", "--detach", config=config).returncode == 0
    deadline = time.monotonic() + 20
    while project.state("frontend").get("state") != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    status = project.inv("dev.status", config=config)
    rows = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "failed: exited with code 3, gave up after 1 restarts" in rows["frontend"], status.stdout
    assert rows["frontend"].split()[-2] == "1"  # RESTARTS
    assert status.returncode == 1
    log = (project.root / ".flowlet" / "logs" / "frontend.log").read_text()
    assert "gave up after 1 restarts in a row (max_restarts 1)" in log
    assert project.inv("dev.stop", config=config).returncode == 0


def test_no_policy_in_the_foreground_fails_at_the_first_exit(stack_project: DevProject) -> None:
    project = stack_project
    config = flaky_config(project, "flaky-no.yaml", "no", 3)
    began = time.monotonic()
    result = project.inv("dev.start", config=config, timeout=120)
    assert result.returncode == 1
    assert result.stdout.count("flaky up") == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("dev.start: frontend exited with code 3; stopped ")
    )
    assert time.monotonic() - began < 30
    assert project.wait_for_no_leftovers() == []
