"""backup.drill: the newest backup restored into a scratch database, compared with its source
and timed per phase; evidence (JSON lines) and node-exporter metrics for every drill, passed
or failed; ``backup.schedule --drill``; the drill alerts of the monitoring values."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import run_task, start_inv
from fixtures_backup import (
    BackupEnv,
    backup_collection,
    descendants,
    pg_target,
    update_config,
)
from test_backup_postgres import reseal

NS = backup_collection()
LABELS = {"environment": "development", "database": "postgres", "location": "local"}


def drill(env: BackupEnv, *argv: str) -> int:
    return run_task(NS, ["backup.drill", "--database", "postgres", *argv], config_file=env.config)


def evidence(env: BackupEnv) -> list[dict[str, Any]]:
    lines = (env.out / "drills.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def metrics(prom: Path) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(prom.read_text()):
        for sample in family.samples:
            labels = dict(sample.labels)
            phase = labels.pop("phase", "")
            assert labels == LABELS, sample
            found[(sample.name, phase)] = sample.value
    return found


def scratch_databases(env: BackupEnv) -> list[str]:
    return [db for db in env.pg.sql("select datname from pg_database").split() if "_drill_" in db]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["plain", "directory"])
def test_a_drill_restores_verifies_and_records(
    pg_backup_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    env = pg_backup_env
    argv = ["backup.postgres", "--database", "postgres", "--format", fmt]
    assert run_task(NS, argv, config_file=env.config) == 0
    (made,) = env.backups()
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    capsys.readouterr()
    assert drill(env, "--textfile", str(textfile)) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"drill ok: development/postgres {made.name} ")
    assert "2 tables, row counts and" in out
    (record,) = evidence(env)
    assert record["event"] == "drill" and record["result"] == "ok" and record["error"] is None
    assert (record["file"], record["where"], record["bytes"]) == (
        made.name,
        "local",
        made.stat().st_size,
    )
    assert record["checks"] == ["sha256", "restore", "row_counts_vs_dump", "objects_vs_source"]
    assert set(record["phases"]) == {"fetch", "restore", "verify"}
    assert record["rto_seconds"] == pytest.approx(
        record["phases"]["fetch"] + record["phases"]["restore"], abs=0.002
    )
    assert record["tables"] == 2 and record["rows"] > 0
    assert record["rows"] == sum(env.pg.row_counts("flowlet").values())
    assert record["scratch_database"].startswith("flowlet_drill_")
    assert not scratch_databases(env)  # dropped
    (prom,) = textfile.iterdir()
    assert prom.name == "flowlet_backup_drill_development_postgres_local.prom"
    values = metrics(prom)
    assert values[("flowlet_backup_drill_last_failed", "")] == 0
    assert (
        abs(values[("flowlet_backup_drill_last_success_timestamp_seconds", "")] - time.time()) < 600
    )
    for phase in ("fetch", "restore", "verify"):
        assert values[("flowlet_backup_drill_duration_seconds", phase)] == pytest.approx(
            record["phases"][phase], abs=0.002
        )
    assert values[("flowlet_backup_drill_size_bytes", "")] == made.stat().st_size
    assert values[("flowlet_backup_drill_max_age_seconds", "")] == 192 * 3600
    assert not [p for p in env.out.iterdir() if "partial" in p.name]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_corrupted_backup_fails_the_drill(
    pg_backup_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    """A flipped byte fails the fetch (sha256); a truncated dump with a matching sidecar fails
    the restore. Either way: one line, exit != 0, evidence ``failed``, metrics say failed and
    keep the last passed drill's time."""
    env = pg_backup_env
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    assert run_task(NS, ["backup.postgres", "--database", "postgres"], config_file=env.config) == 0
    assert drill(env, "--textfile", str(textfile)) == 0
    (passed,) = evidence(env)
    (made,) = env.backups()
    data = made.read_bytes()
    if damage == "flipped":
        made.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        reseal(made, data[: len(data) // 2])
    capsys.readouterr()
    code = drill(env, "--textfile", str(textfile))
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1, err
    phase = "fetch" if damage == "flipped" else "restore"
    assert err.startswith(f"drill FAILED: development/postgres at local ({phase}): "), err
    _, failed = evidence(env)
    assert failed["result"] == "failed" and failed["failed_phase"] == phase
    assert failed["file"] == made.name and failed["error"] in err
    assert failed["checks"] == ([] if damage == "flipped" else ["sha256"])
    assert phase in failed["phases"]
    values = metrics(textfile / "flowlet_backup_drill_development_postgres_local.prom")
    assert values[("flowlet_backup_drill_last_failed", "")] == 1
    last = values[("flowlet_backup_drill_last_success_timestamp_seconds", "")]
    assert last == pytest.approx(
        datetime_seconds(passed["finished"]), abs=0.001
    )  # the passed drill before it
    assert ("flowlet_backup_drill_rto_seconds", "") not in values
    assert not scratch_databases(env)
    assert [p.name for p in textfile.iterdir()] == [
        "flowlet_backup_drill_development_postgres_local.prom"
    ]


def datetime_seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_no_backup_is_a_failed_drill(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    capsys.readouterr()
    assert drill(env) == 1
    err = capsys.readouterr().err
    assert err == (
        "drill FAILED: development/postgres at local (fetch): no backup of "
        "development/postgres at local\n"
    )
    (record,) = evidence(env)
    assert record["result"] == "failed" and record["file"] is None


def test_dry_prints_the_plan_and_does_nothing(
    pg_backup_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    capsys.readouterr()
    argv = ["--dry", "backup.drill", "--database", "postgres", "--textfile", str(tmp_path)]
    assert run_task(NS, argv, config_file=env.config) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "would fetch",
        "would restore",
        "would verify",
        "would evidence",
        "would metrics",
    ]
    assert lines[-1].endswith(
        "flowlet_backup_drill_development_postgres_local.prom (flowlet_backup_drill_*)"
    )
    assert not env.out.exists() and list(tmp_path.iterdir()) == [env.config]


DRILL_UNIT = "flowlet-backup-development-postgres-drill"


@pytest.mark.slow
def test_schedule_drill_writes_its_own_units_that_run_the_drill(
    pg_backup_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``backup.schedule --drill``: a separate unit pair (weekly by default) that passes
    ``systemd-analyze verify``; its ExecStart, run as systemd would, drills and writes the
    metrics; the backup's own units are untouched; ``--remove --drill`` removes only the drill's."""
    env = pg_backup_env
    units, etc, textfile = tmp_path / "units", tmp_path / "etc-flowlet", tmp_path / "textfile"
    textfile.mkdir()
    schedule = {"unit_dir": str(units), "env_dir": str(etc)}
    update_config(env.config, backup={"schedule": schedule})
    base = ["backup.schedule", "--database", "postgres", "--textfile", str(textfile)]
    assert run_task(NS, base, config_file=env.config) == 0
    assert run_task(NS, [*base, "--drill"], config_file=env.config) == 0
    assert sorted(p.name for p in units.iterdir()) == sorted(
        f"{name}.{kind}"
        for name in ("flowlet-backup-development-postgres", DRILL_UNIT)
        for kind in ("service", "timer")
    )
    service, timer = units / f"{DRILL_UNIT}.service", units / f"{DRILL_UNIT}.timer"
    assert "OnCalendar=Sun *-*-* 04:30:00\n" in timer.read_text()
    assert (etc / f"{DRILL_UNIT}.env").stat().st_mode & 0o777 == 0o600
    if shutil.which("systemd-analyze"):
        done = subprocess.run(
            ["systemd-analyze", "verify", str(timer), str(service)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
    text = service.read_text()
    assert env.pg.password not in text
    (execs,) = [
        line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")
    ]
    argv = shlex.split(execs)
    assert argv[argv.index("backup.drill") :] == [
        "backup.drill",
        "--env",
        "development",
        "--database",
        "postgres",
        "--textfile",
        str(textfile),
    ]
    assert run_task(NS, ["backup.postgres", "--database", "postgres"], config_file=env.config) == 0
    workdir = next(
        line.split("=", 1)[1] for line in text.splitlines() if line.startswith("WorkingDirectory=")
    )
    done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("drill ok: "), done.stderr
    assert [r["result"] for r in evidence(env)] == ["ok"]
    values = metrics(textfile / "flowlet_backup_drill_development_postgres_local.prom")
    assert values[("flowlet_backup_drill_last_failed", "")] == 0
    capsys.readouterr()
    assert run_task(NS, [*base, "--drill", "--cron"], config_file=env.config) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("30 4 * * 0 cd ") and line.endswith(f"--textfile {textfile}; }}")
    assert run_task(NS, [*base, "--drill", "--remove"], config_file=env.config) == 0
    assert sorted(p.name for p in units.iterdir()) == [
        "flowlet-backup-development-postgres.service",
        "flowlet-backup-development-postgres.timer",
    ]
    assert not (etc / f"{DRILL_UNIT}.env").exists()
    assert (etc / "flowlet-backup-development-postgres.env").exists()


def test_drill_units_with_a_destination_drill_both_copies() -> None:
    """With a destination: the local copy, then the one there (a failed first drill does not
    stop the second: ``ExecStart=-``)."""
    from tasks.backup.targets import DatabaseTarget
    from tasks.backup.units import plan_drill_units
    from tasks.core.settings import Settings

    target = DatabaseTarget("production", "postgres", "postgres", "db", 5432, "flowlet", "u")
    settings = Settings(
        schedule=Settings(
            unit_prefix="flowlet-backup",
            env_dir=Path("/etc/flowlet"),
            user="",
            randomized_delay=900,
        ),
        output_dir=Path("/var/backups/flowlet"),
    )
    units = plan_drill_units(
        target,
        settings=settings,
        root=Path("/srv/ops"),
        config_file=None,
        on_calendar="weekly",
        to="offsite",
        textfile=None,
        env_values={},
        home="/root",
    )
    assert units.name == "flowlet-backup-production-postgres-drill"
    execs = [line for line in units.service.splitlines() if line.startswith("ExecStart=")]
    assert [e.split(" backup.drill ")[1] for e in execs] == [
        "--env production --database postgres",
        "--env production --database postgres --from offsite",
    ]
    assert execs[0].startswith("ExecStart=-") and not execs[1].startswith("ExecStart=-")
    assert "ReadWritePaths=/var/backups/flowlet\n" in units.service


@pytest.mark.slow
@pytest.mark.signals
def test_an_interrupted_drill_drops_its_scratch_database_and_says_so(
    pg_backup_env: BackupEnv,
) -> None:
    """SIGTERM mid-restore: exit 143, the scratch database dropped, the attempt recorded."""
    env = pg_backup_env
    assert run_task(NS, ["backup.postgres", "--database", "big"], config_file=env.config) == 0
    proc = start_inv(
        ["-f", str(env.config), "backup.drill", "--database", "big"],
        env={"FLOWLET_DB_PASSWORD": env.pg.password},
    )
    deadline = time.monotonic() + 60

    def restoring() -> bool:  # the restore's psql runs (all its stages started: no fork now)
        names = scratch_databases(env)
        return bool(names) and any(
            "psql" in " ".join(argv) and names[0] in " ".join(argv)
            for argv in descendants(proc.pid).values()
        )

    while not restoring():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.count("\n") == 1 and err.startswith("interrupted (SIGTERM)"), err
    assert not scratch_databases(env)
    (record,) = evidence(env)
    assert record["result"] == "failed" and record["error"] == "interrupted (SIGTERM)"
    assert record["failed_phase"] == "restore" and record["scratch_database"]


def options(tmp_path: Path, source: str | None = None) -> Any:
    from tasks.backup.drill import DrillOptions
    from tasks.backup.targets import DatabaseTarget

    target = DatabaseTarget("production", "postgres", "postgres", "db", 5432, "flowlet", "u")
    return DrillOptions(
        target=target,
        source=source,
        output_dir=tmp_path,
        evidence=tmp_path / "drills.jsonl",
        textfile=tmp_path / "textfile",
        textfile_source="--textfile",
        identity=None,
        trust_destination=False,
        max_age=3600,
        jobs=1,
    )


def test_plan_names_every_step(tmp_path: Path) -> None:
    from tasks.backup.drill import plan_drill

    assert plan_drill(options(tmp_path, "offsite")) == [
        "fetch: the newest backup set of production/postgres at offsite, its sha256 checked "
        f"while fetched into {tmp_path} (NAME.partial, removed afterwards)",
        "restore: into a scratch database flowlet_drill_XXXXXXXX on db:5432 (dropped afterwards)",
        "verify: row counts compared with the dump's own, objects with flowlet",
        f"evidence: append one record to {tmp_path / 'drills.jsonl'}",
        f"metrics: write {tmp_path / 'textfile'}/flowlet_backup_drill_production_postgres_offsite"
        ".prom (flowlet_backup_drill_*)",
    ]


def test_metrics_of_a_failed_drill_claim_no_rto(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tasks.backup.drill import Drill, metrics_text

    drill = Drill(options(tmp_path), started=100.0, finished=105.5, error="no backup")
    drill.phases["fetch"] = 0.25
    drill.failed_phase = "fetch"
    samples = {
        (s.name, s.labels.get("phase", "")): s.value
        for f in text_string_to_metric_families(metrics_text(drill, 42.0))
        for s in f.samples
    }
    assert samples == {
        ("flowlet_backup_drill_last_success_timestamp_seconds", ""): 42.0,
        ("flowlet_backup_drill_timestamp_seconds", ""): 105.5,
        ("flowlet_backup_drill_last_failed", ""): 1.0,
        ("flowlet_backup_drill_duration_seconds", "fetch"): 0.25,
        ("flowlet_backup_drill_max_age_seconds", ""): 3600.0,
    }


def test_last_success_reads_only_this_targets_passed_drills(tmp_path: Path) -> None:
    from tasks.backup.drill import last_success
    from tasks.core import jsonl

    path = tmp_path / "drills.jsonl"
    base = {"event": "drill", "environment": "production", "database": "postgres"}
    for extra in (
        {"where": "local", "result": "ok", "finished": "2026-12-01T00:00:00+00:00"},
        {"where": "local", "result": "failed", "finished": "2026-12-03T00:00:00+00:00"},
        {"where": "offsite", "result": "ok", "finished": "2026-12-04T00:00:00+00:00"},
        {"where": "local", "result": "ok", "finished": "garbage"},
    ):
        jsonl.append(path, {**base, **extra})
    with path.open("a") as handle:
        handle.write('{"torn": ')
    target = options(tmp_path).target
    assert last_success(path, target, "local") == 1796083200.0  # 2026-12-01
    assert last_success(path, target, "nowhere") == 0


@pytest.mark.slow
def test_rows_written_after_the_backup_do_not_fail_the_drill(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL: the drill counts the restored rows against the dump's own COPY blocks, not
    the live source (which a busy database changes between backup and drill), so it passes
    where ``--restore-test`` (comparing with the source) reports the difference."""
    env = pg_backup_env
    db = f"drill_live_{uuid.uuid4().hex[:8]}"
    env.pg.create_db(
        db, "create table t (id int primary key); insert into t select generate_series(1, 100)"
    )
    try:
        update_config(
            env.config, environments={"development": {"databases": {"live": pg_target(env.pg, db)}}}
        )
        assert run_task(NS, ["backup.postgres", "--database", "live"], config_file=env.config) == 0
        env.pg.sql("insert into t select generate_series(101, 105)", db=db)
        assert run_task(NS, ["backup.drill", "--database", "live"], config_file=env.config) == 0
        (record,) = evidence(env)
        assert record["rows"] == 100 and record["result"] == "ok"
        capsys.readouterr()
        argv = ["backup.verify", "--latest", "--database", "live", "--restore-test"]
        assert run_task(NS, argv, config_file=env.config) == 1
        assert "restore test row counts differ from " + db in capsys.readouterr().err
    finally:
        env.pg.sql(f"drop database if exists {db} with (force)")
