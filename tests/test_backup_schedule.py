"""backup.schedule: systemd units validated by ``systemd-analyze verify`` (written into a temp
dir), the 0600 environment file, --dry, --cron, --remove; and the units' commands run."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import need, run_task
from fixtures_backup import BackupEnv, backup_collection, update_config

NS = backup_collection()
UNIT = "flowlet-backup-development-postgres"


@pytest.fixture
def sched_env(pg_backup_env: BackupEnv, tmp_path: Path) -> BackupEnv:
    update_config(
        pg_backup_env.config,
        backup={
            "schedule": {
                "unit_dir": str(tmp_path / "units"),
                "env_dir": str(tmp_path / "etc-flowlet"),
            }
        },
    )
    return pg_backup_env


def schedule(env: BackupEnv, *argv: str) -> int:
    return run_task(
        NS, ["backup.schedule", "--database", "postgres", *argv], config_file=env.config
    )


def units(tmp_path: Path) -> tuple[Path, Path, Path]:
    directory = tmp_path / "units"
    return (
        directory / f"{UNIT}.service",
        directory / f"{UNIT}.timer",
        tmp_path / "etc-flowlet" / f"{UNIT}.env",
    )


def test_dry_prints_the_units_and_writes_nothing(
    sched_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["--dry", "backup.schedule", "--database", "postgres", "--on-calendar", "*-*-* 03:30:00"]
    assert run_task(NS, argv, config_file=sched_env.config) == 0
    out = capsys.readouterr().out
    assert "[Timer]\nOnCalendar=*-*-* 03:30:00\nRandomizedDelaySec=900\nPersistent=true\n" in out
    assert "NoNewPrivileges=yes" in out and "PrivateTmp=yes" in out
    assert "ProtectSystem=strict" in out
    assert "FLOWLET_DB_PASSWORD=<from $FLOWLET_DB_PASSWORD>" in out
    assert sched_env.pg.password not in out
    assert not any(p.exists() for p in units(tmp_path))


def test_units_verify_and_their_commands_work(
    sched_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The units pass ``systemd-analyze verify``; the environment file is 0600 and holds the
    password (the units do not); the service's ExecStart lines, run as systemd would (in its
    working directory, with that environment), back up, check and prune."""
    need("systemd-analyze")
    env = sched_env
    assert schedule(env, "--max-age", "2h") == 0
    service, timer, envfile = units(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(timer), str(service)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert stat.S_IMODE(envfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(envfile.parent.stat().st_mode) == 0o700
    assert envfile.read_text() == f"FLOWLET_DB_PASSWORD={sh_single_quoted(env.pg.password)}\n"
    text = service.read_text()
    assert env.pg.password not in text + timer.read_text()
    execs = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")]
    tasks = [next(w for w in shlex.split(e.lstrip("-")) if w.startswith("backup")) for e in execs]
    assert tasks == ["backup.postgres", "backup.check", "backup.prune"]
    assert execs[0].startswith("-")  # a failed backup still runs the check (which reports it)
    assert "--max-age 2h" in execs[1]
    workdir = next(
        line.split("=", 1)[1] for line in text.splitlines() if line.startswith("WorkingDirectory=")
    )
    child_env = {k: v for k, v in os.environ.items() if k != "FLOWLET_DB_PASSWORD"}
    child_env["FLOWLET_DB_PASSWORD"] = env.pg.password  # what EnvironmentFile= gives it
    for line in execs:
        done = subprocess.run(
            shlex.split(line.lstrip("-")),
            cwd=workdir,
            env=child_env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("development/postgres at local: keeping 1")
    assert len(env.backups()) == 1


def sh_single_quoted(value: str) -> str:
    return '"\'"'.join(f"'{part}'" for part in value.split("'"))


def test_cron_line(
    sched_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert schedule(sched_env, "--cron", "--on-calendar", "Mon..Fri *-*-* 02:15:00") == 0
    out = capsys.readouterr().out.splitlines()
    line = out[-1]
    assert line.startswith("15 2 * * 1-5 cd ")
    assert "backup.postgres --env development --database postgres;" in line
    assert "backup.check --env development --database postgres --max-age 26h && " in line
    _service, _timer, envfile = units(tmp_path)
    assert f". {envfile} " in line and stat.S_IMODE(envfile.stat().st_mode) == 0o600
    assert schedule(sched_env, "--cron", "--on-calendar", "*-*-* 02:15:30") == 1
    assert "--cron: '*-*-* 02:15:30' has no crontab equivalent here" in capsys.readouterr().err


def test_remove(sched_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schedule(sched_env) == 0
    assert all(p.exists() for p in units(tmp_path))
    assert schedule(sched_env, "--remove") == 0
    assert not any(p.exists() for p in units(tmp_path))


def test_system_directory_enables_the_timer(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the default unit directory: daemon-reload and enable --now (shown under --dry)."""
    capsys.readouterr()
    argv = ["--dry", "backup.schedule", "--database", "postgres"]
    assert run_task(NS, argv, config_file=pg_backup_env.config) == 0
    out = capsys.readouterr().out
    assert f"# /etc/systemd/system/{UNIT}.timer" in out
    assert "systemctl daemon-reload" in out
    assert f"systemctl enable --now {UNIT}.timer" in out
    argv = ["--dry", "backup.schedule", "--database", "postgres", "--remove"]
    assert run_task(NS, argv, config_file=pg_backup_env.config) == 0
    assert f"systemctl disable --now {UNIT}.timer" in capsys.readouterr().out


def test_missing_secret_variable(
    sched_env: BackupEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FLOWLET_DB_PASSWORD")
    assert schedule(sched_env) == 1
    assert capsys.readouterr().err.startswith(
        "FLOWLET_DB_PASSWORD: not set; the timer's environment file needs it"
    )


HOSTILE = [
    "Pa$$w0rd",
    "`touch {canary}`",
    "$(touch {canary})",
    "${{HOME}}$HOME",
    "it's",
    "'",
    "''",
    '"quoted" \\"',
    "back\\slash\\",
    "# not a comment",
    "  spaces  around  ",
    "multi\nline\nvalue\n",
    "tab\there;semi|pipe&amp>gt<lt",
    "\\\nescaped newline",
    "ünïcødé €",
]


@pytest.mark.parametrize("template", HOSTILE, ids=range(len(HOSTILE)))
def test_env_file_round_trips_hostile_secrets(
    sched_env: BackupEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    template: str,
) -> None:
    """Whatever the secret holds, both consumers of the written file read it back exactly:
    ``sh`` sourcing it as the crontab line does (``set -a && . FILE``) and systemd's
    ``EnvironmentFile=`` (tests/systemd_envfile.py, a port of systemd's parser); nothing in it
    runs (a canary file a command substitution would create stays absent)."""
    from systemd_envfile import load_env_file

    canary = tmp_path / "pwned"
    secret = template.format(canary=canary)
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", secret)
    assert schedule(sched_env, "--cron") == 0
    _service, _timer, envfile = units(tmp_path)
    assert load_env_file(envfile.read_text()) == {"FLOWLET_DB_PASSWORD": secret}
    script = f"set -a && . {shlex.quote(str(envfile))} && set +a"
    script += ' && printf %s "$FLOWLET_DB_PASSWORD"'
    done = subprocess.run(["sh", "-c", script], capture_output=True, env={"PATH": os.defpath})
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert done.stdout.decode() == secret
    assert not canary.exists()
