"""Pure planning: stage argv per engine/format/compressor, names, levels, targets, retention."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tasks.backup.pipeline import backup_time, parse_name, plan_backup, read_stages, resolve_level
from tasks.backup.retention import plan_retention
from tasks.backup.targets import DatabaseTarget, mysql_option_text, pgpass_line, resolve_target
from tasks.core.environments import Environment
from tests.conftest import REPO, fails_with

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
PG = DatabaseTarget("development", "postgres", "postgres", "127.0.0.1", 54329, "flowlet", "flowlet",
                    password_env="FLOWLET_DB_PASSWORD")  # fmt: skip
MY = DatabaseTarget("staging", "shop", "mysql", "db", 3306, "shop", "backup", option_file="~/.my")
CONN = ("--host", "127.0.0.1", "--port", "54329", "--username", "flowlet", "--no-password",
        "--dbname", "flowlet")  # fmt: skip


def plan(target: DatabaseTarget = PG, **kw: object):
    options = {"output_dir": Path("/b"), "fmt": "plain", "compress": "gzip", "level": 0}
    options.update(jobs=1, recipients=None, now=NOW)
    options.update(kw)
    return plan_backup(target, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fmt,compress,level,stages,name",
    [
        ("plain", "gzip", 0, [("pg_dump", *CONN, "--format=plain"), ("gzip", "-c", "-6")],
         "development-postgres-20261127T120000Z.sql.gz"),
        ("plain", "zstd", 0, [("pg_dump", *CONN, "--format=plain"), ("zstd", "-q", "-c", "-3")],
         "development-postgres-20261127T120000Z.sql.zst"),
        ("plain", "none", 0, [("pg_dump", *CONN, "--format=plain")],
         "development-postgres-20261127T120000Z.sql"),
        ("custom", "gzip", 9, [("pg_dump", *CONN, "--format=custom", "--compress=0"),
                               ("gzip", "-c", "-9")],
         "development-postgres-20261127T120000Z.dump.gz"),
    ],
    ids=["plain-gzip", "plain-zstd", "plain-none", "custom-gzip-9"],
)  # fmt: skip
def test_stream_stages(fmt: str, compress: str, level: int, stages: list, name: str) -> None:
    result = plan(fmt=fmt, compress=compress, level=level)
    assert [s.argv for s in result.stages] == [tuple(s) for s in stages]
    assert result.final == Path("/b") / name
    assert result.partial == Path("/b") / (name + ".partial")
    assert result.prepare is None


def test_directory_format_dumps_in_parallel_then_tars() -> None:
    result = plan(fmt="directory", jobs=4, compress="gzip", level=5)
    work = "/b/development-postgres-20261127T120000Z.dir.tar.partial.d"
    assert result.prepare is not None
    assert result.prepare.argv == ("pg_dump", *CONN, "--format=directory", "--jobs=4",
                                   "--compress=5", "--file", work)  # fmt: skip
    assert [s.argv for s in result.stages] == [("tar", "-c", "-f", "-", "-C", work, ".")]
    assert result.final.name == "development-postgres-20261127T120000Z.dir.tar"


def test_encryption_is_the_last_stage_before_disk() -> None:
    result = plan(recipients=("age1aaa", "age1bbb"))
    assert result.stages[-1].argv == ("age", "-r", "age1aaa", "-r", "age1bbb")
    assert result.final.name.endswith(".sql.gz.age")


def test_mysql_stages_take_the_option_file_first() -> None:
    result = plan(MY, mysql_extra=["--defaults-extra-file=/tmp/x/my.cnf"], compress="zstd")
    dump = result.stages[0].argv
    assert dump[0] in ("mariadb-dump", "mysqldump")
    assert dump[1] == "--defaults-extra-file=/tmp/x/my.cnf"
    assert "--single-transaction" in dump and dump[-1] == "shop"
    assert result.final.name == "staging-shop-20261127T120000Z.sql.zst"


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"fmt": "tar"}, "--format: 'tar' is not valid; valid: plain, custom, directory"),
        ({"compress": "bz2"}, "--compress: 'bz2' is not valid; valid: gzip, zstd, none"),
        ({"compress": "gzip", "level": 12}, "--level: 12 is not valid for gzip; valid: 1-9"),
        ({"jobs": 4}, "--jobs: 4 needs --format directory (only -Fd dumps in parallel)"),
        ({"jobs": 0}, "--jobs: 0 is not valid; valid: 1 or more"),
        ({"fmt": "directory", "compress": "zstd"}, ("--compress: zstd is not valid with --format "
         "directory; valid: gzip, none")),
        ({"recipients": ()}, ("backup.recipients: --encrypt needs at least one age recipient "
         "(public key)")),
    ],
    ids=["format", "compress", "level", "jobs-plain", "jobs-zero", "dir-zstd", "no-recipients"],
)  # fmt: skip
def test_bad_flags_fail_with_one_line(kw: dict, message: str) -> None:
    with fails_with() as caught:
        plan(**kw)
    assert caught.value.message == message


def test_zstd_levels() -> None:
    assert resolve_level("zstd", 19) == 19
    assert resolve_level("none", 9) == 0


def test_names_parse_back() -> None:
    name = "production-postgres-20261127T120000Z.dump.zst.age"
    assert parse_name(name) == {"env": "production", "key": "postgres",
                                "stamp": "20261127T120000Z", "ext": ".dump.zst.age"}  # fmt: skip
    assert backup_time(name) == NOW
    assert parse_name("notes.txt") is None
    assert parse_name(name + ".partial") is None


def test_read_stages_undo_the_pipeline() -> None:
    stages = read_stages(Path("x-y-20261127T120000Z.sql.gz.age"), "/k/id")
    assert [s.argv for s in stages] == [("age", "-d", "-i", "/k/id"), ("gzip", "-d", "-c")]
    with fails_with(match="--identity: x-y-20261127T120000Z.sql.gz.age is encrypted"):
        read_stages(Path("x-y-20261127T120000Z.sql.gz.age"), None)


def test_pgpass_line_escapes_colons_and_backslashes() -> None:
    assert pgpass_line(PG, "a:b\\c") == "127.0.0.1:54329:*:flowlet:a\\:b\\\\c\n"
    assert mysql_option_text(MY, 'p"w\\') == '[client]\npassword="p\\"w\\\\"\n'


def env_with(databases: dict) -> Environment:
    return Environment("staging", "ns", "ctx", "flowlet", None, False, databases)


@pytest.mark.parametrize(
    "databases,key,engine,message",
    [
        ({}, None, "postgres", ("--database: environment 'staging' has 0 postgres targets (none); "
         "name one with --database")),
        ({"a": {}}, "b", None, "--database: unknown target 'b' in staging; valid: a"),
        ({"a": {"engine": "oracle"}}, "a", None,
         "environments.staging.databases.a.engine: 'oracle' is not valid; valid: postgres, mysql"),
        ({"a": {"engine": "mysql", "host": "h", "name": "n", "user": "u"}}, "a", "postgres",
         "--database: target 'a' is a mysql database, not postgres"),
        ({"a": {"engine": "postgres", "name": "n", "user": "u"}}, "a", None,
         "environments.staging.databases.a.host: missing required key (set it in invoke.yaml)"),
        ({"a": {"engine": "postgres", "host": "h", "name": "n", "user": "u", "port": "x"}}, "a",
         None, "environments.staging.databases.a.port: 'x' is not a valid port (1-65535)"),
        ({"a": {"engine": "postgres", "host": "h", "name": "n", "user": "u", "passfile": "p",
                "password_env": "E"}}, "a", None,
         "environments.staging.databases.a: set only one of password_env, passfile, option_file"),
    ],
    ids=["none", "unknown", "engine", "wrong-engine", "no-host", "bad-port", "two-sources"],
)  # fmt: skip
def test_target_errors(databases: dict, key: str | None, engine: str | None, message: str) -> None:
    with fails_with() as caught:
        resolve_target(env_with(databases), key, engine)
    assert caught.value.message == message


def at(days: float, hour: int = 12) -> datetime:
    return (NOW - timedelta(days=days)).replace(hour=hour)


def synthetic() -> list[tuple[str, datetime]]:
    """Two backups a day for 40 days (02:00 and 14:00 UTC), named by age."""
    items = []
    for day in range(40):
        for hour in (2, 14):
            when = (NOW - timedelta(days=day)).replace(hour=hour, minute=0)
            if when <= NOW:
                items.append((f"d{day:02d}h{hour:02d}", when))
    return items


@pytest.mark.parametrize(
    "rules,expected",
    [
        ({"keep_last": 3, "daily": 0, "weekly": 0}, ["d00h02", "d01h14", "d01h02"]),
        ({"keep_last": 0, "daily": 3, "weekly": 0}, ["d00h02", "d01h14", "d02h14"]),
        # NOW is Friday 2026-11-27; weeks start Mon 23rd, 16th, 9th: their newest are today,
        # Sunday 22nd (d05) and Sunday 15th (d12).
        ({"keep_last": 0, "daily": 0, "weekly": 3}, ["d00h02", "d05h14", "d12h14"]),
        ({"keep_last": 2, "daily": 2, "weekly": 2}, ["d00h02", "d01h14", "d05h14"]),
    ],
    ids=["keep-last-3", "daily-3", "weekly-3", "combined"],
)  # fmt: skip
def test_retention_keeps_exactly(rules: dict, expected: list[str]) -> None:
    keep, delete = plan_retention(synthetic(), now=NOW, **rules)
    assert keep == expected
    assert sorted(keep + delete) == sorted(name for name, _ in synthetic())


def test_retention_never_deletes_the_newest_verified() -> None:
    keep, delete = plan_retention(synthetic(), keep_last=1, daily=0, weekly=0, now=NOW,
                                  protect="d30h02")  # fmt: skip
    assert keep == ["d00h02", "d30h02"]
    assert "d30h02" not in delete


def test_retention_with_no_rules_keeps_the_newest() -> None:
    keep, _ = plan_retention(synthetic(), keep_last=0, daily=0, weekly=0, now=NOW)
    assert keep == ["d00h02"]


def test_progress_is_quiet_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from tasks.backup.stream import Progress, human

    meter = Progress(True)
    meter.last -= 10
    meter.add(5 * 2**20)
    meter.done()
    assert capsys.readouterr().err == ""
    assert (human(512), human(5 * 2**20)) == ("512 B", "5.0 MiB")


def test_progress_line_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from tasks.backup.stream import Progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    meter = Progress(True)
    meter.last -= 10
    meter.add(3 * 2**20)
    assert "\r3.0 MiB written, " in capsys.readouterr().err


def test_import_loads_no_backup_machinery() -> None:
    """``inv --list`` imports tasks.backup: only the task definitions, none of the machinery."""
    code = (
        "import sys, tasks.backup; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fabric', 'paramiko') or m.startswith(('tasks.backup.', 'tasks.sshremote'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout == "[]\n"
