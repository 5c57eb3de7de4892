"""Pure parts of setup/dev: env template merge, /proc parsing, records, the plan (order,
least-privilege environments), log rotation and following, the ledger's money parsing."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tasks.dev import deps, envfile, health, logfiles, order, pidfiles, plan, postgres, procs
from tasks.dev.report import render_table

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


def test_identity_tells_a_reused_pid_from_ours() -> None:
    me = procs.Identity.of(os.getpid())
    assert me is not None and me.state() == "running" and me.exe
    assert procs.Identity(me.pid, me.start_ticks - 1, me.exe).state() == "reused"
    assert procs.Identity(me.pid, me.start_ticks, "/usr/bin/other").state() == "reused"
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert procs.Identity(gone.pid, 1, "").state() == "gone"


def test_a_group_is_ours_only_with_a_member_we_started() -> None:
    leader = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        time.sleep(0.05)
        mine = procs.Identity.of(leader.pid)
        assert procs.group_is_ours(leader.pid, [mine])
        stranger = procs.Identity(leader.pid, mine.start_ticks - 5, mine.exe)  # type: ignore
        assert not procs.group_is_ours(leader.pid, [stranger])
        assert not procs.group_is_ours(leader.pid, [None])
    finally:
        leader.kill()
        leader.wait()


RECORD = pidfiles.Record(
    name="backend",
    keeper=procs.Identity(4242, 987654, "/usr/bin/python3"),
    port=8000,
    started=0.0,
    run_id="r1",
)


def test_record_roundtrip_and_bad_files(tmp_path: Path) -> None:
    pidfiles.write_record(tmp_path, RECORD)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "old.json").write_text('{"name": "x", "pid": 1, "pgid": 1}')  # an old version
    pidfiles.write_json(pidfiles.state_path(tmp_path, "backend"), {"state": "running"})
    assert pidfiles.read_records(tmp_path) == [RECORD]
    assert not (tmp_path / "broken.json").exists() and not (tmp_path / "old.json").exists()
    assert json.loads((tmp_path / "backend.json").read_text())["keeper"]["start_ticks"] == 987654
    assert oct((tmp_path / "backend.json").stat().st_mode & 0o777) == "0o600"
    pidfiles.remove_record(tmp_path, "backend")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "code,sig,text",
    [
        (0, None, "exited with code 0"),
        (3, None, "exited with code 3"),
        (None, 9, "killed by SIGKILL"),
    ],
    ids=["zero", "code", "signal"],
)
def test_describe_exit(code: int | None, sig: int | None, text: str) -> None:
    assert procs.describe_exit(code, sig) == text


def test_render_table_aligns_columns() -> None:
    rows = [("db", "12", "54329", "up", "0", "5s"), ("frontend", "-", "3000", "stopped", "-", "-")]
    assert render_table(rows).splitlines() == [
        "NAME      PID  PORT   STATE    RESTARTS  UPTIME",
        "db        12   54329  up       0         5s",
        "frontend  -    3000   stopped  -         -",
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
    assert health.postgres_accepting(answer) is accepting


def test_rotating_log_rotates_at_line_boundaries_and_keeps_a_few(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    log = logfiles.RotatingLog(path, max_bytes=20, keep=2)
    for n in range(12):
        log.write(f"line {n:02d}\n".encode())  # 8 bytes each: two lines fit in 20
    log.close()
    assert path.read_text() == "line 10\nline 11\n"
    assert (tmp_path / "web.log.1").read_text() == "line 08\nline 09\n"
    assert (tmp_path / "web.log.2").read_text() == "line 06\nline 07\n"
    assert not (tmp_path / "web.log.3").exists()
    log = logfiles.RotatingLog(path, max_bytes=20, keep=0)
    log.write(b"x" * 50)  # one line longer than the limit is split; nothing old is kept
    log.close()
    assert all(len(p.read_bytes()) <= 20 for p in tmp_path.glob("web.log*"))


def test_run_tail_shows_only_the_current_run(tmp_path: Path) -> None:
    path = tmp_path / "db.log"
    old = logfiles.marker("db", logfiles.start_marker_text("r1")).decode()
    new = logfiles.marker("db", logfiles.start_marker_text("r2")).decode()
    path.write_text(old + "old error\n" + new + "new line\n")
    assert logfiles.run_tail(path, "r2", 10) == [new.rstrip(), "new line"]
    path.write_text("rotated during the run\n")
    assert logfiles.run_tail(path, "r2", 10) == ["rotated during the run"]


def test_log_follower_follows_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    path.write_text("before\n")
    follower = logfiles.LogFollower({"web": path})
    out: list[str] = []
    with open(path, "a") as handle:
        handle.write("one\n")
    path.rename(tmp_path / "web.log.1")
    with open(tmp_path / "web.log.1", "a") as handle:
        handle.write("two\n")  # written to the old file after the rename: still shown
    path.write_text("three\n")
    follower.poll(out.append)
    path.write_text("")  # truncated
    follower.poll(out.append)
    with open(path, "a") as handle:
        handle.write("four\n")
    follower.poll(out.append)
    follower.close()
    assert out == ["web | one\n", "web | two\n", "web | three\n", "web | four\n"]


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
    follower.close()
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


# The plan --------------------------------------------------------------------------------


def stack_of(processes: dict[str, dict[str, object]] | None = None) -> plan.Stack:
    from tasks.core.environments import DATABASE
    from tasks.core.settings import Where
    from tasks.dev.settings import SCHEMA

    raw = SCHEMA.defaults()
    if processes is not None:
        raw["processes"] = processes
    dev = SCHEMA.check(raw, Where("dev", None, Path("/project")))
    db = DATABASE.check(
        {"host": "127.0.0.1", "port": 5433, "name": "f", "user": "f", "password_env": "PW"},
        Where("db"),
    )
    return plan.build_stack(
        dev,
        {"postgres": db},
        root=Path("/project"),
        python="/usr/bin/python3",
        pg_user=None,
        current_user="me",
        pg_bin_dir="/pg/bin",
    )


def test_stack_from_the_defaults() -> None:
    stack = stack_of()
    assert stack.names() == ["db", "migrate", "backend", "frontend"]
    db, migrate, backend, frontend = stack.processes
    assert db.argv[:3] == ("/pg/bin/postgres", "-D", "/project/.flowlet/postgres")
    assert db.stop_signal == 2  # SIGINT: PostgreSQL's fast shutdown
    assert migrate.oneshot and not backend.oneshot
    assert migrate.argv == ("/usr/bin/python3", "-m", "flowlet_backend.migrate")
    assert migrate.after == ("db",) and migrate.health_url == ""
    assert migrate.env["FLOWLET_DB_DSN"] == "host=127.0.0.1 port=5433 dbname=f user=f"
    assert plan.readiness(migrate) == "its exit with code 0"
    assert backend.argv == ("/usr/bin/python3", "-m", "flowlet_backend.app")
    assert backend.cwd == Path("/project/examples/backend")
    assert backend.after == ("db", "migrate")
    assert frontend.env["FLOWLET_BACKEND_URL"] == "http://127.0.0.1:8000"
    assert backend.env["FLOWLET_DB_DSN"] == "host=127.0.0.1 port=5433 dbname=f user=f"
    assert order.start_order(stack) == ["db", "migrate", "backend", "frontend"]
    assert order.stop_order(stack, ["db", "frontend", "backend"]) == ["frontend", "backend", "db"]
    assert order.with_dependencies(stack, ["backend"]) == ["db", "migrate", "backend"]
    assert order.with_dependencies(stack, ["frontend"]) == ["frontend"]


def test_a_oneshot_runs_only_when_a_process_being_started_needs_it() -> None:
    from tasks.dev.run import oneshots_when_needed

    stack = stack_of()
    every = ["db", "migrate", "backend", "frontend"]
    assert oneshots_when_needed(stack, every, None) == every
    # the backend runs already: a second dev.start (or --name frontend) does not migrate again
    assert oneshots_when_needed(stack, ["migrate", "frontend"], None) == ["frontend"]
    assert oneshots_when_needed(stack, ["migrate"], None) == []
    assert oneshots_when_needed(stack, ["migrate"], "migrate") == ["migrate"]


def test_status_of_a_oneshot_says_when_it_last_ran_and_how_it_ended() -> None:
    from tasks.dev.report import is_up, oneshot_state

    now = 1_000_000.0
    done = {"state": "exited", "last_exit": {"code": 0, "signal": None, "at": now - 125}}
    failed = {"state": "exited", "last_exit": {"code": 1, "signal": None, "at": now - 5}}
    assert oneshot_state(None, done, now) == "completed 2m05s ago (exit 0)"
    assert oneshot_state(None, failed, now) == "failed 5s ago: exited with code 1"
    assert oneshot_state(None, {}, now) == "not run yet"
    rows = [("m", "-", "-", oneshot_state(None, s, now), "0", "-") for s in (done, failed, {})]
    assert [is_up(r) for r in rows] == [True, False, False]


def test_each_process_gets_only_its_env_file_keys() -> None:
    stack = stack_of()
    dotenv = {
        "FLOWLET_DB_PASSWORD": "pw",
        "FLOWLET_SESSION_SECRET": "s",
        "FLOWLET_LOG_LEVEL": "info",
    }
    base = {"PATH": "/bin"}
    backend = plan.process_env(stack.spec("backend"), dotenv, base, stack.env_file)
    frontend = plan.process_env(stack.spec("frontend"), dotenv, base, stack.env_file)
    db = plan.process_env(stack.spec("db"), dotenv, base, stack.env_file)
    assert backend["FLOWLET_DB_PASSWORD"] == "pw" and backend["FLOWLET_SESSION_SECRET"] == "s"
    assert "FLOWLET_DB_PASSWORD" not in frontend and "FLOWLET_SESSION_SECRET" not in frontend
    assert frontend["FLOWLET_LOG_LEVEL"] == "info" and frontend["PATH"] == "/bin"
    assert db == base
    with pytest.raises(Exception, match=r"env_file_keys: FLOWLET_DB_PASSWORD is not set in"):
        plan.process_env(stack.spec("backend"), {}, base, stack.env_file)


@pytest.mark.parametrize(
    "processes,message",
    [
        (
            {"a": {"command": ["x"], "after": ["b"]}, "b": {"command": ["x"], "after": ["a"]}},
            r"^dev\.processes\.a\.after: a cycle \(a -> b -> a\)$",
        ),
        (
            {"a": {"command": ["x"], "after": ["nope"]}},
            r"^dev\.processes\.a\.after: unknown process 'nope'; valid: a, db$",
        ),
        ({"db": {"command": ["x"]}}, r"^dev\.processes\.db: the name 'db' is reserved"),
        ({"a": {"command": ["{nope}"]}}, r"^dev\.processes\.a\.command: cannot expand '\{nope\}'"),
        (
            {"m": {"command": ["x"], "kind": "oneshot", "restart": "always"}},
            r"^dev\.processes\.m\.restart: 'always' would run the oneshot m again",
        ),
    ],
    ids=["cycle", "unknown-after", "reserved-name", "placeholder", "oneshot-always"],
)
def test_stack_config_errors(processes: dict[str, dict[str, object]], message: str) -> None:
    from tasks.core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        stack_of(processes)


# The ledger's money ------------------------------------------------------------------------


def ledger() -> object:
    import importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "backend"))
    try:
        return importlib.import_module("flowlet_backend.app")
    finally:
        sys.path.pop(0)


@pytest.mark.parametrize(
    "body,cents",
    [
        ({"amount": "12.34"}, 1234),
        ({"amount": "0.5"}, 50),
        ({"amount": " 7 "}, 700),
        ({"amount_cents": 99}, 99),
        ({"amount_cents": "100"}, 100),
        ({"amount": "9999999999999.99"}, 999999999999999),
    ],
    ids=["cents", "one-decimal", "whole", "int-cents", "string-cents", "large-exact"],
)
def test_amounts_are_parsed_exactly(body: dict[str, object], cents: int) -> None:
    assert ledger().parse_amount(body) == cents  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"amount": 12.5}, "JSON number"),
        ({"amount": "12.345"}, "not an amount"),
        ({"amount": "-1"}, "not an amount"),
        ({"amount": "0.00"}, "more than 0.00"),
        ({"amount_cents": 1.5}, "whole number"),
        ({"amount_cents": True}, "whole number"),
        ({}, "not an amount"),
    ],
    ids=["float", "three-decimals", "negative", "zero", "float-cents", "bool", "missing"],
)
def test_bad_amounts_are_refused(body: dict[str, object], message: str) -> None:
    app = ledger()
    with pytest.raises(app.Refused, match=message):  # type: ignore[attr-defined]
        app.parse_amount(body)  # type: ignore[attr-defined]


def test_format_cents() -> None:
    app = ledger()
    assert [app.format_cents(n) for n in (0, 5, 1234, -5, 10**17)] == [  # type: ignore
        "0.00",
        "0.05",
        "12.34",
        "-0.05",
        "1000000000000000.00",
    ]
