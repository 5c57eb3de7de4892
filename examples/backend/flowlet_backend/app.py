"""Flowlet example backend: a tiny ledger service over PostgreSQL.

Endpoints:
  GET  /healthz                 200 when the database answers, else 503
  GET  /metrics                 Prometheus text format
  GET  /api/accounts            [{"id", "name", "balance_cents", "balance"}]
  POST /api/accounts            {"name": ...} -> 201 the new account; 409 if the name is taken
  POST /api/transactions        {"from": id|null, "to": id, "amount": "12.34"} -> 201

Money is never a float: amounts are stored as integer minor units (cents, BIGINT), and the API
carries them as strings ("balance_cents": "1234", "balance": "12.34"), so no JSON parser on
the way rounds them. A request amount is a string like "12.34" (or an integer
"amount_cents"); a JSON number with a fraction is refused. Errors are JSON ``{"error": ...}``
with a 4xx status naming the field.

Configuration comes from the environment: FLOWLET_DB_DSN (libpq connection string; the
password comes from PGPASSWORD/PGPASSFILE or FLOWLET_DB_PASSWORD, never the DSN in logs),
FLOWLET_BACKEND_HOST (default 127.0.0.1) and FLOWLET_BACKEND_PORT (default 8000).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS transactions (
    id BIGSERIAL PRIMARY KEY,
    from_account BIGINT REFERENCES accounts(id),
    to_account BIGINT NOT NULL REFERENCES accounts(id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS transactions_to_idx ON transactions (to_account);
CREATE INDEX IF NOT EXISTS transactions_from_idx ON transactions (from_account);
"""

# sum(bigint) is numeric in PostgreSQL: cast back to bigint (exact) before it leaves SQL.
BALANCE = """
COALESCE((SELECT sum(amount_cents) FROM transactions WHERE to_account = a.id), 0)::bigint
- COALESCE((SELECT sum(amount_cents) FROM transactions WHERE from_account = a.id), 0)::bigint
"""
# Both queries are constant text (BALANCE above), the values travel as parameters.
BALANCES = f"SELECT a.id, a.name, {BALANCE} FROM accounts a ORDER BY a.id"  # nosec B608
BALANCE_OF = f"SELECT {BALANCE} FROM accounts a WHERE a.id = %s FOR UPDATE"  # nosec B608
AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?$")
MAX_NAME = 100

# Histogram buckets (seconds) for request latency.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Request counters and a latency histogram, rendered in Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            hkey = (method, route)
            counts = self.buckets.setdefault(hkey, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self.sums[hkey] = self.sums.get(hkey, 0.0) + seconds
            self.counts[hkey] = self.counts.get(hkey, 0) + 1

    def render(self) -> str:
        lines = [
            "# HELP flowlet_http_requests_total HTTP requests handled, by method, route, status.",
            "# TYPE flowlet_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                labels = f'method="{method}",route="{route}",status="{status}"'
                lines.append(f"flowlet_http_requests_total{{{labels}}} {n}")
            lines += [
                "# HELP flowlet_http_request_duration_seconds HTTP request latency.",
                "# TYPE flowlet_http_request_duration_seconds histogram",
            ]
            for (method, route), counts in sorted(self.buckets.items()):
                base = f'method="{method}",route="{route}"'
                for bound, n in zip(BUCKETS, counts):
                    lines.append(
                        f'flowlet_http_request_duration_seconds_bucket{{{base},le="{bound}"}} {n}'
                    )
                total = self.counts[(method, route)]
                lines.append(
                    f'flowlet_http_request_duration_seconds_bucket{{{base},le="+Inf"}} {total}'
                )
                lines.append(
                    f"flowlet_http_request_duration_seconds_sum{{{base}}} "
                    f"{self.sums[(method, route)]}"
                )
                lines.append(f"flowlet_http_request_duration_seconds_count{{{base}}} {total}")
        lines += [
            "# HELP flowlet_up 1 while the backend process runs.",
            "# TYPE flowlet_up gauge",
            "flowlet_up 1",
            "# HELP flowlet_process_start_time_seconds Start time of the process (unix).",
            "# TYPE flowlet_process_start_time_seconds gauge",
            f"flowlet_process_start_time_seconds {self.started}",
        ]
        return "\n".join(lines) + "\n"


def connect() -> psycopg.Connection[Any]:
    dsn = os.environ.get("FLOWLET_DB_DSN", "")
    password = os.environ.get("FLOWLET_DB_PASSWORD")
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": 5}
    if password:
        kwargs["password"] = password
    return psycopg.connect(dsn, **kwargs)


def create_schema() -> None:
    with connect() as conn:
        conn.execute(SCHEMA)


class Handler(BaseHTTPRequestHandler):
    server_version = "flowlet-backend/0.1"
    metrics: Metrics

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stdout.write("%s %s\n" % (self.address_string(), format % args))
        sys.stdout.flush()

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self._status = status

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            data = json.loads(self.rfile.read(length) or b"{}", parse_float=_no_float)
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data

    def _timed(self, route: str, fn: Any) -> None:
        start = time.perf_counter()
        self._status = 500
        try:
            fn()
        except BadRequest as exc:
            self._send(exc.status, {"error": exc.message})
        except psycopg.errors.UniqueViolation:
            self._send(409, {"error": "name: an account with this name exists already"})
        except psycopg.errors.ForeignKeyViolation:
            self._send(400, {"error": "no such account"})
        except psycopg.errors.DataError as exc:
            self._send(400, {"error": str(exc).splitlines()[0]})
        except psycopg.Error as exc:
            self._send(503, {"error": f"database unavailable ({type(exc).__name__})"})
        finally:
            self.metrics.observe(self.command, route, self._status, time.perf_counter() - start)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/healthz":
            self._timed("/healthz", self._healthz)
        elif self.path == "/metrics":
            self._send(200, self.metrics.render(), "text/plain; version=0.0.4")
        elif self.path == "/api/accounts":
            self._timed("/api/accounts", self._list_accounts)
        else:
            self._timed("other", lambda: self._send(404, {"error": "not found"}))

    def do_POST(self) -> None:  # noqa: N802
        if self.path == "/api/accounts":
            self._timed("/api/accounts", self._create_account)
        elif self.path == "/api/transactions":
            self._timed("/api/transactions", self._create_transaction)
        else:
            self._timed("other", lambda: self._send(404, {"error": "not found"}))

    def _healthz(self) -> None:
        with connect() as conn:
            conn.execute("SELECT 1")
        self._send(200, {"status": "ok"})

    def _list_accounts(self) -> None:
        with connect() as conn:
            rows = conn.execute(BALANCES).fetchall()
        self._send(200, [account_json(r[0], r[1], r[2]) for r in rows])

    def _create_account(self) -> None:
        name = self._body().get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
            raise BadRequest(f"name: give a name of 1 to {MAX_NAME} characters")
        with connect() as conn:
            row = conn.execute(
                "INSERT INTO accounts (name) VALUES (%s) RETURNING id", (name.strip(),)
            ).fetchone()
        assert row is not None  # nosec B101  # RETURNING always yields a row
        self._send(201, account_json(row[0], name.strip(), 0))

    def _create_transaction(self) -> None:
        body = self._body()
        cents = parse_amount(body)
        to = account_id(body.get("to"), "to")
        source = None if body.get("from") in (None, "") else account_id(body.get("from"), "from")
        if source == to:
            raise BadRequest("to: must differ from from")
        with connect() as conn, conn.transaction():
            if source is not None:
                row = conn.execute(BALANCE_OF, (source,)).fetchone()
                if row is None:
                    raise BadRequest("from: no such account")
                if int(row[0]) < cents:
                    raise BadRequest(
                        f"amount: {format_cents(cents)} is more than the balance of account "
                        f"{source} ({format_cents(int(row[0]))})",
                        status=409,
                    )
            row = conn.execute(
                "INSERT INTO transactions (from_account, to_account, amount_cents) "
                "VALUES (%s, %s, %s) RETURNING id",
                (source, to, cents),
            ).fetchone()
        assert row is not None  # nosec B101  # RETURNING always yields a row
        self._send(201, {"id": row[0], "amount_cents": str(cents), "amount": format_cents(cents)})


class BadRequest(Exception):
    """A request the API refuses (400 unless said otherwise), with a message naming the field."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _Float:
    def __init__(self, text: str) -> None:
        self.text = text


def _no_float(text: str) -> _Float:
    return _Float(text)


def format_cents(cents: int) -> str:
    """1234 -> "12.34", -5 -> "-0.05" (exact: integer arithmetic only)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def account_json(ident: int, name: str, cents: int) -> dict[str, Any]:
    return {"id": ident, "name": name, "balance_cents": str(cents), "balance": format_cents(cents)}


def parse_amount(body: dict[str, Any]) -> int:
    """The positive amount in cents: "amount" as a string like "12.34", or integer cents."""
    if "amount_cents" in body:
        value = body["amount_cents"]
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise BadRequest("amount_cents: give a positive whole number of cents")
        return value
    value = body.get("amount")
    if isinstance(value, _Float) or isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = value.text if isinstance(value, _Float) else value
        raise BadRequest(f'amount: {shown} is a JSON number; send a string like "12.34"')
    match = AMOUNT.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise BadRequest(f"amount: {value!r} is not an amount like 12.34")
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if cents <= 0:
        raise BadRequest("amount: must be more than 0.00")
    return cents


def account_id(value: Any, field: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"{field}: choose an account")
    return value


def main() -> int:
    host = os.environ.get("FLOWLET_BACKEND_HOST", "127.0.0.1")
    port = int(os.environ.get("FLOWLET_BACKEND_PORT", "8000"))
    create_schema()
    Handler.metrics = Metrics()
    server = ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"flowlet-backend listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
