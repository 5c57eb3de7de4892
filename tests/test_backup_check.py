"""backup.check: Nagios exit codes and one summary line; node-exporter textfile metrics written
atomically; the alert rules in the monitoring values parse and use those metrics."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_task
from fixtures_backup import BackupEnv, backup_collection, plant_earlier, update_config

NS = backup_collection()
RULES = REPO / "kubernetes" / "monitoring" / "kube-prometheus-stack.yaml"


def check(env: BackupEnv, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run_task(NS, ["backup.check", "--database", "postgres", *argv], config_file=env.config)
    out = capsys.readouterr().out.strip()
    assert "\n" not in out, out
    return code, out


@pytest.mark.slow
def test_ok_warning_critical(
    pg_backup_env: BackupEnv, earlier_backup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    code, out = check(env, capsys, "--max-age", "26h")
    assert (code, out.split(" - ")[0]) == (2, "BACKUP CRITICAL")
    assert "development/postgres: no backup at local" in out
    plant_earlier(earlier_backup, env.out)  # verifies, but from 2020
    code, out = check(env, capsys, "--max-age", "26h")
    assert code == 2 and "older than 26h" in out
    assert run_task(NS, ["backup.postgres"], config_file=env.config) == 0
    code, out = check(env, capsys, "--max-age", "26h")
    assert code == 0 and re.match(
        r"BACKUP OK - development/postgres: newest \d+s old \(\d+\.\d KiB\), verified \| "
        r"'development/postgres age'=\d+s;;93600;0 'development/postgres size'=\d+B;;;0$",
        out,
    ), out
    time.sleep(1.1)
    code, out = check(env, capsys, "--max-age", "26h", "--warn-age", "1s")
    assert code == 1 and out.startswith("BACKUP WARNING - ") and "older than 1s" in out


@pytest.mark.slow
def test_a_failed_run_after_the_newest_backup_warns(
    pg_backup_env: BackupEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert run_task(NS, ["backup.postgres"], config_file=env.config) == 0
    time.sleep(1.1)
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "wrong")
    assert run_task(NS, ["backup.postgres"], config_file=env.config) != 0
    code, out = check(env, capsys)
    assert code == 1 and "the last run failed: backup failed: pg_dump failed" in out


@pytest.mark.slow
def test_a_backup_that_does_not_verify_is_critical(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert run_task(NS, ["backup.postgres"], config_file=env.config) == 0
    (made,) = env.backups()
    made.write_bytes(made.read_bytes()[:-10])
    code, out = check(env, capsys)
    assert code == 2 and "does NOT verify: " in out and "checksum MISMATCH" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--max-age", "abc"], "--max-age: 'abc' is not valid"),
        (["--warn-age", "1d"], "--warn-age: '1d' is not valid"),
        (["--from", "nowhere"], "--from: 'nowhere' is not valid"),
        (["--env", "nope"], "--env: 'nope' is not valid"),
    ],
    ids=["max-age", "warn-age", "from", "env"],
)
def test_cannot_check_is_unknown(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    capsys.readouterr()
    code = run_task(NS, ["backup.check", *argv], config_file=pg_backup_env.config)
    captured = capsys.readouterr()
    assert code == 3
    assert captured.out.startswith(f"BACKUP UNKNOWN - {message}")
    assert captured.err.startswith(message) and captured.err.count("\n") == 1


@pytest.mark.slow
def test_textfile_metrics(
    pg_backup_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    env = pg_backup_env
    assert run_task(NS, ["backup.postgres"], config_file=env.config) == 0
    record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
    textfile = tmp_path / "textfile"
    code, _ = check(env, capsys, "--textfile", str(textfile), "--max-age", "26h")
    assert code == 0
    (prom,) = textfile.iterdir()
    assert prom.name == "flowlet_backup_development_postgres_local.prom"
    samples = {
        s.name: s for f in text_string_to_metric_families(prom.read_text()) for s in f.samples
    }
    labels = {"environment": "development", "database": "postgres", "location": "local"}
    assert all(s.labels == labels for s in samples.values())
    assert samples["flowlet_backup_last_size_bytes"].value == record["bytes"]
    assert samples["flowlet_backup_last_verified"].value == 1
    assert samples["flowlet_backup_last_run_failed"].value == 0
    assert samples["flowlet_backup_max_age_seconds"].value == 26 * 3600
    assert samples["flowlet_backup_check_status"].value == 0
    finished = samples["flowlet_backup_last_success_timestamp_seconds"].value
    assert abs(finished - time.time()) < 120
    update_config(env.config, backup={"check": {"textfile_dir": str(textfile)}})
    (env.out / f"{record['file']}.sha256").unlink()  # now it cannot verify: CRITICAL
    code, _ = check(env, capsys)
    assert code == 2
    samples = {
        s.name: s for f in text_string_to_metric_families(prom.read_text()) for s in f.samples
    }
    assert samples["flowlet_backup_last_verified"].value == 0
    assert samples["flowlet_backup_check_status"].value == 2
    assert [p.name for p in textfile.iterdir()] == [prom.name]  # no temp file left


def test_textfile_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The .prom file is replaced by a rename: a reader never sees half of it."""
    import os

    from tasks.backup import freshness
    from tasks.backup.targets import DatabaseTarget

    target = DatabaseTarget("production", "postgres", "postgres", "h", 5432, "d", "u")
    result = freshness.Result(target, "offsite", 0, "", age=1.0, size=5, finished=10.0)
    renames: list[tuple[str, str]] = []
    real = os.replace
    monkeypatch.setattr(
        os, "replace", lambda a, b: (renames.append((str(a), str(b))), real(a, b))[1]
    )
    path = freshness.write_textfile(tmp_path, result, 3600, source="--textfile")
    assert path.name == "flowlet_backup_production_postgres_offsite.prom"
    ((tmp, final),) = renames
    assert final == str(path) and Path(tmp).parent == tmp_path and not tmp.endswith(".prom")
    assert 'location="offsite"' in path.read_text()


def rules() -> list[dict[str, object]]:
    values = yaml.safe_load(RULES.read_text())
    groups = values["additionalPrometheusRulesMap"]["flowlet-backups"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_parse_and_use_the_textfile_metrics() -> None:
    import promql_parser

    from tasks.backup.drill import METRICS as DRILL_METRICS
    from tasks.backup.freshness import METRICS

    written = {f"flowlet_backup_{name}" for name, _, _ in METRICS}
    written |= {"flowlet_backup_max_age_seconds", "flowlet_backup_check_timestamp_seconds"}
    written |= {f"flowlet_backup_drill_{name}" for name, _ in DRILL_METRICS}
    alerts = {str(rule["alert"]): rule for rule in rules()}
    assert set(alerts) == {
        "FlowletBackupTooOld",
        "FlowletBackupFailed",
        "FlowletBackupCheckNotRunning",
        "FlowletBackupCheckUnknown",
        "FlowletBackupDrillFailed",
        "FlowletBackupDrillStale",
    }
    for name, rule in alerts.items():
        expr = str(rule["expr"])
        promql_parser.parse(expr)
        used = set(re.findall(r"\bflowlet_backup_[a-z_]+", expr))
        assert used and used <= written, (name, used - written)
        assert rule["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
    assert "flowlet_backup_max_age_seconds" in str(alerts["FlowletBackupTooOld"]["expr"])
    assert "flowlet_backup_last_run_failed" in str(alerts["FlowletBackupFailed"]["expr"])
    assert "flowlet_backup_drill_last_failed" in str(alerts["FlowletBackupDrillFailed"]["expr"])
    stale = str(alerts["FlowletBackupDrillStale"]["expr"])
    assert "flowlet_backup_drill_max_age_seconds" in stale
