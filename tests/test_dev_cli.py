"""setup/dev through the command line: discovery, help, config overrides, one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, ROOT_NS, run_task, start_inv

from tasks.dev import pidfiles, procs
from tasks.dev.settings import SCHEMA as DEV_SCHEMA

MY_TASKS = ["setup", "dev.start", "dev.stop", "dev.restart", "dev.status", "dev.logs"]


def inv(*argv: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> Any:
    return subprocess.run(
        ["inv", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_loading_the_tasks_imports_no_ssh_or_heavy_modules() -> None:
    """Load the root tasks.py the way ``inv`` does, then look at sys.modules."""
    code = (
        "import sys; from invoke.loader import FilesystemLoader; "
        f"FilesystemLoader(start={str(REPO)!r}).load('tasks'); "
        "heavy = ('fabric', 'paramiko', 'psycopg', 'urllib.request', 'kubernetes_validate'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_inv_list_shows_collections_and_every_task_has_a_summary() -> None:
    plain = inv("--list")
    assert plain.returncode == 0, plain.stderr
    for name in ("setup", "dev.start", "dev.stop", "dev.status", "dev.logs"):
        assert re.search(rf"^  {re.escape(name)}\b", plain.stdout, re.M), name
    listed = json.loads(inv("--list", "--list-format=json").stdout)

    def walk(coll: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
        found = [(prefix + t["name"], t["help"] or "") for t in coll["tasks"]]
        for sub in coll["collections"]:
            found += walk(sub, prefix + sub["name"] + ".")
        return found

    tasks = walk(listed)
    assert {"setup.setup", "dev.start", "dev.stop", "dev.status", "dev.logs"} <= {
        n for n, _ in tasks
    }
    assert [n for n, summary in tasks if not summary.strip()] == []


@pytest.mark.parametrize("task_name", MY_TASKS)
def test_inv_help_gives_every_flag_a_help_text(task_name: str) -> None:
    result = inv("--help", task_name)
    assert result.returncode == 0, result.stderr
    options = result.stdout.split("Options:", 1)[1]
    if options.strip() == "none":
        return
    flags = [ln for ln in options.splitlines() if ln.startswith("  -")]
    assert flags, result.stdout
    for line in flags:
        assert re.match(r"^  -\S.*?\s{2,}\S", line), f"no help text: {line!r}"


def test_every_task_in_the_root_collection_documents_its_flags() -> None:
    """In a fresh process: Invoke pops ``help`` entries once a task's arguments were parsed,
    so an in-process check would depend on which tests ran before it."""
    code = (
        "from invoke import Collection; from invoke.loader import FilesystemLoader; "
        f"module, _ = FilesystemLoader(start={str(REPO)!r}).load('tasks'); "
        "root = Collection.from_module(module)\n"
        "for name in root.task_names:\n"
        "    task = root[name]\n"
        "    if not (task.__doc__ or '').strip(): print(name, 'no docstring')\n"
        "    missing = [a.name for a in task.get_arguments() if not (a.help or '').strip()]\n"
        "    if missing: print(name, 'flags without help:', missing)\n"
        "print('checked', len(root.task_names))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"checked \d+\n", result.stdout), result.stdout


def test_bad_env_is_one_line_and_exit_1() -> None:
    result = inv("setup", "--env", "nope")
    assert result.returncode == 1
    assert result.stderr == (
        "--env: 'nope' is not valid; valid: development, production, staging\n"
    )
    assert "Traceback" not in result.stderr


def _cluster_setup(result: Any, namespace: str) -> None:
    assert result.stdout.splitlines()[0] == (
        f"setup: staging: namespace {namespace}, kube context flowlet-staging, release flowlet"
    )
    if not (REPO / "tasks" / "deploy.py").exists() and not (REPO / "tasks" / "deploy").exists():
        assert result.returncode == 1
        assert result.stderr == "setup --env staging: the deploy collection is not installed\n"


def test_env_var_overrides_config() -> None:
    result = inv(
        "--dry",
        "setup",
        "--env",
        "staging",
        env={"INVOKE_ENVIRONMENTS_STAGING_NAMESPACE": "team-a"},
    )
    _cluster_setup(result, "team-a")


def test_config_file_overrides_config(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("environments:\n  staging:\n    namespace: team-b\n")
    _cluster_setup(inv("-f", str(other), "--dry", "setup", "--env", "staging"), "team-b")


def test_bad_namespace_flag_is_one_line() -> None:
    result = inv("setup", "--env", "staging", "--namespace", "Team_A")
    assert result.returncode == 1
    assert result.stderr.startswith("--namespace: 'Team_A' is not valid; valid: a DNS-1123 label")
    assert result.stderr.count("\n") == 1


# In-process: a config file with the project's environments and absolute paths -----------


def write_config(tmp_path: Path, **dev_overrides: Any) -> Path:
    config = yaml.safe_load((REPO / "invoke.yaml").read_text())
    defaults = DEV_SCHEMA.defaults()
    for spec in defaults["processes"].values():
        spec["cwd"] = str(REPO / spec["cwd"])
    config["dev"] = {
        "flowlet_dir": str(tmp_path / ".flowlet"),
        "env_file": str(tmp_path / ".env.local"),
        "processes": defaults["processes"],
        **dev_overrides,
    }
    config["setup"] = {
        "frontend_dir": str(REPO / "examples" / "frontend"),
        "backend_requirements": str(REPO / "examples" / "backend" / "requirements.txt"),
        "env_template": str(REPO / ".env.template"),
        "dev_start_script": str(tmp_path / "dev-start.sh"),
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_missing_node_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code = run_task(ROOT_NS, ["setup"], config_file=write_config(tmp_path), cwd=tmp_path)
    assert code == 1
    assert capsys.readouterr().err == (
        "'node' not found on PATH: install Node.js 20 (apt-get install nodejs)\n"
    )
    assert not (tmp_path / ".env.local").exists()


def test_missing_initdb_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "pgbin"
    empty.mkdir()
    config = write_config(tmp_path, postgres_bin_dir=str(empty))
    code = run_task(ROOT_NS, ["setup"], config_file=config, cwd=tmp_path)
    assert code == 1
    assert capsys.readouterr().err == (
        f"'initdb' not found in {empty}: install PostgreSQL 15 (apt-get install postgresql) "
        "or set dev.postgres_bin_dir\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another user only for root")
def test_data_dir_the_postgres_user_cannot_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    config = write_config(tmp_path, postgres_dir=str(locked / "pg"))
    code = run_task(ROOT_NS, ["setup"], config_file=config, cwd=tmp_path)
    assert code == 1
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"dev\.postgres_dir: the 'postgres' system user cannot traverse (/\S*) \(mode 7[0-7]0\); "
        r"set dev\.postgres_dir to a path it can reach or chmod o\+x \1\n",
        err,
    ), err
    assert not (tmp_path / ".env.local").exists()


def test_stale_pid_files_are_reported_and_removed_without_signalling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    run_dir = tmp_path / ".flowlet" / "run"
    gone = subprocess.Popen(["true"])
    gone.wait()
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        time.sleep(0.05)
        me = procs.Identity.of(bystander.pid)
        assert me is not None
        dead = procs.Identity(gone.pid, 1, "/usr/bin/true")
        pidfiles.write_record(run_dir, pidfiles.Record("backend", dead, 8000, 0.0, "r"))
        # the pid now leads someone else's group: same pid, another start time
        reused = procs.Identity(bystander.pid, me.start_ticks - 1, me.exe)
        pidfiles.write_record(run_dir, pidfiles.Record("frontend", reused, 3000, 0.0, "r"))
        pidfiles.write_json(
            pidfiles.state_path(run_dir, "frontend"),
            {"keeper": bystander.pid, "child": reused.__dict__, "state": "running"},
        )

        assert run_task(ROOT_NS, ["dev.status"], config_file=config, cwd=tmp_path) == 1
        out, err = capsys.readouterr()
        states = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
        assert "stale (process gone)" in states["backend"]
        assert "stale (pid reused)" in states["frontend"]
        assert "stopped" in states["db"]
        assert "not run yet" in states["migrate"]  # a oneshot: counts as up once it exited 0
        assert err == "dev.status: not up: db, migrate, backend, frontend\n"

        assert run_task(ROOT_NS, ["dev.stop"], config_file=config, cwd=tmp_path) == 0
        out = capsys.readouterr().out
        assert "dev.stop: backend: removed stale pid file (gone)" in out
        assert (
            f"dev.stop: frontend: removed stale pid file (pid {bystander.pid} now belongs to "
            "another process)" in out
        )
        assert bystander.poll() is None, "a reused pid's group must never be signalled"
        assert pidfiles.read_records(run_dir) == []
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_with_nothing_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_task(ROOT_NS, ["dev.stop"], config_file=write_config(tmp_path), cwd=tmp_path) == 0
    assert capsys.readouterr().out.startswith("dev.stop: nothing to stop")


def test_logs_unknown_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert run_task(ROOT_NS, ["dev.logs", "--name", "api"], config_file=config, cwd=tmp_path) == 1
    assert capsys.readouterr().err == (
        "--name: 'api' is not valid; valid: db, migrate, backend, frontend\n"
    )


def test_start_before_setup_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run_task(ROOT_NS, ["dev.start"], config_file=config, cwd=tmp_path) == 1
    err = capsys.readouterr().err
    assert err.endswith("is missing; run inv setup --env development first\n")
    assert err.count("\n") == 1


@pytest.mark.signals
def test_logs_follow_prints_new_lines_until_ctrl_c(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    log_dir = tmp_path / ".flowlet" / "logs"
    log_dir.mkdir(parents=True)
    log = log_dir / "backend.log"
    log.write_text("old line\n")
    proc = start_inv(
        ["--search-root", str(REPO), "-f", str(config), "dev.logs", "-n", "backend", "-f"]
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "backend | old line\n"
    with open(log, "a") as handle:
        handle.write("new line\n")
    assert proc.stdout.readline() == "backend | new line\n"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
