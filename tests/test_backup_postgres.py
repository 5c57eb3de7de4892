"""Real PostgreSQL 15: round trips per format and compressor, verify reads every byte, restore
(--no-owner, --globals into a fresh cluster, a failed restore drops what it created), list and
prune (stale partials too), progress on a terminal."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import fails_with, run_inv, run_task
from fixtures_backup import (
    BackupEnv,
    PgServer,
    backup_collection,
    pg_target,
    plant_earlier,
    update_config,
    write_config,
)

from tasks.backup.names import parse_name

pytestmark = pytest.mark.slow
NS = backup_collection()


def fresh_name() -> str:
    return "restored_" + uuid.uuid4().hex[:10]


def backup(env: BackupEnv, *argv: str) -> int:
    return run_task(NS, ["backup.postgres", *argv], config_file=env.config)


def assert_same_database(env: BackupEnv, source: str, restored: str) -> None:
    pg = env.pg
    assert pg.schema(restored) == pg.schema(source)
    assert pg.row_counts(restored) == pg.row_counts(source)
    assert pg.checksum(restored) == pg.checksum(source)
    assert len(pg.row_counts(restored)) == 2


def reseal(path: Path, data: bytes) -> None:
    """Write ``data`` and a matching sidecar: only the stream check can catch it now."""
    path.write_bytes(data)
    (path.parent / f"{path.name}.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  {path.name}\n"
    )


@pytest.mark.parametrize(
    "fmt,compress,extra",
    [
        ("plain", "gzip", []),
        ("plain", "zstd", ["--level", "9"]),
        ("plain", "none", []),
        ("custom", "gzip", []),
        ("custom", "zstd", []),
        ("custom", "none", []),
        ("directory", "gzip", ["--jobs", "2"]),
        ("directory", "none", ["--jobs", "2"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else v,
)
def test_round_trip(pg_backup_env: BackupEnv, fmt: str, compress: str, extra: list[str]) -> None:
    env = pg_backup_env
    assert backup(env, "--format", fmt, "--compress", compress, *extra) == 0
    (made,) = env.backups()
    assert stat.S_IMODE(env.out.stat().st_mode) == 0o700
    for path in env.out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not [name for name in env.files() if "partial" in name]
    record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["file"] == made.name and record["bytes"] == made.stat().st_size
    assert record["sha256"] == (env.out / f"{made.name}.sha256").read_text().split()[0]
    assert record["locations"] == {"local": str(made)}
    assert record["server_version"].startswith("15.") and "pg_dump" in record["dump_version"]
    assert run_task(NS, ["backup.verify", "--file", str(made)], config_file=env.config) == 0
    target = fresh_name()
    argv = ["backup.restore", str(made), "--database", target]
    assert run_task(NS, argv, config_file=env.config) == 0
    assert_same_database(env, "flowlet", target)


def test_default_task_old_interface(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert run_task(NS, ["backup", "--db-type", "postgres"], config_file=env.config) == 0
    assert [p.name.endswith(".sql.gz") for p in env.backups()] == [True]
    capsys.readouterr()
    assert run_task(NS, ["backup", "--db-type", "oracle"], config_file=env.config) == 1
    assert capsys.readouterr().err == ("--db-type: 'oracle' is not valid; valid: postgres, mysql\n")


def test_verify_latest_with_restore_test(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env, "--format", "custom") == 0
    capsys.readouterr()
    argv = ["backup.verify", "--latest", "--restore-test"]
    assert run_task(NS, argv, config_file=env.config) == 0
    out = capsys.readouterr().out
    assert "restore test ok (2 tables, row counts and" in out
    assert not [
        db for db in env.pg.sql("select datname from pg_database").split() if "_verify_" in db
    ]
    assert run_task(NS, ["backup.list"], config_file=env.config) == 0
    assert "\tverified" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
def test_verify_reads_every_byte(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A truncated or damaged file whose sidecar matches fails verify in every format."""
    env = pg_backup_env
    extra = ["--compress", "none"] if fmt != "plain" else []
    assert backup(env, "--database", "big", "--format", fmt, *extra) == 0
    (made,) = env.backups()
    data = made.read_bytes()
    verify = ["backup.verify", "--file", str(made)]
    capsys.readouterr()
    if fmt == "directory":  # the tar cut short; then intact, but one data file inside is
        reseal(made, data[: len(data) * 2 // 3])
        assert run_task(NS, verify, config_file=env.config) != 0
        assert "Unexpected EOF" in capsys.readouterr().err
        made.write_bytes(data)
        work = env.out / "x"
        work.mkdir()
        subprocess.run(["tar", "-x", "-f", str(made), "-C", str(work)], check=True)
        biggest = max(work.glob("*.dat*"), key=lambda p: p.stat().st_size)
        biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
        subprocess.run(["tar", "-c", "-f", str(made), "-C", str(work), "."], check=True)
        subprocess.run(["rm", "-rf", str(work)], check=True)
        reseal(made, made.read_bytes())
    else:
        reseal(made, data[: len(data) * 2 // 3])
    assert run_task(NS, verify, config_file=env.config) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and made.name in err, err
    made.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the sidecar no longer matches
    assert run_task(NS, verify, config_file=env.config) == 1


def test_verify_detects_corruption(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env) == 0
    (made,) = env.backups()
    data = bytearray(made.read_bytes())
    data[len(data) // 2] ^= 0xFF
    made.write_bytes(bytes(data))
    assert run_task(NS, ["backup.verify", "--latest"], config_file=env.config) == 1
    assert "checksum MISMATCH" in capsys.readouterr().err
    reseal(made, bytes(data[: len(data) // 2]))
    assert run_task(NS, ["backup.verify", "--file", str(made)], config_file=env.config) != 0
    target = fresh_name()
    argv = ["backup.restore", str(made), "--database", target]
    assert run_task(NS, argv, config_file=env.config) != 0
    assert target not in env.pg.sql("select datname from pg_database").split()


def test_restore_refuses_non_empty_without_force(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env, "--format", "custom", "--compress", "zstd") == 0
    (made,) = env.backups()
    target = env.pg.create_db(fresh_name(), "create table keep_me (id int)")
    argv = ["backup.restore", str(made), "--database", target]
    assert run_task(NS, argv, config_file=env.config) == 1
    assert (
        f"--database: {target} is not empty (1 relations); --force replaces it"
        in capsys.readouterr().err
    )
    assert env.pg.tables(target) == ["public.keep_me"]
    assert run_task(NS, [*argv, "--force"], config_file=env.config) == 0
    assert_same_database(env, "flowlet", target)


def test_restore_stops_at_first_sql_error_and_drops_what_it_created(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env, "--compress", "none") == 0
    (made,) = env.backups()
    text = made.read_text()
    broken = text.replace("CREATE TABLE public.accounts", "CREATE TABLE public.accounts broken", 1)
    reseal(made, broken.encode())
    target = fresh_name()
    argv = ["backup.restore", str(made), "--database", target]
    assert run_task(NS, argv, config_file=env.config) == 3
    err = capsys.readouterr().err
    assert "syntax error" in err and err.count("\n") == 1
    assert target not in env.pg.sql("select datname from pg_database").split()
    existing = env.pg.create_db(fresh_name())  # an existing empty database stays
    assert (
        run_task(NS, ["backup.restore", str(made), "--database", existing], config_file=env.config)
        == 3
    )
    assert existing in env.pg.sql("select datname from pg_database").split()
    assert env.pg.tables(existing) == []


def test_restore_in_production_needs_confirmation(
    pg_backup_env: BackupEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env) == 0
    (made,) = env.backups()
    prod = made.with_name(made.name.replace("development-", "production-"))
    made.rename(prod)
    (env.out / f"{made.name}.sha256").rename(env.out / f"{prod.name}.sha256")
    config = (
        env.config.read_text()
        .replace("development:", "production:")
        .replace("flowlet-dev", "flowlet-prod")
    )
    prod_config = tmp_path / "prod.yaml"
    prod_config.write_text(config)
    target = fresh_name()
    argv = ["backup.restore", str(prod), "--database", target]
    assert run_task(NS, argv, config_file=prod_config) == 1
    assert "refusing: no terminal to confirm on; pass --yes" in capsys.readouterr().err
    assert run_task(NS, [*argv, "--yes"], config_file=prod_config) == 0
    assert_same_database(env, "flowlet", target)


def test_prune_keeps_retention_newest_verified_and_removes_stale_partials(
    pg_backup_env: BackupEnv, earlier_backup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    plant_earlier(earlier_backup, env.out)
    good = earlier_backup.name
    payload = (env.out / good).read_bytes()
    names = [f"development-postgres-2021010{d}T000000Z.sql.gz" for d in range(1, 6)]
    for name in names:  # newer backups whose checksum no longer matches: not verified
        (env.out / name).write_bytes(payload + b"x")
        (env.out / f"{name}.sha256").write_text((env.out / f"{good}.sha256").read_text())
    stale = env.out / "development-postgres-20210106T000000Z.sql.gz.partial"
    stale.write_bytes(b"half")
    stale_dir = env.out / "development-postgres-20210106T000000Z.dir.tar.partial.d"
    stale_dir.mkdir()
    (stale_dir / "toc.dat").write_bytes(b"x")
    update_config(env.config, backup={"retention": {"keep_last": 2, "daily": 0, "weekly": 0}})
    capsys.readouterr()
    assert run_task(NS, ["backup.list"], config_file=env.config) == 0
    listing = capsys.readouterr().out
    assert f"{stale.name}\t4 B\t" in listing and "FAILED (stale partial" in listing
    assert f"{stale_dir.name}\t" in listing
    assert run_task(NS, ["--dry", "backup.prune"], config_file=env.config) == 0
    out = capsys.readouterr().out
    assert out.count("would delete") == 6  # 3 sets, the summary line, 2 stale partials
    assert len(env.backups()) == 6 and stale.exists()
    assert run_task(NS, ["backup.prune"], config_file=env.config) == 0
    assert [p.name for p in env.backups()] == sorted([good, names[3], names[4]])
    assert not stale.exists() and not stale_dir.exists()


def test_list_and_prune_name_a_bad_environment(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    for task in ("backup.list", "backup.prune", "backup.verify"):
        argv = [task, "--env", "nope", *(["--latest"] if task == "backup.verify" else [])]
        assert run_task(NS, argv, config_file=pg_backup_env.config) == 1
        assert capsys.readouterr().err == (
            "--env: 'nope' is not valid; valid: development, production, staging\n"
        )


def test_password_from_a_configured_passfile(
    pg_backup_env: BackupEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.backup.targets import DatabaseTarget, pgpass_line

    env = pg_backup_env
    monkeypatch.delenv("FLOWLET_DB_PASSWORD")
    passfile = tmp_path / "pgpass"
    target = DatabaseTarget(
        "development", "postgres", "postgres", "127.0.0.1", env.pg.port, "flowlet", "flowlet"
    )
    passfile.write_text(pgpass_line(target, env.pg.password))
    passfile.chmod(0o600)
    config = pg_target(env.pg)
    del config["password_env"]
    write_config(env.config, {"postgres": {**config, "passfile": str(passfile)}})
    assert backup(env) == 0
    assert len(env.backups()) == 1


def owned_schema(pg: PgServer) -> str:
    """A database whose objects belong to a role (pagila_owner) a fresh cluster lacks."""
    pg.sql(
        "do $$ begin create role pagila_owner nologin; exception when duplicate_object "
        "then null; end $$"
    )
    pg.sql("grant pagila_owner to flowlet")
    name = "owned_" + uuid.uuid4().hex[:6]
    pg.create_db(name)
    pg.psql(
        "-c",
        "create table film (id int primary key, title text); "
        "insert into film select g, 'film ' || g from generate_series(1, 50) g; "
        "alter table film owner to pagila_owner",
        db=name,
    )
    return name


def test_globals_round_trip_into_a_fresh_cluster(
    pg_backup_env: BackupEnv, fresh_pg: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    source = owned_schema(env.pg)
    fresh = {
        **pg_target(fresh_pg, "flowlet_copy"),
        "user": "flowlet_admin",
        "password_env": "FLOWLET_FRESH_PASSWORD",
    }
    os.environ["FLOWLET_FRESH_PASSWORD"] = fresh_pg.password
    try:
        write_config(
            env.config,
            {"owned": pg_target(env.pg, source)},
            environments={
                "staging": {"namespace": "flowlet-staging", "databases": {"owned": fresh}}
            },
        )
        assert (
            run_task(
                NS,
                ["backup.postgres", "--database", "owned", "--format", "custom", "--globals"],
                config_file=env.config,
            )
            == 0
        )
        made = [p for p in env.backups() if ".globals." not in p.name]
        companion = [p for p in env.backups() if ".globals." in p.name]
        assert len(made) == 1 and len(companion) == 1
        text = subprocess.run(
            ["gzip", "-dc", str(companion[0])], capture_output=True, check=True, text=True
        ).stdout
        assert "CREATE ROLE pagila_owner;" in text and "PASSWORD" not in text  # not a superuser
        record = json.loads((env.out / "manifest.jsonl").read_text().splitlines()[-1])
        assert record["globals"]["file"] == companion[0].name
        capsys.readouterr()
        restore = ["backup.restore", str(made[0]), "--env", "staging", "--database"]
        # without the roles: fails, and leaves no empty database behind
        assert run_task(NS, [*restore, "plain_copy"], config_file=env.config) != 0
        assert 'role "pagila_owner" does not exist' in capsys.readouterr().err
        assert "plain_copy" not in fresh_pg.sql("select datname from pg_database").split()
        # --no-owner: the restoring role owns everything
        assert run_task(NS, [*restore, "noowner_copy", "--no-owner"], config_file=env.config) == 0
        assert (
            fresh_pg.sql(
                "select tableowner from pg_tables where tablename = 'film'", "noowner_copy"
            )
            == "flowlet_admin"
        )
        # --globals: roles first, then the objects with their owner
        assert run_task(NS, [*restore, "owned_copy", "--globals"], config_file=env.config) == 0
        assert (
            fresh_pg.sql("select tableowner from pg_tables where tablename = 'film'", "owned_copy")
            == "pagila_owner"
        )
        assert fresh_pg.sql("select count(*) from film", "owned_copy") == "50"
        assert run_task(NS, ["backup.verify", "--file", str(made[0])], config_file=env.config) == 0
        assert "globals.sql.gz: sha256 ok" in capsys.readouterr().out
    finally:
        del os.environ["FLOWLET_FRESH_PASSWORD"]


def test_prune_removes_the_globals_companion_with_its_set(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = pg_backup_env
    assert backup(env, "--globals") == 0
    (companion,) = [p for p in env.backups() if ".globals." in p.name]
    parsed = parse_name(companion.name)
    assert parsed is not None
    for path in list(env.out.iterdir()):  # make that set an old one
        if parsed.stamp in path.name:
            path.rename(path.with_name(path.name.replace(parsed.stamp, "20200101T000000Z")))
    assert backup(env) == 0
    update_config(env.config, backup={"retention": {"keep_last": 1, "daily": 0, "weekly": 0}})
    assert run_task(NS, ["backup.prune"], config_file=env.config) == 0
    assert not [p for p in env.files() if ".globals." in p]
    assert len(env.backups()) == 1


def test_output_dir_that_cannot_be_written_is_one_line(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backup(pg_backup_env, "--output-dir", "/sys/x") == 1
    err = capsys.readouterr().err
    assert re.fullmatch(
        r"--output-dir: '/sys/x' is not valid: cannot write there \([^)]+\); "
        r"valid: a writable directory\n",
        err,
    ), err


def test_progress_on_a_terminal_for_every_format(pg_backup_env: BackupEnv) -> None:
    """On a terminal: a progress line (bytes, rate) for plain, custom and directory format,
    including the directory dump itself; without one: nothing but the result line."""
    env = pg_backup_env
    for fmt in ("plain", "directory"):
        base = f"inv -f {env.config} backup.postgres --database big --compress none --format {fmt}"
        # names carry the second: each run writes to its own directory
        quiet_dir, tty_dir = env.out / f"{fmt}-quiet", env.out / f"{fmt}-tty"
        quiet = run_inv(
            f"{base} --output-dir {quiet_dir}", env={"FLOWLET_DB_PASSWORD": env.pg.password}
        )
        assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
        command = f"{base} --output-dir {tty_dir}"
        main, child = pty.openpty()
        proc = subprocess.Popen(
            ["bash", "-c", command],
            stdin=child,
            stdout=child,
            stderr=child,
            env={**os.environ, "FLOWLET_DB_PASSWORD": env.pg.password},
        )
        os.close(child)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(main)
        assert proc.wait(timeout=120) == 0, seen
        text = seen.decode("utf-8", "replace")
        # a progress line: "label: size, rate/s" (units follow the speed of the machine)
        size = r"\d+(\.\d)? (B|KiB|MiB|GiB)"
        assert re.search(rf"\r[^\r\n]+: {size}, {size}/s", text), text
        if fmt == "directory":
            assert "pg_dump -Fd" in text, text


def test_fails_with_reports_the_boundary_line() -> None:
    with fails_with(match="^x$", code=1):
        from tasks.core.errors import OpsError

        raise OpsError("x")


def test_two_backups_in_the_same_second_keep_both(
    pg_backup_env: BackupEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second backup of a target within the same second (another format) gets milliseconds
    in its stamp: list, verify, check and prune see two sets (one vanished before)."""
    from datetime import datetime, timedelta, timezone

    import tasks.backup.run as run_module

    env = pg_backup_env
    start = datetime(2026, 12, 7, 3, 0, 0, tzinfo=timezone.utc)
    times = iter([start, start + timedelta(milliseconds=250)])
    monkeypatch.setattr(run_module, "clock", lambda: next(times))
    assert backup(env, "--format", "plain") == 0
    assert backup(env, "--format", "custom") == 0
    names = sorted(p.name for p in env.backups())
    assert names == [
        "development-postgres-20261207T030000250Z.dump.gz",
        "development-postgres-20261207T030000Z.sql.gz",
    ]
    capsys.readouterr()
    assert run_task(NS, ["backup.list"], config_file=env.config) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in names), listed
    for name in names:
        assert (
            run_task(NS, ["backup.verify", "--file", str(env.out / name)], config_file=env.config)
            == 0
        )
    capsys.readouterr()
    assert run_task(NS, ["backup.verify", "--latest"], config_file=env.config) == 0
    assert names[0] in capsys.readouterr().out  # the newer one, by milliseconds
