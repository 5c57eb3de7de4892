"""The example ledger (examples/backend, examples/frontend) under concurrency and hostile input.

Against the real backend (``python -m flowlet_backend.app``) over a real PostgreSQL 15 cluster
(fixtures_backup.postgres_cluster), a fresh database per test; balances are read from the
database itself, as the superuser. The frontend's proxy runs as ``node server.js`` in front of a
recording fake backend, so what reaches the backend is seen exactly.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO, free_port, need
from fixtures_backup import PG_BIN, PgServer, postgres_cluster

pytestmark = pytest.mark.slow

BACKEND = REPO / "examples" / "backend"
FRONTEND = REPO / "examples" / "frontend"

# The schema before the balance column (what existing dev databases hold).
OLD_SCHEMA = """
CREATE TABLE accounts (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                       created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE transactions (id BIGSERIAL PRIMARY KEY, from_account BIGINT REFERENCES accounts(id),
                           to_account BIGINT NOT NULL REFERENCES accounts(id),
                           amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
                           created_at TIMESTAMPTZ NOT NULL DEFAULT now());
"""


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def call(
    url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310  # nosec B310
            return int(answer.status), json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), json.loads(exc.read()), dict(exc.headers)


def raw(port: int, request: bytes, half_close: bool = True, timeout: float = 10) -> bytes:
    """Send ``request`` as bytes on a fresh connection (then end the sending side, unless not
    ``half_close``: Node's server closes a half-closed connection); everything the server
    answers until it closes (a server that hangs fails the test with a socket timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in as many threads, released together by a barrier; their results (or
    the exception a call raised) in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001  # reported by the caller's assertion
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@dataclass
class Backend:
    pg: PgServer
    db: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path: str, body: Any, **headers: str) -> tuple[int, Any]:
        code, answer, _ = call(self.url(path), body, headers)
        return code, answer

    def account(self, name: str) -> int:
        code, body = self.post("/api/accounts", {"name": name})
        assert code == 201, body
        return int(body["id"])

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            host=str(self.pg.socket_dir), port=self.pg.port, user="postgres", dbname=self.db
        ) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def balance(self, account: int) -> int:
        return int(self.query("SELECT balance_cents FROM accounts WHERE id = %s", account)[0][0])

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def app_env(pg: PgServer, db: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(BACKEND),
        "FLOWLET_DB_DSN": f"host=127.0.0.1 port={pg.port} dbname={db} user=flowlet",
        "FLOWLET_DB_PASSWORD": pg.password,
        **extra,
    }


def migrate(pg: PgServer, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m flowlet_backend.migrate ARGS`` over ``db`` as the app role."""
    return subprocess.run(  # nosec B603
        [sys.executable, "-m", "flowlet_backend.migrate", *args],
        cwd=BACKEND,
        env=app_env(pg, db),
        capture_output=True,
        text=True,
        timeout=120,
    )


def migrated(pg: PgServer, db: str) -> str:
    """Migrate ``db``; what the command printed (stdout and stderr)."""
    done = migrate(pg, db)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def launch(pg: PgServer, db: str, log: Path, **extra: str) -> Backend:
    """The backend on a free port over database ``db`` (migrated first), once its /healthz
    answers 200."""
    migrated(pg, db)
    port = free_port()
    env = app_env(pg, db, FLOWLET_BACKEND_PORT=str(port), **extra)
    with log.open("wb") as out:
        process = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "flowlet_backend.app"],
            cwd=BACKEND,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    backend = Backend(pg, db, port, process, log)

    def healthy() -> bool:
        assert process.poll() is None, backend.output()
        try:
            return call(backend.url("/healthz"))[0] == 200
        except OSError:
            return False

    try:
        wait_until(healthy, 30, "the backend's /healthz")
    except BaseException:
        backend.stop()
        raise
    return backend


@pytest.fixture(scope="module")
def ledger_pg() -> Iterator[PgServer]:
    need(str(PG_BIN / "initdb"), "runuser")
    with postgres_cluster() as server:
        yield server


@pytest.fixture
def start_backend(ledger_pg: PgServer, tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """``start_backend(db=None, populate=None, **env)``: the backend over database ``db`` (a
    fresh one, ``populate`` run in it as the app role, by default); stopped after the test,
    which fails if the backend printed a traceback."""
    started: list[Backend] = []

    def start(db: str | None = None, populate: str | None = None, **extra: str) -> Backend:
        if db is None:
            db = ledger_pg.create_db(f"ledger_{secrets.token_hex(6)}", populate)
        backend = launch(ledger_pg, db, tmp_path / f"backend-{len(started)}.log", **extra)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()
        assert "Traceback" not in backend.output(), backend.output()


def test_twenty_concurrent_transfers_of_the_whole_balance_exactly_one_succeeds(
    start_backend: Callable[..., Backend],
) -> None:
    backend = start_backend()
    source = backend.account("source")
    targets = [backend.account(f"target-{i}") for i in range(20)]
    assert backend.post("/api/deposits", {"to": source, "amount": "100.00"})[0] == 201

    lowest: list[int] = []
    done = threading.Event()

    def watch() -> None:  # the balances as the database has them, all along
        with psycopg.connect(
            host=str(backend.pg.socket_dir),
            port=backend.pg.port,
            user="postgres",
            dbname=backend.db,
        ) as conn:
            while not done.is_set():
                row = conn.execute("SELECT min(balance_cents) FROM accounts").fetchone()
                assert row is not None
                lowest.append(int(row[0]))

    def spend(target: int) -> Callable[[], tuple[int, Any]]:
        body = {"from": source, "to": target, "amount": "100.00"}
        return lambda: backend.post("/api/transactions", body)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        answers = all_at_once([spend(t) for t in targets])
    finally:
        done.set()
        watcher.join(timeout=10)

    assert all(isinstance(a, tuple) for a in answers), answers
    codes = sorted(code for code, _ in answers)
    assert codes == [201] + [409] * 19, answers
    refusals = {body["error"] for code, body in answers if code == 409}
    assert all(
        r.startswith(f"amount: 100.00 is more than the balance of account {source}")
        for r in refusals
    )
    assert lowest and min(lowest) >= 0
    assert backend.balance(source) == 0
    assert sum(backend.balance(t) for t in targets) == 100_00
    # the ledger entries agree with every balance column, and only one debit was written
    disagree = backend.query(
        "SELECT a.id FROM accounts a WHERE a.balance_cents <> "
        "COALESCE((SELECT sum(amount_cents) FROM transactions WHERE to_account = a.id), 0)"
        " - COALESCE((SELECT sum(amount_cents) FROM transactions WHERE from_account = a.id), 0)"
    )
    assert disagree == []
    assert backend.query("SELECT count(*) FROM transactions WHERE from_account = %s", source) == [
        (1,)
    ]


def test_opposite_concurrent_transfers_neither_deadlock_nor_lose_money(
    start_backend: Callable[..., Backend],
) -> None:
    backend = start_backend()
    a, b = backend.account("a"), backend.account("b")
    for account in (a, b):
        assert backend.post("/api/deposits", {"to": account, "amount": "10.00"})[0] == 201
    pairs = [(a, b), (b, a)] * 10

    def move(source: int, to: int) -> Callable[[], tuple[int, Any]]:
        body = {"from": source, "to": to, "amount": "1.00"}
        return lambda: backend.post("/api/transactions", body)

    answers = all_at_once([move(*pair) for pair in pairs])
    codes = [a[0] if isinstance(a, tuple) else a for a in answers]
    assert codes == [201] * 20
    assert (backend.balance(a), backend.balance(b)) == (10_00, 10_00)


def test_a_transfer_needs_a_source_and_deposits_have_their_own_endpoint(
    start_backend: Callable[..., Backend],
) -> None:
    backend = start_backend()
    alice = backend.account("alice")
    for body in (
        {"from": None, "to": alice, "amount": "50.00"},
        {"to": alice, "amount": "50.00"},
        {"from": "", "to": alice, "amount": "50.00"},
    ):
        code, answer = backend.post("/api/transactions", body)
        assert (code, answer["error"]) == (
            400,
            "from: choose the account to debit (a deposit is POST /api/deposits)",
        )
    assert backend.query("SELECT count(*) FROM transactions") == [(0,)]
    assert backend.balance(alice) == 0

    code, answer = backend.post("/api/deposits", {"from": alice, "to": alice, "amount": "1.00"})
    assert code == 400 and answer["error"].startswith("from: a deposit has no source account")
    code, answer = backend.post("/api/deposits", {"to": alice, "amount": "50.00"})
    assert (code, answer["amount"]) == (201, "50.00")
    assert backend.post("/api/deposits", {"to": 999999, "amount": "1.00"}) == (
        400,
        {"error": "to: no such account"},
    )
    assert backend.balance(alice) == 50_00
    code, rows, _ = call(backend.url("/api/accounts"))
    assert rows == [{"id": alice, "name": "alice", "balance_cents": "5000", "balance": "50.00"}]


def test_with_a_deposit_token_a_deposit_needs_it(start_backend: Callable[..., Backend]) -> None:
    backend = start_backend(FLOWLET_DEPOSIT_TOKEN="s3cret-token")
    alice = backend.account("alice")
    body = {"to": alice, "amount": "5.00"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
        code, answer, got = call(backend.url("/api/deposits"), body, headers)
        assert code == 401, answer
        assert got["WWW-Authenticate"] == "Bearer"
        assert "s3cret-token" not in json.dumps(answer)
    code, answer, _ = call(
        backend.url("/api/deposits"), body, {"Authorization": "Bearer s3cret-token"}
    )
    assert code == 201, answer
    assert backend.balance(alice) == 5_00


@pytest.mark.parametrize(
    ("host", "token", "authorization", "status"),
    [
        ("127.0.0.1", "", None, None),
        ("::1", "", None, None),
        ("localhost", "", None, None),
        ("0.0.0.0", "", None, 403),  # nosec B104  # a host name, nothing binds here
        ("10.1.2.3", "", "Bearer anything", 403),
        ("0.0.0.0", "t0k", "Bearer t0k", None),  # nosec B104
        ("127.0.0.1", "t0k", None, 401),
        ("127.0.0.1", "t0k", "Bearer t0", 401),
        ("127.0.0.1", "t0k", "bearer t0k", None),
    ],
    ids=[
        "loopback-open",
        "ipv6-loopback-open",
        "localhost-open",
        "all-interfaces-no-token-disabled",
        "lan-no-token-disabled",
        "all-interfaces-token",
        "token-missing",
        "token-prefix",
        "scheme-case-insensitive",
    ],
)
def test_deposit_policy(
    host: str, token: str, authorization: str | None, status: int | None
) -> None:
    sys.path.insert(0, str(BACKEND))
    try:
        from flowlet_backend.app import DepositPolicy, is_loopback
    finally:
        sys.path.remove(str(BACKEND))
    refusal = DepositPolicy(token=token, loopback=is_loopback(host)).refusal(authorization)
    assert (None if refusal is None else refusal.status) == status


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        (b"Content-Length: abc\r\n", 400, "Content-Length: 'abc' is not a number of bytes"),
        (b"Content-Length: -1\r\n", 400, "Content-Length: '-1' is not a number of bytes"),
        (b"Content-Length: +5\r\n", 400, "Content-Length: '+5' is not a number of bytes"),
        (b"Content-Length: 1e3\r\n", 400, "Content-Length: '1e3' is not a number of bytes"),
        (b"Content-Length: 0x10\r\n", 400, "Content-Length: '0x10' is not a number of bytes"),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400, "Content-Length: given more"),
        (b"Content-Length: " + b"9" * 30 + b"\r\n", 400, "Content-Length: '999"),
        (b"Content-Length: 70000\r\n", 413, "the body is 70000 bytes; at most 65536"),
        (b"Transfer-Encoding: chunked\r\n", 411, "send the body with a Content-Length"),
        (b"Content-Length: 500\r\n", 400, "the body ended before its Content-Length"),
    ],
    ids=[
        "letters",
        "negative",
        "plus-sign",
        "exponent",
        "hex",
        "two-values",
        "thirty-digits",
        "over-the-cap",
        "chunked",
        "shorter-than-said",
    ],
)
def test_bad_content_length_is_one_json_error(
    shared_backend: Backend, headers: bytes, status: int, error: str
) -> None:
    body = b'{"name": "x"}'
    answer = raw(
        shared_backend.port,
        b"POST /api/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + headers
        + b"\r\n"
        + body,
    )
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.0 {status} ".encode()), answer
    assert b"\r\nConnection: close" in head
    assert json.loads(payload)["error"].startswith(error)
    assert shared_backend.query("SELECT count(*) FROM accounts WHERE name = 'x'") == [(0,)]
    # the backend goes on answering (no thread died, none is stuck reading)
    assert call(shared_backend.url("/healthz"))[0] == 200


@pytest.fixture(scope="module")
def shared_backend(
    ledger_pg: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """One backend for the many small bad-input cases."""
    log = tmp_path_factory.mktemp("shared-backend") / "backend.log"
    backend = launch(ledger_pg, ledger_pg.create_db("ledger_shared"), log)
    try:
        yield backend
    finally:
        backend.stop()
    assert "Traceback" not in backend.output(), backend.output()


def test_a_client_that_stops_sending_does_not_hold_the_backend(shared_backend: Backend) -> None:
    with socket.create_connection(("127.0.0.1", shared_backend.port), timeout=10) as stuck:
        stuck.sendall(b"POST /api/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
        # while that body never completes, other requests are answered
        for _ in range(5):
            assert call(shared_backend.url("/api/accounts"))[0] == 200


def test_an_existing_database_gets_the_balance_column_from_its_entries(
    start_backend: Callable[..., Backend], ledger_pg: PgServer
) -> None:
    history = OLD_SCHEMA + """
    INSERT INTO accounts (name) VALUES ('a'), ('b'), ('c');
    INSERT INTO transactions (from_account, to_account, amount_cents)
      VALUES (NULL, 1, 10000), (1, 2, 2550), (2, 3, 50), (NULL, 3, 1);
    """
    db = ledger_pg.create_db(f"ledger_{secrets.token_hex(6)}", history)
    assert "adopting them" in migrated(ledger_pg, db)
    backend = start_backend(db=db)
    code, rows, _ = call(backend.url("/api/accounts"))
    assert [(r["name"], r["balance"]) for r in rows] == [
        ("a", "74.50"),
        ("b", "25.00"),
        ("c", "0.51"),
    ]
    assert backend.query(
        "SELECT count(*) FROM pg_constraint WHERE conname = 'accounts_balance_not_negative'"
    ) == [(1,)]
    # the new column is then kept up to date, and a restart (and its migrate) does not fill it
    # in again
    assert backend.post("/api/transactions", {"from": 1, "to": 2, "amount": "74.50"})[0] == 201
    backend.stop()
    again = start_backend(db=backend.db)
    assert [again.balance(i) for i in (1, 2, 3)] == [0, 99_50, 51]
    assert again.post("/api/transactions", {"from": 1, "to": 2, "amount": "0.01"})[0] == 409


def test_an_existing_double_spend_is_reported_and_cannot_be_spent(
    start_backend: Callable[..., Backend], ledger_pg: PgServer
) -> None:
    history = OLD_SCHEMA + """
    INSERT INTO accounts (name) VALUES ('spender'), ('x'), ('y');
    INSERT INTO transactions (from_account, to_account, amount_cents)
      VALUES (NULL, 1, 10000), (1, 2, 10000), (1, 3, 10000);
    """
    db = ledger_pg.create_db(f"ledger_{secrets.token_hex(6)}", history)
    assert "accounts 1 have a negative balance" in migrated(ledger_pg, db)
    backend = start_backend(db=db)
    assert backend.balance(1) == -100_00
    code, answer = backend.post("/api/transactions", {"from": 1, "to": 2, "amount": "0.01"})
    assert code == 409, answer
    # a credit still lands; once the account is whole again, the next migrate adds the CHECK
    assert backend.post("/api/deposits", {"to": 1, "amount": "100.00"})[0] == 201
    backend.stop()
    again = start_backend(db=backend.db)
    assert again.query(
        "SELECT count(*) FROM pg_constraint WHERE conname = 'accounts_balance_not_negative'"
    ) == [(1,)]


# --- migrations (flowlet_backend/migrate.py) -----------------------------------------------

MIGRATED_SCHEMA = [(1, "0001_accounts_and_transactions"), (2, "0002_account_balance")]


def fresh_db(pg: PgServer, populate: str | None = None) -> str:
    return pg.create_db(f"ledger_{secrets.token_hex(6)}", populate)


def versions(pg: PgServer, db: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(host=str(pg.socket_dir), port=pg.port, user="postgres", dbname=db) as conn:
        return conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()


def test_migrate_from_empty_then_again_is_a_no_op(ledger_pg: PgServer) -> None:
    db = fresh_db(ledger_pg)
    assert migrate(ledger_pg, db, "--check").returncode == 3
    first = migrated(ledger_pg, db)
    assert "applied 0001_accounts_and_transactions" in first
    assert "applied 0002_account_balance" in first
    assert versions(ledger_pg, db) == MIGRATED_SCHEMA
    schema = ledger_pg.schema(db)
    assert "accounts_balance_not_negative" in schema
    assert "nothing to do" in migrated(ledger_pg, db)
    assert ledger_pg.schema(db) == schema
    check = migrate(ledger_pg, db, "--check")
    assert (check.returncode, check.stdout.strip()) == (0, "migrate: up to date (2)")


def test_migrate_from_0001_applies_only_0002(ledger_pg: PgServer) -> None:
    at_one = OLD_SCHEMA + """
    CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
    INSERT INTO schema_migrations (version, name) VALUES (1, '0001_accounts_and_transactions');
    INSERT INTO accounts (name) VALUES ('a'), ('b');
    INSERT INTO transactions (from_account, to_account, amount_cents)
      VALUES (NULL, 1, 500), (1, 2, 125);
    """
    db = fresh_db(ledger_pg, at_one)
    out = migrated(ledger_pg, db)
    assert "0001" not in out and "applied 0002_account_balance" in out
    assert "adopting" not in out
    assert versions(ledger_pg, db) == MIGRATED_SCHEMA
    with psycopg.connect(
        host=str(ledger_pg.socket_dir), port=ledger_pg.port, user="postgres", dbname=db
    ) as conn:
        rows = conn.execute("SELECT name, balance_cents FROM accounts ORDER BY id").fetchall()
    assert rows == [("a", 375), ("b", 125)]


def test_two_migrates_at_once_one_waits_for_the_lock_the_other_finds_nothing_to_do(
    ledger_pg: PgServer, tmp_path: Path
) -> None:
    db = fresh_db(ledger_pg)
    logs = [tmp_path / "migrate-a.log", tmp_path / "migrate-b.log"]
    with psycopg.connect(
        host=str(ledger_pg.socket_dir), port=ledger_pg.port, user="postgres", dbname=db
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(x'466C6F776C6574'::bigint)")
        runs = []
        for log in logs:
            with log.open("w") as out:
                runs.append(
                    subprocess.Popen(  # nosec B603
                        [sys.executable, "-m", "flowlet_backend.migrate"],
                        cwd=BACKEND,
                        env=app_env(ledger_pg, db),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                )
        wait_until(
            lambda: all("waiting for it" in log.read_text() for log in logs),
            60,
            "both migrates to wait on the advisory lock",
        )
        assert versions_or_none(ledger_pg, db) is None  # nothing ran while the lock was held
        holder.execute("SELECT pg_advisory_unlock(x'466C6F776C6574'::bigint)")
        codes = [run.wait(timeout=60) for run in runs]
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs
    assert sorted("nothing to do" in out for out in outputs) == [False, True], outputs
    assert sum(out.count("applied 0002") for out in outputs) == 1
    assert versions(ledger_pg, db) == MIGRATED_SCHEMA


def versions_or_none(pg: PgServer, db: str) -> list[tuple[Any, ...]] | None:
    try:
        return versions(pg, db)
    except psycopg.errors.UndefinedTable:
        return None


def test_a_failing_migration_is_rolled_back_whole(ledger_pg: PgServer, tmp_path: Path) -> None:
    sys.path.insert(0, str(BACKEND))
    try:
        from flowlet_backend import migrate as runner
    finally:
        sys.path.remove(str(BACKEND))
    for source in sorted((BACKEND / "flowlet_backend" / "migrations").glob("*.sql")):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "0003_broken.sql").write_text(
        "ALTER TABLE accounts ADD COLUMN note TEXT;\nSELECT no_such_function();\n"
    )
    db = fresh_db(ledger_pg)
    with psycopg.connect(
        host="127.0.0.1",
        port=ledger_pg.port,
        user="flowlet",
        password=ledger_pg.password,
        dbname=db,
        autocommit=True,
    ) as conn:
        with pytest.raises(runner.Failed, match="^0003_broken: function no_such_function"):
            runner.migrate(conn, lambda line: None, tmp_path)
        assert runner.current_version(conn) == 2
        assert conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
            "AND attname = 'note'"
        ).fetchone() == (0,)
        # the lock was released: a later run goes ahead (and fails the same way)
        with pytest.raises(runner.Failed):
            runner.migrate(conn, lambda line: None, tmp_path)


def test_the_backend_refuses_a_database_that_is_behind(ledger_pg: PgServer) -> None:
    for populate in (None, OLD_SCHEMA):
        db = fresh_db(ledger_pg, populate)
        env = app_env(ledger_pg, db, FLOWLET_BACKEND_PORT=str(free_port()))
        done = subprocess.run(  # nosec B603
            [sys.executable, "-m", "flowlet_backend.app"],
            cwd=BACKEND,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr == (
            "flowlet-backend: the database schema is at version 0, this backend needs 2: "
            "run python -m flowlet_backend.migrate\n"
        )
        tables = [] if populate is None else ["public.accounts", "public.transactions"]
        assert ledger_pg.tables(db) == tables  # the backend changed nothing


# --- the frontend's proxy -------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    """A fake backend: records each request's target and headers, answers with hop-by-hop
    headers of its own (which must not reach the client)."""

    seen: list[tuple[str, dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        Recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close, X-Backend-Hop")
        self.send_header("X-Backend-Hop", "1")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Proxy-Authenticate", "Basic")
        self.send_header("Upgrade", "h2c")
        self.send_header("X-Kept", "yes")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[int, int]]:
    """(frontend port, fake backend port): ``node server.js`` proxying to the recorder."""
    need("node")
    fake = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    serving = threading.Thread(target=fake.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    port = free_port()
    env = {
        **os.environ,
        "FLOWLET_FRONTEND_PORT": str(port),
        "FLOWLET_BACKEND_URL": f"http://127.0.0.1:{fake.server_port}",
    }
    node = subprocess.Popen(  # nosec B603 B607
        ["node", "server.js"], cwd=FRONTEND, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert node.stdout is not None
        assert "listening" in node.stdout.readline()
        yield port, int(fake.server_port)
    finally:
        node.terminate()
        node.communicate(timeout=10)
        fake.shutdown()
        fake.server_close()
        serving.join()


def proxied(
    port: int, target: str, headers: str = ""
) -> tuple[bytes, list[tuple[str, dict[str, str]]]]:
    Recorder.seen.clear()
    answer = raw(
        port,
        f"GET {target} HTTP/1.1\r\nHost: front\r\n{headers}Connection: close\r\n\r\n".encode(),
        half_close=False,
    )
    return answer, list(Recorder.seen)


def test_the_proxy_drops_hop_by_hop_headers_both_ways(proxy: tuple[int, int]) -> None:
    port, backend_port = proxy
    Recorder.seen.clear()
    request = (
        "GET /api/accounts HTTP/1.1\r\nHost: front\r\n"
        "Connection: close, X-Client-Hop\r\nX-Client-Hop: secret\r\nKeep-Alive: timeout=9\r\n"
        "Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
        "Trailer: X-Sum\r\nUpgrade: websocket\r\nX-End-To-End: kept\r\n\r\n"
    )
    answer = raw(port, request.encode(), half_close=False)
    [(path, headers)] = Recorder.seen
    assert path == "/api/accounts"
    assert headers["x-end-to-end"] == "kept"
    assert headers["host"] == f"127.0.0.1:{backend_port}"
    for name in ("x-client-hop", "keep-alive", "proxy-authorization", "proxy-connection", "te",
                 "trailer", "upgrade", "transfer-encoding"):  # fmt: skip
        assert name not in headers, (name, headers)
    assert "x-client-hop" not in headers.get("connection", "").lower()

    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    got = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    assert status.startswith("HTTP/1.1 200") and json.loads(body) == {"ok": True}
    assert got["x-kept"] == "yes"
    for name in ("x-backend-hop", "keep-alive", "proxy-authenticate", "upgrade"):
        assert name not in got, (name, got)
    assert "x-backend-hop" not in got.get("connection", "").lower()


@pytest.mark.parametrize(
    ("target", "reaches"),
    [
        ("/api/./accounts?x=1", "/api/accounts?x=1"),
        ("/api/v1/../accounts", "/api/accounts"),
        ("http://169.254.169.254/api/accounts", "/api/accounts"),
        ("/public/../api/accounts", "/api/accounts"),
        ("/api/../metrics", None),
        ("/api/%2e%2e/metrics", None),
        ("/api/..%2f..%2fmetrics", "/api/..%2f..%2fmetrics"),
        ("http://127.0.0.1:1/metrics", None),
    ],
    ids=["dot", "dot-dot", "absolute-form", "into-api", "out-of-api", "encoded-dots",
         "encoded-slash-stays-encoded", "absolute-form-out-of-api"],  # fmt: skip
)
def test_the_proxy_forwards_the_normalised_path(
    proxy: tuple[int, int], target: str, reaches: str | None
) -> None:
    answer, seen = proxied(proxy[0], target)
    if reaches is None:
        assert seen == []
        assert answer.startswith(b"HTTP/1.1 404"), answer
    else:
        assert [path for path, _ in seen] == [reaches]
        assert answer.startswith(b"HTTP/1.1 200"), answer
