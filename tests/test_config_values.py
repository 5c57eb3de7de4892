"""Config values are validated for what they become (issue 23): a database ``name`` that is an
option or a connection string is refused from the ``inv`` command line before any tool runs,
and a legal but odd name (quotes, backslashes, a URI prefix) reaches PostgreSQL as a quoted
``dbname='...'`` value: the dump is of that database, on the configured server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from conftest import REPO, run_inv, run_task
from fixtures_backup import PgServer, backup_collection, pg_target, write_config

NS = backup_collection()

MYSQL_PROJECT = (
    "environments:\n  development:\n    namespace: flowlet-dev\n    databases:\n"
    "      mysql: {engine: mysql, host: 127.0.0.1, port: 3306, name: shop, user: backup}\n"
    "      postgres: {engine: postgres, host: 127.0.0.1, port: 5432, name: flowlet, "
    "user: flowlet}\n"
)


def scratch_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("tasks.py", "tasks", "kubernetes", "examples"):
        os.symlink(REPO / name, project / name)
    (project / "invoke.yaml").write_text(MYSQL_PROJECT)
    return project


@pytest.mark.parametrize(
    "task,variable,value",
    [
        ("backup.mysql", "MYSQL_NAME", "--result-file={victim}"),
        ("backup.mysql", "MYSQL_USER", "--result-file={victim}"),
        ("backup.postgres", "POSTGRES_NAME", "--file={victim}"),
        ("backup.postgres", "POSTGRES_NAME", "host=/tmp sslmode=disable"),
    ],
    ids=["mysql-name", "mysql-user", "postgres-name", "postgres-conninfo"],
)
def test_an_option_in_a_database_name_is_one_config_error_and_writes_nothing(
    task: str, variable: str, value: str, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    project = scratch_project(tmp_path)
    key = f"INVOKE_ENVIRONMENTS_DEVELOPMENT_DATABASES_{variable}"
    bad = value.format(victim=victim)
    for argv in ([task], ["--dry", task]):
        result = run_inv(argv, cwd=project, env={key: bad})
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0
        assert len(lines) == 1, lines
        field = variable.split("_", 1)[1].lower()
        engine = variable.split("_", 1)[0].lower()
        assert lines[0].startswith(
            f"environments.development.databases.{engine}.{field}: {bad[:30]!r}"[:-1]
        )
        assert f" is not valid (set in {key}); valid: a " in lines[0]
        assert "no leading '-', no '='" in lines[0]
        assert not victim.exists()
        assert not (project / "backups").exists()


@pytest.mark.slow
def test_an_odd_database_name_is_dumped_from_the_configured_server(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name with a quote, a backslash and a URI prefix: libpq would have read
    ``postgresql://...`` as a URI (another host); quoted, it is a database on our server."""
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", pg_server.password)
    suffix = uuid.uuid4().hex[:6]
    name = f"postgresql://nowhere/O'Br\\ien_{suffix}"
    conninfo = f"dbname='postgresql://nowhere/O\\'Br\\\\ien_{suffix}'"  # psql -d expands
    pg_server.sql(f'create database "{name}" owner {pg_server.user}')
    pg_server.psql(
        "-c",
        f"set role {pg_server.user}",
        "-c",
        "create table t (x int); insert into t select generate_series(1, 7)",
        db=conninfo,
    )
    config = write_config(tmp_path / "invoke.yaml", {"odd": pg_target(pg_server, name)})
    argv = ["backup.postgres", "--database", "odd", "--format", "custom", "--globals"]
    assert run_task(NS, argv, config_file=config) == 0
    made = sorted(p for p in (tmp_path / "backups").glob("development-odd-*.dump.gz"))
    assert len(made) == 1
    restored = "restored_" + uuid.uuid4().hex[:10]
    restore = ["backup.restore", str(made[0]), "--database", restored]
    assert run_task(NS, restore, config_file=config) == 0
    assert pg_server.sql("select count(*) from t", db=restored) == "7"
    pg_server.sql(f'drop database "{restored}"')
    pg_server.sql(f'drop database "{name}"')
