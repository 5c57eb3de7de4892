"""README's setup/dev commands, run as written (``bash -c``) in a throwaway copy of the project
whose invoke.yaml points the stack at free ports (the project's own change, as README says a
project would make it). The first command of README runs inside a venv made with
``--system-site-packages``, first on PATH, so its editable install never repoints the machine's.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import need, readme, run_inv, start_inv
from fixtures_dev import DevProject, make_project, remove_project

pytestmark = pytest.mark.slow

FIRST = (
    "python3 -m pip install -e '.[dev]' && inv setup --env development && inv dev.start --detach"
)


@pytest.fixture(scope="module")
def readme_project() -> Iterator[DevProject]:
    need("node", "npm", "initdb", "runuser")
    project = make_project("flowlet-readme-")
    ports = project.ports
    invoke_yaml = project.root / "invoke.yaml"
    text = invoke_yaml.read_text().replace("port: 54329", f"port: {ports['db']}")
    assert f"port: {ports['db']}" in text
    text += (
        "dev:\n  processes:\n"
        f"    backend:\n      port: {ports['backend']}\n"
        f"    frontend:\n      port: {ports['frontend']}\n"
    )
    invoke_yaml.write_text(text)
    try:
        yield project
    finally:
        run_inv("inv dev.stop", cwd=project.root)
        remove_project(project)


def sh(project: DevProject, command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return run_inv(command, cwd=project.root, **kwargs)  # type: ignore[arg-type]


def rows(status: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[3] for line in status.splitlines()[1:] if line.split()}


@readme(
    "python3 -m pip install -e '.[dev]' && inv setup --env development && inv dev.start --detach"
)
def test_the_first_command_in_a_fresh_venv(readme_project: DevProject) -> None:
    project = readme_project
    venv = project.root / ".venv"
    subprocess.run(
        ["python3", "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    env = {"PATH": f"{venv / 'bin'}:{__import__('os').environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    result = sh(project, FIRST, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "setup: database cluster: initdb" in result.stdout
    assert re.search(r"^dev\.start: all ready; logs in ", result.stdout, re.M), result.stdout
    installed = subprocess.run(
        [str(venv / "bin" / "python3"), "-m", "pip", "show", "flowlet-ops"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert f"Editable project location: {project.root}" in installed
    status = sh(project, "inv dev.status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert rows(status.stdout) == {
        "db": "up",
        "migrate": "completed",
        "backend": "up",
        "frontend": "up",
    }
    stop = sh(project, "inv dev.stop")
    assert stop.returncode == 0 and stop.stdout.startswith("dev.stop: stopped frontend")
    assert project.wait_for_no_leftovers() == []


@readme(
    "inv setup --env development",
    "inv dev.start --detach",
    "inv dev.status",
    "inv dev.logs --name backend --lines 5",
    "inv dev.restart --name backend",
    "inv dev.stop --name frontend",
    "inv dev.start --detach --name frontend",
    "inv dev.migrate",
    "inv dev.stop",
)
def test_the_setup_and_dev_walkthrough(readme_project: DevProject) -> None:
    project = readme_project
    setup = sh(project, "inv setup --env development")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    start = sh(project, "inv dev.start --detach")
    assert start.returncode == 0, start.stdout + start.stderr
    assert start.stdout.splitlines()[-1].startswith("dev.start: all ready")
    status = sh(project, "inv dev.status")
    assert status.returncode == 0 and rows(status.stdout) == {
        "db": "up",
        "migrate": "completed",
        "backend": "up",
        "frontend": "up",
    }
    url = f"http://127.0.0.1:{project.ports['frontend']}/"
    with urllib.request.urlopen(url, timeout=10) as page:  # noqa: S310
        assert "Flowlet ledger" in page.read().decode()
    logs = sh(project, "inv dev.logs --name backend --lines 5")
    assert logs.returncode == 0
    assert 1 <= len(logs.stdout.splitlines()) <= 5
    assert all(line.startswith("backend | ") for line in logs.stdout.splitlines())
    restart = sh(project, "inv dev.restart --name backend")
    assert restart.returncode == 0 and restart.stdout.startswith("dev.restart: backend restarted")
    stop_one = sh(project, "inv dev.stop --name frontend")
    assert stop_one.returncode == 0 and stop_one.stdout.startswith("dev.stop: stopped frontend")
    assert rows(sh(project, "inv dev.status").stdout)["frontend"] == "stopped"
    start_one = sh(project, "inv dev.start --detach --name frontend")
    assert start_one.returncode == 0 and "dev.start: frontend ready" in start_one.stdout
    assert "db ready" not in start_one.stdout  # what runs is left alone
    migrate = sh(project, "inv dev.migrate")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "migrate | migrate: schema at version 2 (nothing to do)" in migrate.stdout
    stop = sh(project, "inv dev.stop")
    assert stop.returncode == 0 and stop.stdout.startswith("dev.stop: stopped frontend")
    assert project.wait_for_no_leftovers() == []


@readme("inv setup", "inv --dry setup", "inv --dry dev.start", "inv --dry dev.stop")
def test_setup_again_and_the_dry_runs(readme_project: DevProject) -> None:
    project = readme_project
    sh(project, "inv setup --env development")
    again = sh(project, "inv setup")
    assert again.returncode == 0
    assert again.stdout.rstrip().endswith(
        "nothing changed: the development environment is already set up"
    )
    dry = sh(project, "inv --dry setup")
    assert dry.returncode == 0 and "would" not in dry.stdout  # nothing to do, nothing done
    dry_start = sh(project, "inv --dry dev.start")
    assert dry_start.returncode == 0
    assert [ln.split()[3].rstrip(":") for ln in dry_start.stdout.splitlines()] == [
        "db",
        "migrate",
        "backend",
        "frontend",
    ]
    assert project.records() == []
    assert sh(project, "inv dev.start --detach").returncode == 0
    dry_stop = sh(project, "inv --dry dev.stop")
    assert dry_stop.returncode == 0
    assert dry_stop.stdout.splitlines()[0].startswith("dev.stop: would stop frontend (keeper pid ")
    assert len(project.records()) == 3
    assert sh(project, "inv dev.stop").returncode == 0


@pytest.mark.signals
@readme("inv dev.start", "inv dev.logs --name backend --follow")
def test_foreground_start_and_follow_until_ctrl_c(readme_project: DevProject) -> None:
    project = readme_project
    sh(project, "inv setup --env development")
    fg = start_inv("inv dev.start", cwd=project.root)
    follow = None
    try:
        assert fg.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "all ready" not in line:
            line = fg.stdout.readline()
            if not line:
                break
        assert "dev.start: all ready; Ctrl-C stops everything" in line
        follow = start_inv("inv dev.logs --name backend --follow", cwd=project.root)
        time.sleep(1.0)
        url = f"http://127.0.0.1:{project.ports['backend']}/api/accounts"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
        time.sleep(1.0)
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=30)
        assert follow.returncode == 130, err
        assert re.search(r'^backend \| .*"GET /api/accounts HTTP/1\.1" 200', out, re.M), out
        fg.send_signal(signal.SIGINT)
        out, err = fg.communicate(timeout=60)
        assert fg.returncode == 130, err
        assert "dev.start: stopped frontend, backend, db" in out
        assert err.strip().splitlines()[-1] == "interrupted (SIGINT): start stopped"
    finally:
        for proc in (fg, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert project.wait_for_no_leftovers() == []
