"""Pure parts of setup/dev: env template merge, /proc parsing, stale pids, status table."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tasks.dev import deps, envfile
from tasks.dev import logfiles
from tasks.dev import postgres, procs
from tasks.dev.report import render_table, status_row

TEMPLATE = """# comment kept
FLOWLET_DB_PASSWORD=@generate@
FLOWLET_SESSION_SECRET=@generate@
FLOWLET_LOG_LEVEL=info
"""


def counter() -> object:
    numbers = itertools.count(1)
    return lambda: f"secret{next(numbers)}"


def test_merge_env_without_file_renders_template() -> None:
    text, added = envfile.merge_env(None, TEMPLATE, counter())  # type: ignore[arg-type]
    assert text == (
        "# comment kept\nFLOWLET_DB_PASSWORD=secret1\nFLOWLET_SESSION_SECRET=secret2\n"
        "FLOWLET_LOG_LEVEL=info\n"
    )
    assert added == ["FLOWLET_DB_PASSWORD", "FLOWLET_SESSION_SECRET", "FLOWLET_LOG_LEVEL"]


@pytest.mark.parametrize(
    "existing,expected_added",
    [
        (
            "FLOWLET_DB_PASSWORD=mine\nFLOWLET_SESSION_SECRET=\nFLOWLET_LOG_LEVEL=debug\n",
            [],
        ),
        ("FLOWLET_DB_PASSWORD=mine\n", ["FLOWLET_SESSION_SECRET", "FLOWLET_LOG_LEVEL"]),
        ("export FLOWLET_DB_PASSWORD='mine'", ["FLOWLET_SESSION_SECRET", "FLOWLET_LOG_LEVEL"]),
    ],
    ids=["complete-untouched", "missing-keys-appended", "export-and-quotes-no-newline"],
)
def test_merge_env_never_overwrites(existing: str, expected_added: list[str]) -> None:
    text, added = envfile.merge_env(existing, TEMPLATE, counter())  # type: ignore[arg-type]
    assert added == expected_added
    assert text.startswith(existing)
    assert envfile.parse_env(text)["FLOWLET_DB_PASSWORD"] == "mine"
    if not expected_added:
        assert text == existing


def test_parse_env_forms() -> None:
    text = "# c\n\nA=1\nexport B = two \nC=\"three four\"\nD='x'\nnot a pair\nE=a=b\n"
    assert envfile.parse_env(text) == {
        "A": "1",
        "B": "two",
        "C": "three four",
        "D": "x",
        "E": "a=b",
    }


def test_missing_values() -> None:
    assert envfile.missing_values({"A": "", "B": "x"}, ["A", "B", "C"]) == ["A", "C"]


STAT = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0"


def test_parse_stat_with_parentheses_and_spaces_in_name() -> None:
    assert procs.parse_stat(STAT) == procs.ProcStat(
        pid=4242, state="S", pgrp=4242, start_ticks=987654
    )


def test_read_stat_of_this_process() -> None:
    stat = procs.read_stat(os.getpid())
    assert stat is not None and stat.pid == os.getpid() and stat.state in "RS"


RECORD = procs.Record(name="backend", pid=4242, pgid=4242, start_ticks=987654, port=8000, started=0)


@pytest.mark.parametrize(
    "stat,expected",
    [
        (None, "gone"),
        (procs.ProcStat(4242, "Z", 4242, 987654), "gone"),
        (procs.ProcStat(4242, "S", 4242, 111), "reused"),
        (procs.ProcStat(4242, "S", 4242, 987654), "running"),
    ],
    ids=["no-process", "zombie", "pid-reused", "running"],
)
def test_record_state(stat: procs.ProcStat | None, expected: str) -> None:
    assert procs.record_state(RECORD, stat) == expected


def test_record_roundtrip_and_bad_files(tmp_path: Path) -> None:
    procs.write_record(tmp_path, RECORD)
    (tmp_path / "broken.json").write_text("{not json")
    assert procs.read_records(tmp_path) == [RECORD]
    assert not (tmp_path / "broken.json").exists()
    assert json.loads((tmp_path / "backend.json").read_text())["start_ticks"] == 987654


@pytest.mark.parametrize(
    "record,state,listening,expected",
    [
        (None, "", False, ("web", "-", "8000", "stopped", "-")),
        (RECORD, "running", True, ("web", "4242", "8000", "up", "1h01m")),
        (RECORD, "running", False, ("web", "4242", "8000", "not listening", "1h01m")),
        (RECORD, "gone", False, ("web", "4242", "8000", "stale (process gone)", "-")),
        (RECORD, "reused", False, ("web", "4242", "8000", "stale (pid reused)", "-")),
    ],
    ids=["stopped", "up", "not-listening", "stale-gone", "stale-reused"],
)
def test_status_row(
    record: procs.Record | None, state: str, listening: bool, expected: tuple[str, ...]
) -> None:
    assert status_row("web", 8000, record, state, listening, 3690) == expected


def test_render_table_aligns_columns() -> None:
    rows = [("db", "12", "54329", "up", "5s"), ("frontend", "-", "3000", "stopped", "-")]
    assert render_table(rows).splitlines() == [
        "NAME      PID  PORT   STATE    UPTIME",
        "db        12   54329  up       5s",
        "frontend  -    3000   stopped  -",
    ]


@pytest.mark.parametrize(
    "seconds,text", [(5, "5s"), (65, "1m05s"), (3725, "1h02m")], ids=["s", "m", "h"]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert procs.format_duration(seconds) == text


def test_uptime_seconds() -> None:
    assert procs.uptime_seconds(start_ticks=1000, system_uptime=100.0, clk_tck=100) == 90.0


@pytest.mark.parametrize(
    "answer,accepting",
    [
        (b"R\x00\x00\x00\x0c\x00\x00\x00\x0a", True),
        (b"E\x00\x00\x00\x20SFATAL\x00C57P03\x00Mthe database system is starting up\x00", False),
        (b"E\x00\x00\x00\x20SFATAL\x00C28000\x00Mno pg_hba.conf entry\x00", True),
        (b"", False),
    ],
    ids=["auth-request", "starting-up", "other-error", "no-answer"],
)
def test_postgres_accepting(answer: bytes, accepting: bool) -> None:
    assert procs.postgres_accepting(answer) is accepting


def test_log_follower_prefixes_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "backend.log"
    log.write_text("old\n")
    follower = logfiles.LogFollower({"backend": log, "db": tmp_path / "db.log"})
    out: list[str] = []
    with open(log, "a") as handle:
        handle.write("one\ntw")
    follower.poll(out.append)
    with open(log, "a") as handle:
        handle.write("o\n")
    follower.poll(out.append)
    assert out == ["backend | one\n", "backend | two\n"]
    assert logfiles.tail_lines(log, 2) == ["one", "two"]


def test_scram_verifier_shape_and_keys() -> None:
    import base64
    import hashlib
    import hmac

    salt = b"0123456789abcdef"
    verifier = postgres.scram_verifier("pencil", salt)
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    assert method == "SCRAM-SHA-256"
    assert iterations_salt == f"4096:{base64.b64encode(salt).decode()}"
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert keys.split(":")[0] == base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    assert "pencil" not in postgres.role_script(verifier)


def test_local_app_role_may_create_scratch_databases() -> None:
    """backup.verify --restore-test and backup.restore --force need CREATEDB locally."""
    script = postgres.role_script("SCRAM-SHA-256$4096:c2FsdA==$a:b")
    assert "CREATE ROLE %I LOGIN CREATEDB" in script
    assert 'ALTER ROLE :"app_role" WITH LOGIN CREATEDB PASSWORD' in script


def test_unreachable_ancestor() -> None:
    base = Path(tempfile.mkdtemp(prefix="flowlet-reach-"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        (locked / "inner").mkdir(parents=True)
        locked.chmod(0o700)
        target = locked / "inner" / "data"
        stranger = 65534
        assert postgres.unreachable_ancestor(target, stranger, {stranger}) == locked
        assert postgres.unreachable_ancestor(target, locked.stat().st_uid, set()) is None
        assert postgres.unreachable_ancestor(base / "data", stranger, {stranger}) is None
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(
    "lines,unmet",
    [
        (["invoke>=2.0"], []),
        (["invoke>=999"], ["invoke>=999"]),
        (["surely-not-installed-flowlet-pkg"], ["surely-not-installed-flowlet-pkg"]),
        (["psycopg[binary]>=3.1"], []),
        (["invoke>=999; python_version < '3'"], []),
        (["-e ."], ["-e ."]),
    ],
    ids=["satisfied", "too-old", "missing", "extra-satisfied", "marker-false", "pip-option"],
)
def test_unmet_requirements(lines: list[str], unmet: list[str]) -> None:
    assert deps.unmet_requirements(lines) == unmet


def test_requirement_lines_strip_comments() -> None:
    assert deps.requirement_lines("# x\nfoo>=1  # why\n\nbar\n") == ["foo>=1", "bar"]


def lockfile(version: str) -> str:
    return json.dumps(
        {"packages": {"": {"name": "x"}, "node_modules/a": {"version": version, "integrity": "i"}}}
    )


@pytest.mark.parametrize(
    "modules,hidden,stamped,current",
    [
        (False, None, False, False),
        (True, None, False, False),
        (True, "1.0.0", False, True),
        (True, "0.9.0", False, False),
        (True, None, True, True),
    ],
    ids=[
        "no-node-modules",
        "no-hidden-lock",
        "hidden-lock-matches",
        "hidden-lock-differs",
        "stamp",
    ],
)
def test_node_modules_current(
    tmp_path: Path, modules: bool, hidden: str | None, stamped: bool, current: bool
) -> None:
    lock = lockfile("1.0.0")
    (tmp_path / "package-lock.json").write_text(lock)
    stamp = tmp_path / "stamp"
    if modules:
        (tmp_path / "node_modules").mkdir()
    if hidden:
        (tmp_path / "node_modules" / ".package-lock.json").write_text(lockfile(hidden))
    if stamped:
        stamp.write_text(deps.lock_digest(lock.encode()))
    assert deps.node_modules_current(tmp_path, stamp)[0] is current
