"""README's backup section, run as written (``inv ...`` command lines) in a scratch project whose
invoke.yaml points at the real servers the suite starts: PostgreSQL, MariaDB, the sshd (host
``flowlet-db`` through the bastion) and ``rclone serve s3`` (destination ``offsite``)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, readme, run_inv
from fixtures_backup import MariaServer, PgServer, mysql_target, pg_target
from fixtures_s3 import S3Server

pytestmark = pytest.mark.slow
README_NAME = "development-postgres-20261201T021500Z.dump.zst"


class Project:
    def __init__(self, root: Path, env: dict[str, str], bucket: Path) -> None:
        self.root, self.env, self.bucket = root, env, bucket
        self.backups = root / "backups"

    def run(self, command: str, code: int = 0) -> Any:
        time.sleep(1.05)  # a new second: a new file name for the same target
        done = run_inv(command, cwd=self.root, env=self.env)
        assert done.returncode == code, f"{command}: {done.stdout}{done.stderr}"
        return done

    def files(self) -> list[str]:
        return sorted(p.name for p in self.backups.iterdir()) if self.backups.exists() else []


@pytest.fixture
def project(
    tmp_path: Path,
    pg_server: PgServer,
    mariadb_server: MariaServer,
    s3_server: S3Server,
    ssh_config: Path,
) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("tasks.py", "tasks"):
        os.symlink(REPO / name, root / name)
    destination, variables, bucket = s3_server.destination("offsite")
    config = {
        "environments": {
            "development": {
                "namespace": "flowlet-dev",
                "backup_to": "offsite",
                "databases": {
                    "postgres": pg_target(pg_server),
                    "shop": mysql_target(mariadb_server),
                },
            },
            "staging": {
                "namespace": "flowlet-staging",
                "databases": {"postgres": pg_target(pg_server)},
            },
        },
        "backup": {
            "output_dir": "backups",
            "destinations": {"offsite": destination},
            "schedule": {"unit_dir": "units", "env_dir": "etc-flowlet"},
        },
        "ssh": {"config_file": str(ssh_config)},
    }
    (root / "invoke.yaml").write_text(yaml.safe_dump(config))
    env = {
        **variables,
        "FLOWLET_DB_PASSWORD": pg_server.password,
        "FLOWLET_MYSQL_PASSWORD": mariadb_server.password,
    }
    return Project(root, env, bucket)


@readme(
    "inv backup.postgres",
    "inv backup.postgres --env staging --format custom --compress zstd --level 9",
    "inv backup.postgres --format directory --jobs 2 --globals",
    "inv backup.mysql --database shop --compress gzip",
    "inv backup --db-type mysql --database shop",
    "inv backup",
    "inv backup.postgres --host flowlet-db --compress zstd",
    "inv backup.postgres --to offsite",
    "inv backup.postgres --env staging --no-local --to offsite",
    "inv backup.list",
    "inv backup.list --from offsite",
    "inv backup.verify --latest",
    "inv backup.verify --latest --restore-test",
    "inv backup.verify --latest --from offsite",
    "inv --dry backup.prune",
    "inv backup.prune",
    "inv backup.prune --from offsite",
)
def test_backup_commands(project: Project) -> None:
    out = project.run("inv backup.postgres").stdout
    assert "development-postgres-" in out and ".sql.gz  " in out and "offsite: offsite:" in out
    out = project.run(
        "inv backup.postgres --env staging --format custom --compress zstd --level 9"
    ).stdout
    assert "staging-postgres-" in out and ".dump.zst" in out
    project.run("inv backup.postgres --format directory --jobs 2 --globals")
    assert [n for n in project.files() if ".globals.sql.gz" in n and not n.endswith(".sha256")]
    project.run("inv backup.mysql --database shop --compress gzip")
    project.run("inv backup --db-type mysql --database shop")
    assert (
        len(
            [
                n
                for n in project.files()
                if n.startswith("development-shop-") and n.endswith(".sql.gz")
            ]
        )
        == 2
    )
    assert "development-postgres-" in project.run("inv backup").stdout
    out = project.run("inv backup.postgres --host flowlet-db --compress zstd").stdout
    assert ".sql.zst" in out
    project.run("inv backup.postgres --to offsite")
    before = set(project.files())
    project.run("inv backup.postgres --env staging --no-local --to offsite")
    assert set(project.files()) == before  # nothing local but the manifest line
    assert [n for n in os.listdir(project.bucket) if n.startswith("staging-postgres-")]
    listing = project.run("inv backup.list").stdout
    assert "\tsidecar +globals" in listing and listing.count("\n") >= 8
    assert "staging-postgres-" in project.run("inv backup.list --from offsite").stdout
    assert "sha256 ok" in project.run("inv backup.verify --latest").stdout
    assert "restore test ok" in project.run("inv backup.verify --latest --restore-test").stdout
    assert "sha256 ok" in project.run("inv backup.verify --latest --from offsite").stdout
    dry = project.run("inv --dry backup.prune").stdout
    assert "development/postgres at local: keeping" in dry and "would delete 0" in dry
    project.run("inv backup.prune")
    assert "at offsite: keeping" in project.run("inv backup.prune --from offsite").stdout
    lines = (project.backups / "manifest.jsonl").read_text().splitlines()
    manifest = [json.loads(line) for line in lines]
    assert {"local", "offsite"} <= {k for r in manifest for k in r.get("locations", {})}


@readme(
    "inv backup.restore backups/development-postgres-20261201T021500Z.dump.zst "
    "--database flowlet_copy",
    "inv backup.restore development-postgres-20261201T021500Z.dump.zst --from offsite "
    "--database flowlet_copy2 --no-owner",
)
def test_restore_commands(project: Project, pg_server: PgServer) -> None:
    project.run("inv backup.postgres --format custom --compress zstd")
    (made,) = [p for p in project.backups.iterdir() if p.name.endswith(".dump.zst")]
    for path in (made, made.with_name(made.name + ".sha256")):  # the name README shows
        path.rename(path.with_name(path.name.replace(made.name, README_NAME)))
        shutil.copy(
            project.backups / path.name.replace(made.name, README_NAME),
            project.bucket / path.name.replace(made.name, README_NAME),
        )
    manifest = project.backups / "manifest.jsonl"  # made under that name, as far as it knows
    manifest.write_text(manifest.read_text().replace(made.name, README_NAME))
    for db in ("flowlet_copy", "flowlet_copy2"):
        pg_server.sql(f"drop database if exists {db}")
    out = project.run(f"inv backup.restore backups/{README_NAME} --database flowlet_copy").stdout
    assert out.startswith(f"restored {README_NAME} into flowlet_copy: 2 tables")
    out = project.run(
        f"inv backup.restore {README_NAME} --from offsite --database flowlet_copy2 " "--no-owner"
    ).stdout
    assert out.startswith(f"restored {README_NAME} into flowlet_copy2: 2 tables")
    assert pg_server.checksum("flowlet_copy2") == pg_server.checksum("flowlet")


@readme(
    "inv backup.check --max-age 26h",
    "inv backup.check --max-age 26h --warn-age 25h --from offsite --textfile metrics",
)
def test_check_commands(project: Project) -> None:
    out = project.run("inv backup.check --max-age 26h", code=2).stdout
    assert out.startswith("BACKUP CRITICAL - development/postgres: no backup at local")
    project.run("inv backup.postgres")
    project.run("inv backup.mysql --database shop --compress gzip")
    assert project.run("inv backup.check --max-age 26h").stdout.startswith("BACKUP OK - ")
    out = project.run(
        "inv backup.check --max-age 26h --warn-age 25h --from offsite " "--textfile metrics"
    ).stdout
    assert out.startswith("BACKUP OK - development/postgres at offsite: newest ")
    assert sorted(p.name for p in (project.root / "metrics").iterdir()) == [
        "flowlet_backup_development_postgres_offsite.prom",
        "flowlet_backup_development_shop_offsite.prom",
    ]


@readme(
    "inv --dry backup.schedule --env staging --on-calendar '*-*-* 02:15:00'",
    "inv backup.schedule --env staging --on-calendar '*-*-* 02:15:00'",
    "inv backup.schedule --env staging --cron",
    "inv backup.schedule --env staging --remove",
)
def test_schedule_commands(project: Project) -> None:
    dry = project.run("inv --dry backup.schedule --env staging --on-calendar '*-*-* 02:15:00'")
    assert "OnCalendar=*-*-* 02:15:00" in dry.stdout
    units = project.root / "units"
    assert not units.exists()
    project.run("inv backup.schedule --env staging --on-calendar '*-*-* 02:15:00'")
    assert sorted(p.name for p in units.iterdir()) == [
        "flowlet-backup-staging-postgres.service",
        "flowlet-backup-staging-postgres.timer",
    ]
    out = project.run("inv backup.schedule --env staging --cron").stdout
    assert out.splitlines()[-1].startswith("15 2 * * * cd ")
    project.run("inv backup.schedule --env staging --remove")
    assert list(units.iterdir()) == []
    assert not (project.root / "etc-flowlet" / "flowlet-backup-staging-postgres.env").exists()


@readme(
    "inv backup.drill --database postgres",
    "inv backup.drill --database shop --from offsite --textfile metrics",
    "inv backup.schedule --env staging --drill",
)
def test_drill_commands(project: Project) -> None:
    project.run("inv backup.postgres")
    project.run("inv backup.mysql --database shop --compress gzip")
    out = project.run("inv backup.drill --database postgres").stdout
    assert out.startswith("drill ok: development/postgres development-postgres-"), out
    out = project.run("inv backup.drill --database shop --from offsite --textfile metrics").stdout
    assert out.startswith("drill ok: development/shop development-shop-"), out
    assert "from offsite" in out
    records = [
        json.loads(line) for line in (project.backups / "drills.jsonl").read_text().splitlines()
    ]
    assert [(r["database"], r["where"], r["result"]) for r in records] == [
        ("postgres", "local", "ok"),
        ("shop", "offsite", "ok"),
    ]
    assert all(set(r["phases"]) == {"fetch", "restore", "verify"} for r in records)
    assert [p.name for p in (project.root / "metrics").iterdir()] == [
        "flowlet_backup_drill_development_shop_offsite.prom"
    ]
    assert not [n for n in project.files() if "partial" in n]
    project.run("inv backup.schedule --env staging --drill")
    assert sorted(p.name for p in (project.root / "units").iterdir()) == [
        "flowlet-backup-staging-postgres-drill.service",
        "flowlet-backup-staging-postgres-drill.timer",
    ]
