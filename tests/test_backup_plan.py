"""Pure planning: stage argv per engine/format/compressor, names, levels, targets, retention,
remote scripts, schedule units, metrics; the task definitions."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import REPO, fails_with

from tasks.backup.names import parse_name
from tasks.backup.plan import BackupOptions, BackupPlan, plan_backup, plan_globals, resolve_level
from tasks.backup.readback import globals_for_existing, read_stages, restore_stage
from tasks.backup.retention import plan_retention
from tasks.backup.targets import DatabaseTarget, mysql_option_text, pgpass_line

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
PG = DatabaseTarget(
    "development",
    "postgres",
    "postgres",
    "127.0.0.1",
    54329,
    "flowlet",
    "flowlet",
    password_env="FLOWLET_DB_PASSWORD",
)
MY = DatabaseTarget("staging", "shop", "mysql", "db", 3306, "shop", "backup", option_file="~/.my")
CONN = (
    "--host",
    "127.0.0.1",
    "--port",
    "54329",
    "--username",
    "flowlet",
    "--no-password",
    "--dbname",
    "dbname='flowlet'",
)


def options(**kw: object) -> BackupOptions:
    values: dict[str, object] = {
        "fmt": "plain",
        "compress": "gzip",
        "level": 0,
        "jobs": 1,
        "recipients": None,
        "now": NOW,
    }
    values.update(kw)
    return BackupOptions(**values)  # type: ignore[arg-type]


def plan(target: DatabaseTarget = PG, extra: tuple[str, ...] = (), **kw: object) -> BackupPlan:
    return plan_backup(target, options(**kw), Path("/b"), mysql_extra=extra)


@pytest.mark.parametrize(
    "fmt,compress,level,stages,name",
    [
        (
            "plain",
            "gzip",
            0,
            [("pg_dump", *CONN, "--format=plain"), ("gzip", "-c", "-6")],
            "development-postgres-20261127T120000Z.sql.gz",
        ),
        (
            "plain",
            "zstd",
            0,
            [("pg_dump", *CONN, "--format=plain"), ("zstd", "-q", "-c", "-3")],
            "development-postgres-20261127T120000Z.sql.zst",
        ),
        (
            "plain",
            "none",
            0,
            [("pg_dump", *CONN, "--format=plain")],
            "development-postgres-20261127T120000Z.sql",
        ),
        (
            "custom",
            "gzip",
            9,
            [("pg_dump", *CONN, "--format=custom", "--compress=0"), ("gzip", "-c", "-9")],
            "development-postgres-20261127T120000Z.dump.gz",
        ),
    ],
    ids=["plain-gzip", "plain-zstd", "plain-none", "custom-gzip-9"],
)
def test_stream_stages(fmt: str, compress: str, level: int, stages: list, name: str) -> None:
    result = plan(fmt=fmt, compress=compress, level=level)
    assert [s.argv for s in result.stages] == [tuple(s) for s in stages]
    assert [s.secret for s in result.stages] == [True] + [False] * (len(stages) - 1)
    assert result.final == Path("/b") / name
    assert result.partial == Path("/b") / (name + ".partial")
    assert result.prepare is None


def test_directory_format_dumps_in_parallel_under_a_lifeline_then_tars() -> None:
    result = plan(fmt="directory", jobs=4, compress="gzip", level=5)
    work = "/b/development-postgres-20261127T120000Z.dir.tar.partial.d"
    assert result.prepare is not None
    assert result.prepare.argv == (
        "pg_dump",
        *CONN,
        "--format=directory",
        "--jobs=4",
        "--compress=5",
        "--file",
        work,
    )
    assert result.prepare.forks and result.prepare.secret
    assert [s.argv for s in result.stages] == [("tar", "-c", "-f", "-", "-C", work, "--", ".")]
    assert result.final.name == "development-postgres-20261127T120000Z.dir.tar"
    assert not plan(fmt="directory", jobs=1).prepare.forks  # type: ignore[union-attr]


def test_encryption_is_the_last_stage() -> None:
    result = plan(recipients=("age1aaa", "age1bbb"))
    assert result.stages[-1].argv == ("age", "-r", "age1aaa", "-r", "age1bbb")
    assert result.final.name.endswith(".sql.gz.age")


def test_mysql_stages_take_the_option_file_first_and_dump_events() -> None:
    result = plan(MY, extra=("--defaults-extra-file=/dev/fd/5",), compress="zstd")
    dump = result.stages[0].argv
    assert dump[0] in ("mariadb-dump", "mysqldump")
    assert dump[1] == "--defaults-extra-file=/dev/fd/5"
    assert {"--single-transaction", "--routines", "--triggers", "--events"} <= set(dump)
    assert dump[-2:] == ("--", "shop")
    assert result.final.name == "staging-shop-20261127T120000Z.sql.zst"


def test_globals_companion_shares_the_stamp_and_skips_role_passwords_unless_superuser() -> None:
    companion = plan_globals(PG, options(compress="zstd"), Path("/b"), role_passwords=False)
    assert companion.final.name == "development-postgres-20261127T120000Z.globals.sql.zst"
    assert companion.stages[0].argv[-2:] == ("--globals-only", "--no-role-passwords")
    superuser = plan_globals(PG, options(), Path("/b"), role_passwords=True)
    assert superuser.stages[0].argv[-1] == "--globals-only"
    name = parse_name(companion.final.name)
    main = parse_name(plan(compress="zstd").final.name)
    assert name is not None and main is not None and name.is_globals and not main.is_globals
    assert name.set_key == main.set_key


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"fmt": "tar"}, "--format: 'tar' is not valid; valid: plain, custom, directory"),
        ({"compress": "bz2"}, "--compress: 'bz2' is not valid; valid: gzip, zstd, none"),
        ({"compress": "gzip", "level": 12}, "--level: 12 is not valid for gzip; valid: 1-9"),
        ({"jobs": 4}, "--jobs: 4 needs --format directory (only -Fd dumps in parallel)"),
        (
            {"fmt": "directory", "compress": "zstd"},
            ("--compress: zstd is not valid with --format " "directory; valid: gzip, none"),
        ),
        (
            {"recipients": ()},
            ("backup.recipients: --encrypt needs at least one age recipient " "(public key)"),
        ),
    ],
    ids=["format", "compress", "level", "jobs-plain", "dir-zstd", "no-recipients"],
)
def test_bad_flags_fail_with_one_line(kw: dict, message: str) -> None:
    with fails_with() as caught:
        plan(**kw)
    assert caught.value.message == message


def test_mysql_has_no_globals() -> None:
    with fails_with(match="^--globals: only for postgres targets"):
        plan(MY, with_globals=True)


def test_zstd_levels() -> None:
    assert resolve_level("zstd", 19) == 19
    assert resolve_level("none", 9) == 0


def test_names_parse_back() -> None:
    name = parse_name("production-postgres-20261127T120000Z.dump.zst.age")
    assert name is not None and (name.prefix, name.stamp, name.ext) == (
        "production-postgres",
        "20261127T120000Z",
        ".dump.zst.age",
    )
    assert name.when == NOW and name.split(["production"]) == ("production", "postgres")
    hyphen = parse_name("eu-west-orders-db-20261127T120000Z.sql")
    assert hyphen is not None and hyphen.split(["eu-west"]) == ("eu-west", "orders-db")
    assert parse_name("notes.txt") is None
    assert parse_name("production-postgres-20261127T120000Z.sql.partial") is None
    assert parse_name("production-postgres-20261127T120000Z.sql\n") is None


def test_read_stages_undo_the_pipeline() -> None:
    stages = read_stages("x-y-20261127T120000Z.sql.gz.age", "/k/id")
    assert [s.argv for s in stages] == [("age", "-d", "-i", "/k/id"), ("gzip", "-d", "-c")]
    with fails_with(match="--identity: x-y-20261127T120000Z.sql.gz.age is encrypted"):
        read_stages("x-y-20261127T120000Z.sql.gz.age", None)


def test_restore_no_owner() -> None:
    custom = restore_stage(PG, "custom", "copy", no_owner=True)
    assert custom[0].argv[:4] == (
        "pg_restore",
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
    )
    plain = restore_stage(PG, "plain", "copy", no_owner=True)
    assert [s.name for s in plain] == ["awk", "psql"]


def test_no_owner_filter_keeps_copy_data(tmp_path: Path) -> None:
    from tasks.backup.readback import NO_OWNER_AWK

    dump = (
        "CREATE TABLE public.t (x text);\nALTER TABLE public.t OWNER TO someone;\n"
        "COPY public.t (x) FROM stdin;\nALTER TABLE x OWNER TO y;\n\\.\n"
        "ALTER SEQUENCE public.s OWNER TO someone;\n"
    )
    out = subprocess.run(
        ["awk", NO_OWNER_AWK], input=dump, capture_output=True, text=True, check=True
    ).stdout
    assert out == (
        "CREATE TABLE public.t (x text);\nCOPY public.t (x) FROM stdin;\n"
        "ALTER TABLE x OWNER TO y;\n\\.\n"
    )


def test_globals_for_existing_leaves_existing_roles_alone() -> None:
    script = (
        "CREATE ROLE flowlet;\nALTER ROLE flowlet WITH NOSUPERUSER LOGIN;\n"
        "CREATE ROLE pagila_owner;\nALTER ROLE pagila_owner WITH NOLOGIN;\n"
        'CREATE ROLE "Odd Name";\nALTER ROLE "Odd Name" WITH NOLOGIN;\n'
        "GRANT pagila_owner TO flowlet;\n"
    )
    assert globals_for_existing(script, {"flowlet", "postgres"}) == (
        "CREATE ROLE pagila_owner;\nALTER ROLE pagila_owner WITH NOLOGIN;\n"
        'CREATE ROLE "Odd Name";\nALTER ROLE "Odd Name" WITH NOLOGIN;\n'
        "GRANT pagila_owner TO flowlet;\n"
    )


def test_pgpass_line_escapes_colons_and_backslashes() -> None:
    assert pgpass_line(PG, "a:b\\c") == "127.0.0.1:54329:*:flowlet:a\\:b\\\\c\n"
    assert mysql_option_text('p"w\\') == '[client]\npassword="p\\"w\\\\"\n'


def test_remote_command_keeps_the_secret_in_a_shell_variable() -> None:
    from tasks.backup.remote import remote_command

    pg = remote_command(plan(), None, has_secret=True)
    assert pg.startswith('PGSSLMODE=prefer PGPASSWORD="$FLOWLET_SECRET" pg_dump --host 127.0.0.1')
    assert pg.endswith("| gzip -c -6")
    my = remote_command(
        plan(MY, extra=("--defaults-extra-file=/@FLOWLET_SECRET@",)), None, has_secret=True
    )
    assert '--defaults-extra-file=<(printf %s "$FLOWLET_SECRET")' in my
    directory = remote_command(plan(fmt="directory", jobs=2), None, has_secret=False)
    assert directory.startswith("work=$(mktemp -d); trap 'rm -rf -- \"$work\"' EXIT;")
    assert '--file "$work/d"; kill "$meter"; ' in directory
    assert (
        'sha256sum -- * > ../sums && mv ../sums flowlet.sha256sums); tar -c -f - -C "$work/d" -- .'
        in directory
    )


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
)
def test_retention_keeps_exactly(rules: dict, expected: list[str]) -> None:
    keep, delete = plan_retention(synthetic(), now=NOW, **rules)
    assert keep == expected
    assert sorted(keep + delete) == sorted(name for name, _ in synthetic())


def test_retention_never_deletes_the_newest_verified() -> None:
    keep, delete = plan_retention(
        synthetic(), keep_last=1, daily=0, weekly=0, now=NOW, protect="d30h02"
    )
    assert keep == ["d00h02", "d30h02"]
    assert "d30h02" not in delete


def test_retention_with_no_rules_keeps_the_newest() -> None:
    keep, _ = plan_retention(synthetic(), keep_last=0, daily=0, weekly=0, now=NOW)
    assert keep == ["d00h02"]


def test_progress_is_quiet_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from tasks.backup.stream import Progress, human

    meter = Progress("x")
    meter.last -= 10
    meter.add(5 * 2**20)
    meter.done()
    assert capsys.readouterr().err == ""
    assert (human(512), human(5 * 2**20)) == ("512 B", "5.0 MiB")


def test_progress_line_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from tasks.backup.stream import Progress

    meter = Progress("name.sql.gz", enabled=True)
    meter.extra = lambda: ", uploaded 1.0 MiB"
    meter.last -= 10
    meter.add(3 * 2**20)
    assert "\rname.sql.gz: 3.0 MiB, " in capsys.readouterr().err


def test_the_three_backup_tasks_are_one_function() -> None:
    from tasks import backup

    bodies = {t.body.func for t in (backup.backup, backup.postgres, backup.mysql)}
    assert bodies == {backup._backup}
    flags = {
        t.name: [a.name for a in t.get_arguments()]
        for t in (backup.backup, backup.postgres, backup.mysql)
    }
    assert "db_type" in flags["backup"] and "db_type" not in flags["postgres"]
    assert not {"format", "jobs", "globals", "db_type"} & set(flags["mysql"])
    assert backup.mysql.__doc__.startswith("Back up a MariaDB/MySQL database")


def test_import_loads_no_backup_machinery() -> None:
    """``inv --list`` imports tasks.backup: only the task definitions, none of the machinery."""
    code = (
        "import sys, tasks.backup; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fabric', 'paramiko') or (m.startswith(('tasks.backup.', 'tasks.sshremote')) "
        "and m != 'tasks.backup.settings')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout == "[]\n"


def test_local_compression_is_parallel_and_keeps_the_format() -> None:
    """Locally gzip goes through pigz (gzip-compatible) and zstd gets worker threads; a
    ``--host`` pipeline keeps the remote's plain tools."""
    from tasks.backup.plan import compress_stage

    assert compress_stage("gzip", 6, parallel=True).argv == ("pigz", "-c", "-6")
    assert compress_stage("zstd", 3, parallel=True).argv == ("zstd", "-q", "-c", "-3", "-T0")
    assert compress_stage("gzip", 6).argv == ("gzip", "-c", "-6")
    assert compress_stage("zstd", 3).argv == ("zstd", "-q", "-c", "-3")
    assert compress_stage("none", 0, parallel=True) is None


# Every positional argument comes after "--" and the PostgreSQL database name is a quoted
# keyword value, so a name is never read as an option or a connection string (issue 23).
@pytest.mark.parametrize(
    "name,quoted",
    [
        ("flowlet", "dbname='flowlet'"),
        ("O'Brien", "dbname='O\\'Brien'"),
        ("a\\b", "dbname='a\\\\b'"),
        ("postgresql://evil/x", "dbname='postgresql://evil/x'"),
    ],
    ids=["plain", "quote", "backslash", "uri"],
)
def test_pg_dbname_is_a_quoted_keyword_value(name: str, quoted: str) -> None:
    from tasks.backup.plan import pg_dbname

    assert pg_dbname(name) == quoted


def test_mysql_dump_argv_ends_with_double_dash_and_the_name() -> None:
    dump = plan(MY, extra=("--defaults-extra-file=/dev/fd/5",), compress="none").stages[0]
    assert dump.argv[1:] == (
        "--defaults-extra-file=/dev/fd/5",
        "--protocol=TCP",
        "--host",
        "db",
        "--port",
        "3306",
        "--user",
        "backup",
        "--single-transaction",
        "--quick",
        "--routines",
        "--triggers",
        "--events",
        "--",
        "shop",
    )


def test_globals_argv_quotes_the_database() -> None:
    companion = plan_globals(PG, options(compress="none"), Path("/b"), role_passwords=True)
    assert companion.stages[0].argv == (
        "pg_dumpall",
        *CONN[:-2],
        "--database",
        "dbname='flowlet'",
        "--globals-only",
    )


def test_restore_argvs_put_positionals_after_double_dash() -> None:
    from tasks.backup.readback import read_all_stage

    work = Path("/w")
    assert [s.argv for s in restore_stage(PG, "directory", "copy", jobs=2, workdir=work)] == [
        (
            "pg_restore",
            "--exit-on-error",
            "--jobs=2",
            *CONN[:-1],
            "dbname='copy'",
            "--format=directory",
            "--",
            "/w",
        )
    ]
    assert [s.argv for s in restore_stage(PG, "custom", "copy")] == [
        ("pg_restore", "--exit-on-error", "--single-transaction", *CONN[:-1], "dbname='copy'")
    ]
    assert [s.argv for s in restore_stage(PG, "plain", "copy")] == [
        (
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            *CONN[:-1],
            "dbname='copy'",
            "--single-transaction",
            "-o",
            "/dev/null",
        )
    ]
    mysql = restore_stage(MY, "plain", "copy", client_extra=("--defaults-extra-file=/dev/fd/5",))
    assert mysql[0].argv[1:] == (
        "--defaults-extra-file=/dev/fd/5",
        "--protocol=TCP",
        "--host",
        "db",
        "--port",
        "3306",
        "--user",
        "backup",
        "--sandbox",
        "--local-infile=0",
        "--",
        "copy",
    )
    assert read_all_stage("directory", work).argv == (
        "pg_restore",
        "-f",
        "/dev/null",
        "--format=directory",
        "--",
        "/w",
    )
    assert read_all_stage("custom").argv == ("pg_restore", "-f", "/dev/null")


def test_rclone_streams_put_the_object_after_double_dash() -> None:
    from tasks.backup.describe import upload_lines
    from tasks.backup.offsite import Destination

    dest = Destination("offsite", "offsite:bucket", None, ())
    line = upload_lines(dest, "x.sql.gz")[0]
    assert line.startswith("| ") and "rclone --config /dev/null --log-level ERROR " in line
    assert " rcat -- offsite:bucket/x.sql.gz.partial " in line
