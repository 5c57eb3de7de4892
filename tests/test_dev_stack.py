"""setup --env development and dev.* against real processes: PostgreSQL, backend, frontend.

All through the real ``inv`` binary in a throwaway copy of the project (fixtures_dev.py).
"""

from __future__ import annotations

import json
import signal
import socket
import stat
import time
import urllib.request

import pytest
from conftest import need
from fixtures_dev import DevProject

from tasks.dev.envfile import parse_env

pytestmark = pytest.mark.slow


@pytest.fixture
def project(dev_project: DevProject) -> DevProject:
    """The module's project copy, set up (setup runs once; the first test checks it)."""
    need("node", "npm", "initdb", "runuser")
    if not (dev_project.root / ".flowlet" / "postgres" / "PG_VERSION").exists():
        result = dev_project.inv("setup", "--env", "development")
        assert result.returncode == 0, result.stderr
    return dev_project


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310
        return int(answer.status), answer.read().decode()


def test_setup_is_idempotent_and_keeps_secrets(dev_project: DevProject) -> None:
    need("node", "npm", "initdb", "runuser")
    first = dev_project.inv("setup", "--env", "development")
    assert first.returncode == 0, first.stderr
    assert "setup: database cluster: initdb" in first.stdout
    assert "setup: .env.local: create from .env.template" in first.stdout
    env_file = dev_project.root / ".env.local"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = parse_env(env_file.read_text())
    assert len(values["FLOWLET_DB_PASSWORD"]) >= 32
    script = dev_project.root / "dev-start.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    assert "exec inv dev.start" in script.read_text()

    second = dev_project.inv("setup", "--env", "development")
    assert second.returncode == 0, second.stderr
    assert second.stdout.rstrip().endswith(
        "setup: nothing changed: the development environment is already set up"
    )
    assert env_file.read_text().count("FLOWLET_DB_PASSWORD=") == 1
    for secret in (values["FLOWLET_DB_PASSWORD"], values["FLOWLET_SESSION_SECRET"]):
        for output in (first.stdout, first.stderr, second.stdout, second.stderr):
            assert secret not in output
    assert not dev_project.records(), "setup must stop the server it started"


def test_user_value_is_kept_and_becomes_the_role_password(project: DevProject) -> None:
    env_file = project.root / ".env.local"
    original = env_file.read_text()
    lines = [ln for ln in original.splitlines() if not ln.startswith("FLOWLET_SESSION_SECRET=")]
    lines = [
        "FLOWLET_DB_PASSWORD=chosen-by-me" if ln.startswith("FLOWLET_DB_PASSWORD=") else ln
        for ln in lines
    ]
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o644)
    result = project.inv("setup")
    assert result.returncode == 0, result.stderr
    assert "setup: .env.local: add FLOWLET_SESSION_SECRET" in result.stdout
    assert "setup: database role: create/update role flowlet" in result.stdout
    values = parse_env(env_file.read_text())
    assert values["FLOWLET_DB_PASSWORD"] == "chosen-by-me"
    assert values["FLOWLET_SESSION_SECRET"]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    again = project.inv("setup")
    assert "nothing changed" in again.stdout


def test_dry_start_prints_the_plan_and_starts_nothing(project: DevProject) -> None:
    result = project.inv("--dry", "dev.start")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [ln.split(":")[1].split()[-1] for ln in lines] == ["db", "backend", "frontend"]
    assert f"-p {project.ports['db']}" in lines[0]
    assert project.records() == []
    assert parse_env((project.root / ".env.local").read_text())["FLOWLET_DB_PASSWORD"] not in (
        result.stdout
    )


def test_start_detach_status_http_stop_leaves_nothing(project: DevProject) -> None:
    started = project.inv("dev.start", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    assert {r.name for r in project.records()} == {"db", "backend", "frontend"}
    assert all(r.pgid == r.pid for r in project.records())

    status = project.inv("dev.status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert {row[0]: row[3] for row in rows} == {"db": "up", "backend": "up", "frontend": "up"}

    backend = f"http://127.0.0.1:{project.ports['backend']}"
    frontend = f"http://127.0.0.1:{project.ports['frontend']}"
    assert get(f"{backend}/healthz")[0] == 200
    code, body = get(f"{backend}/api/accounts")
    assert code == 200 and isinstance(json.loads(body), list)
    assert get(f"{frontend}/healthz")[0] == 200
    assert get(f"{frontend}/api/accounts")[0] == 200  # proxied to the backend

    again = project.inv("dev.start", "--detach")
    assert again.returncode == 1
    assert again.stderr.strip().startswith("dev.start: the stack already runs (")

    logs = project.inv("dev.logs", "--name", "backend")
    assert logs.returncode == 0 and "backend | flowlet-backend listening" in logs.stdout

    stopped = project.inv("dev.stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "dev.stop: stopped" in stopped.stdout
    assert project.leftovers() == []
    assert project.records() == []
    down = project.inv("dev.status")
    assert down.returncode == 1
    assert down.stderr.strip() == "dev.status: not up: db, backend, frontend"


def test_port_taken_is_refused(project: DevProject) -> None:
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


def test_readiness_timeout_stops_what_it_started(project: DevProject) -> None:
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
    assert "stopped db, frontend" in last
    assert "frontend | flowlet-frontend listening" in result.stderr  # the log's last lines
    assert project.records() == []
    assert project.leftovers() == []


def test_ctrl_c_stops_everything_with_130(project: DevProject) -> None:
    proc = project.popen("dev.start")
    deadline = time.monotonic() + 60
    lines = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "dev.start: all ready" in line or not line:
            break
    assert any("all ready" in ln for ln in lines), "".join(lines)
    assert any(ln.startswith("backend  | ") for ln in lines)  # prefixed output
    project.remember_groups()
    assert len(project.records()) == 3
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "dev.start: interrupted; stopped db, frontend, backend"
    assert project.leftovers() == []
    assert project.records() == []


IGNORES_SIGTERM = (
    "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
)


def test_stop_kills_a_group_that_ignores_sigterm(project: DevProject) -> None:
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
    assert "dev.stop: frontend ignored SIGTERM for 1s: killed" in stopped.stdout
    assert project.leftovers() == []
    assert project.records() == []
