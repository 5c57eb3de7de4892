"""setup --env development and dev.* against real processes: PostgreSQL, backend, frontend.

All through the real ``inv`` binary in a throwaway copy of the project (fixtures_dev.py); after
each test nothing of the copy may still run (the ``stack_project`` fixture checks /proc).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import need
from fixtures_dev import DevProject

from tasks.dev.envfile import parse_env

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310
        return int(answer.status), answer.read().decode()


def post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), json.loads(exc.read())


def mtimes(project: DevProject) -> dict[str, int]:
    paths = [".env.local", "dev-start.sh", ".flowlet/setup/npm-lock.sha256"]
    return {p: (project.root / p).stat().st_mtime_ns for p in paths if (project.root / p).exists()}


def test_setup_is_idempotent_keeps_secrets_and_rewrites_nothing(dev_project: DevProject) -> None:
    need("node", "npm", "initdb", "runuser")
    first = dev_project.inv("setup", "--env", "development")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "setup: database cluster: initdb" in first.stdout
    assert "setup: .env.local: create from .env.template" in first.stdout
    env_file = dev_project.root / ".env.local"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = parse_env(env_file.read_text())
    assert len(values["FLOWLET_DB_PASSWORD"]) >= 32
    script = dev_project.root / "dev-start.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    assert "exec inv dev.start" in script.read_text()
    before = mtimes(dev_project)
    assert ".flowlet/setup/npm-lock.sha256" in before

    second = dev_project.inv("setup", "--env", "development")
    assert second.returncode == 0, second.stderr
    assert second.stdout.rstrip().endswith(
        "setup: nothing changed: the development environment is already set up"
    )
    assert mtimes(dev_project) == before, "an unchanged setup must rewrite nothing"
    assert env_file.read_text().count("FLOWLET_DB_PASSWORD=") == 1
    for secret in (values["FLOWLET_DB_PASSWORD"], values["FLOWLET_SESSION_SECRET"]):
        for output in (first.stdout, first.stderr, second.stdout, second.stderr):
            assert secret not in output
    assert not dev_project.records(), "setup must stop the server it started"
    assert dev_project.wait_for_no_leftovers() == []


def test_user_value_is_kept_and_becomes_the_role_password(stack_project: DevProject) -> None:
    project = stack_project
    env_file = project.root / ".env.local"
    original = env_file.read_text()
    lines = [ln for ln in original.splitlines() if not ln.startswith("FLOWLET_SESSION_SECRET=")]
    lines = [
        "FLOWLET_DB_PASSWORD=chosen:by\\me" if ln.startswith("FLOWLET_DB_PASSWORD=") else ln
        for ln in lines
    ]
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o644)
    result = project.inv("setup")
    assert result.returncode == 0, result.stderr
    assert "setup: .env.local: add FLOWLET_SESSION_SECRET" in result.stdout
    assert "setup: database role: create/update role flowlet" in result.stdout
    values = parse_env(env_file.read_text())
    assert values["FLOWLET_DB_PASSWORD"] == "chosen:by\\me"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    again = project.inv("setup")
    assert "nothing changed" in again.stdout, again.stdout + again.stderr


def test_dry_start_prints_the_plan_and_starts_nothing(stack_project: DevProject) -> None:
    result = stack_project.inv("--dry", "dev.start")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [ln.split(":")[1].split()[-1] for ln in lines] == [
        "db",
        "migrate",
        "backend",
        "frontend",
    ]
    assert lines[1].startswith("dev.start: would run migrate: ")
    assert lines[1].endswith("; a oneshot: until it exits 0)")
    assert f"-p {stack_project.ports['db']}" in lines[0]
    assert stack_project.records() == []
    password = parse_env((stack_project.root / ".env.local").read_text())["FLOWLET_DB_PASSWORD"]
    assert password not in result.stdout


def environ(pid: int) -> dict[str, str]:
    data = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in data if b"=" in item)


def test_detach_status_http_least_privilege_and_stop(stack_project: DevProject) -> None:
    project = stack_project
    began = time.monotonic()
    started = project.inv("dev.start", "--detach")
    took = time.monotonic() - began
    assert started.returncode == 0, started.stdout + started.stderr
    assert {r.name for r in project.records()} == {"db", "backend", "frontend"}
    print(f"dev.start --detach took {took:.2f}s")

    status = project.inv("dev.status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert {row[0]: row[3] for row in rows} == {
        "db": "up",
        "migrate": "completed",
        "backend": "up",
        "frontend": "up",
    }
    assert re.search(r"^migrate +- +- +completed \d+s ago \(exit 0\)", status.stdout, re.M)

    assert get(project.url("backend", "/healthz"))[0] == 200
    code, body = post(project.url("frontend", "/api/accounts"), {"name": "stack-test"})
    assert code == 201, body
    code, body = post(
        project.url("frontend", "/api/deposits"), {"to": body["id"], "amount": "10.05"}
    )
    assert code == 201, body
    code, text = get(project.url("frontend", "/api/accounts"))
    accounts = {a["name"]: a for a in json.loads(text)}
    assert accounts["stack-test"]["balance_cents"] == "1005"
    assert accounts["stack-test"]["balance"] == "10.05"

    secrets = parse_env((project.root / ".env.local").read_text())
    pids = {n: project.state(n)["child"]["pid"] for n in ("db", "backend", "frontend")}
    frontend, backend = environ(pids["frontend"]), environ(pids["backend"])
    assert backend["FLOWLET_DB_PASSWORD"] == secrets["FLOWLET_DB_PASSWORD"]
    for key in ("FLOWLET_DB_PASSWORD", "FLOWLET_SESSION_SECRET"):
        assert key not in frontend, f"the frontend must not receive {key}"
        assert key not in environ(pids["db"])
        for record in project.records():
            assert key not in environ(record.pid), "a keeper's own environment holds no secret"
    assert frontend["FLOWLET_LOG_LEVEL"] == "info"

    again = project.inv("dev.start", "--detach")
    assert again.returncode == 0
    assert again.stdout.startswith("dev.start: already running: db (pid ")

    logs = project.inv("dev.logs", "--name", "backend", "--lines", "50")
    assert logs.returncode == 0 and "backend | flowlet-backend listening" in logs.stdout

    began = time.monotonic()
    stopped = project.inv("dev.stop")
    print(f"dev.stop took {time.monotonic() - began:.2f}s")
    assert stopped.returncode == 0, stopped.stderr
    assert re.match(
        r"dev\.stop: stopped frontend \(pid \d+\), backend \(pid \d+\), db", stopped.stdout
    )
    assert project.wait_for_no_leftovers() == []
    assert project.records() == []
    down = project.inv("dev.status")
    assert down.returncode == 1
    assert down.stderr.strip() == "dev.status: not up: db, backend, frontend"


def test_status_is_truthful_unhealthy_and_dead_processes(stack_project: DevProject) -> None:
    project = stack_project
    assert project.inv("dev.start", "--detach").returncode == 0
    assert project.inv("dev.stop", "--name", "db").returncode == 0  # backend's /healthz: 503
    status = project.inv("dev.status")
    assert status.returncode == 1
    rows = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "unhealthy (HTTP 503)" in rows["backend"], status.stdout
    assert " stopped " in rows["db"] + " "
    assert status.stderr.strip() == "dev.status: not up: db, backend"

    frontend = project.state("frontend")["child"]["pid"]
    os.kill(frontend, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while project.state("frontend").get("state") != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = project.inv("dev.status")
    rows = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "killed by SIGKILL" in rows["frontend"], status.stdout
    assert status.returncode == 1


def test_per_process_start_stop_restart(stack_project: DevProject) -> None:
    project = stack_project
    # --name starts what it needs first (backend after db), and nothing else
    started = project.inv("dev.start", "--detach", "--name", "backend")
    assert started.returncode == 0, started.stdout + started.stderr
    assert {r.name for r in project.records()} == {"db", "backend"}
    assert "dev.start: db ready" in started.stdout.splitlines()[0]
    more = project.inv("dev.start", "--detach", "--name", "frontend")
    assert more.returncode == 0 and {r.name for r in project.records()} == {
        "db",
        "backend",
        "frontend",
    }
    db_pid = project.state("db")["child"]["pid"]
    old = project.state("backend")["child"]["pid"]
    restarted = project.inv("dev.restart", "--name", "backend")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    new = project.state("backend")["child"]["pid"]
    assert new != old and restarted.stdout.startswith("dev.restart: backend restarted in ")
    assert project.state("db")["child"]["pid"] == db_pid, "only backend restarts"
    assert get(project.url("backend", "/healthz"))[0] == 200
    log = (project.root / ".flowlet" / "logs" / "backend.log").read_text()
    assert "restart (requested by inv dev.restart)" in log

    stopped = project.inv("dev.stop", "--name", "frontend")
    assert stopped.returncode == 0 and stopped.stdout.startswith("dev.stop: stopped frontend")
    assert {r.name for r in project.records()} == {"db", "backend"}
    status = project.inv("dev.status")
    assert status.returncode == 1 and status.stderr.strip() == "dev.status: not up: frontend"


def test_port_taken_is_refused(stack_project: DevProject) -> None:
    project = stack_project
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", project.ports["frontend"]))
        squatter.listen()
        result = project.inv("dev.start", "--detach")
    assert result.returncode == 1
    port = project.ports["frontend"]
    assert result.stderr.strip() == (
        f"dev.start: port {port} (frontend) is already in use; stop what listens there "
        "or set dev.processes.frontend.port"
    )
    assert project.records() == []


def test_readiness_timeout_stops_what_it_started_and_shows_this_run_only(
    stack_project: DevProject,
) -> None:
    project = stack_project
    log = project.root / ".flowlet" / "logs" / "frontend.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        handle.write("a line from an earlier run\n")
    config = project.write_config(
        "never-ready.yaml", "      health_url: http://{host}:{port}/never\n"
    )
    config.write_text(config.read_text().replace("ready_timeout: 20", "ready_timeout: 3"))
    result = project.inv("dev.start", "--detach", config=config)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "dev.start: frontend not ready within 3s (waited for HTTP 200 from http://127.0.0.1:"
    )
    assert "stopped db, frontend" in last or "stopped frontend, db" in last
    assert "frontend | flowlet-frontend listening" in result.stderr  # the log's last lines
    assert "earlier run" not in result.stderr, "the tail covers the current run only"
    assert project.records() == []
    assert project.wait_for_no_leftovers() == []


IGNORES_SIGTERM = (
    "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
)


def test_stop_kills_a_group_that_ignores_sigterm(stack_project: DevProject) -> None:
    project = stack_project
    config = project.write_config(
        "stubborn.yaml",
        "      health_url: ''\n" f"      command: ['{{python}}', '-c', \"{IGNORES_SIGTERM}\"]\n",
    )
    config.write_text(config.read_text().replace("stop_grace: 5", "stop_grace: 1"))
    started = project.inv("dev.start", "--detach", config=config)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "frontend ready" in started.stdout
    stopped = project.inv("dev.stop", config=config)
    assert stopped.returncode == 0, stopped.stderr
    assert "dev.stop: frontend did not stop within 1s: killed" in stopped.stdout
    assert project.wait_for_no_leftovers() == []
    assert project.records() == []


def test_a_held_client_connection_does_not_slow_dev_stop(stack_project: DevProject) -> None:
    import psycopg

    project = stack_project
    assert project.inv("dev.start", "--detach").returncode == 0
    password = parse_env((project.root / ".env.local").read_text())["FLOWLET_DB_PASSWORD"]
    conn = psycopg.connect(
        host="127.0.0.1",
        port=project.ports["db"],
        dbname="flowlet",
        user="flowlet",
        password=password,
    )
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT 1")  # an open transaction, held across dev.stop
        began = time.monotonic()
        stopped = project.inv("dev.stop")
        took = time.monotonic() - began
    finally:
        try:
            conn.close()
        except psycopg.Error:
            pass
    assert stopped.returncode == 0, stopped.stderr
    assert "killed" not in stopped.stdout
    assert took < 5, f"dev.stop took {took:.1f}s with a client connected"
    db_log = project.root / ".flowlet" / "logs" / "db.log"
    assert "received fast shutdown request" in db_log.read_text()
    assert project.inv("dev.start", "--detach", "--name", "db").returncode == 0
    current = db_log.read_text().rsplit("db: start (run", 1)[1]
    assert "database system was shut down at" in current
    assert "automatic recovery" not in current and "not properly shut down" not in current


@pytest.mark.signals
def test_logs_rotate_and_follow_across_rotation(stack_project: DevProject) -> None:
    project = stack_project
    chatty = (
        "import socket, sys, time; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port}));"
        " s.listen(); n = 0\\nwhile True: n += 1; print(f'line {{n:06d}}', flush=True);"
        " time.sleep(0.002)"
    )
    config = project.write_config(
        "chatty.yaml",
        "      health_url: ''\n" f"      command: ['{{python}}', '-c', \"{chatty}\"]\n",
        dev="  log_max_bytes: 4096\n  log_keep: 2\n",
    )
    follower = project.popen("dev.logs", "--name", "frontend", "--follow", config=config)
    try:
        assert (
            project.inv("dev.start", "--detach", "--name", "frontend", config=config).returncode
            == 0
        )
        logs = project.root / ".flowlet" / "logs"
        deadline = time.monotonic() + 20
        while not (logs / "frontend.log.2").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert (logs / "frontend.log.2").exists() and not (logs / "frontend.log.3").exists()
        assert all(p.stat().st_size <= 4096 for p in logs.glob("frontend.log*"))
        assert project.inv("dev.stop", config=config).returncode == 0
        time.sleep(0.5)
    finally:
        follower.send_signal(signal.SIGINT)
        out, _ = follower.communicate(timeout=30)
    numbers = [int(m) for m in re.findall(r"^frontend \| line (\d+)$", out, re.M)]
    assert len(numbers) > 600, out[-500:]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "no line lost"


def test_a_read_only_checkout_is_one_line(stack_project: DevProject) -> None:
    need("unshare", "mount")
    project = stack_project
    (project.root / "dev-start.sh").unlink()  # setup would have to write it
    script = (
        f"mount --bind {project.root} {project.root} && "
        f"mount -o remount,bind,ro {project.root} && "
        f"inv -f {project.config} setup; echo rc=$?; "
        f"inv -f {project.config} dev.start --detach; echo rc=$?"
    )
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", script],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"setup: cannot write {project.root}/dev-start.sh: {project.root} is not writable "
        "(Read-only file system)",
        f"dev.start: cannot write {project.root}/.flowlet/run: Read-only file system; set "
        "dev.flowlet_dir to a writable directory",
    ], result.stderr
    assert result.stdout.count("rc=1") == 2
    assert project.inv("setup").returncode == 0  # writable again outside the namespace


# --- the oneshot migrate (dev.processes.migrate, kind: oneshot) -----------------------------

FAILING_MIGRATE = (
    "    migrate:\n"
    '      command: ["{python}", "-c", "import sys; print(\'0003_broken: syntax error at or '
    "near BAD'); sys.exit(3)\"]\n"
)


def test_a_failing_migration_stops_dev_start_with_its_output(stack_project: DevProject) -> None:
    project = stack_project
    config = project.write_config("failing-migrate.yaml", FAILING_MIGRATE)
    result = project.inv("dev.start", "--detach", config=config)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert "migrate | 0003_broken: syntax error at or near BAD" in lines
    last = re.fullmatch(
        r"dev\.start: migrate exited with code 3; stopped ([a-z, ]+); log: (\S+)", lines[-1]
    )
    assert last is not None, lines[-1]
    stopped = set(last[1].split(", "))
    assert {"db"} <= stopped <= {"db", "frontend"}, lines[-1]  # migrate had ended
    assert last[2].endswith("/.flowlet/logs/migrate.log")
    assert "dev.start: backend" not in result.stdout
    assert not (project.root / ".flowlet" / "logs" / "backend.log").exists() or (
        "0003" not in (project.root / ".flowlet" / "logs" / "backend.log").read_text()
    )
    assert project.records() == []
    status = project.inv("dev.status", config=config)
    row = next(ln for ln in status.stdout.splitlines() if ln.startswith("migrate "))
    assert re.search(r" failed \d+s ago: exited with code 3 ", row), status.stdout
    assert "migrate" in status.stderr


def test_dev_migrate_runs_the_migrations_alone(stack_project: DevProject) -> None:
    project = stack_project
    started = project.inv("dev.start", "--detach", "--name", "db")
    assert started.returncode == 0, started.stdout + started.stderr
    first = project.inv("dev.migrate")
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"^migrate \| migrate: schema at version 2", first.stdout, re.M), first.stdout
    assert re.search(r"^dev\.migrate: migrate completed in [\d.]+s \(exit 0\)$", first.stdout, re.M)
    again = project.inv("dev.migrate")
    assert again.returncode == 0
    assert "migrate | migrate: schema at version 2 (nothing to do)" in again.stdout
    assert {r.name for r in project.records()} == {"db"}, "dev.migrate leaves nothing running"
    broken = project.write_config("failing-migrate.yaml", FAILING_MIGRATE)
    failed = project.inv("dev.migrate", config=broken)
    assert failed.returncode == 1
    assert "migrate | 0003_broken: syntax error at or near BAD" in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"dev\.migrate: migrate exited with code 3; log: \S+/migrate\.log", last)
    assert {r.name for r in project.records()} == {"db"}, "the database keeps running"
