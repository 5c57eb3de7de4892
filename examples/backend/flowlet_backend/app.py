"""Flowlet example backend: a tiny ledger service over PostgreSQL.

Endpoints:
  GET  /healthz                 200 when the database answers
  GET  /metrics                 Prometheus text format
  GET  /api/accounts            list accounts with balances
  POST /api/accounts            {"name": ...} -> new account
  POST /api/transactions        {"from": id|null, "to": id, "amount_cents": n}

Configuration comes from the environment: FLOWLET_DB_DSN (libpq connection string; the
password comes from PGPASSWORD/PGPASSFILE or FLOWLET_DB_PASSWORD, never the DSN in logs),
FLOWLET_BACKEND_HOST (default 127.0.0.1) and FLOWLET_BACKEND_PORT (default 8000).
"""

from __future__ import annotations

import json
import os
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

BALANCES = """
SELECT a.id, a.name,
       COALESCE((SELECT sum(amount_cents) FROM transactions WHERE to_account = a.id), 0)
     - COALESCE((SELECT sum(amount_cents) FROM transactions WHERE from_account = a.id), 0)
FROM accounts a ORDER BY a.id
"""

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
        data = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def _timed(self, route: str, fn: Any) -> None:
        start = time.perf_counter()
        self._status = 500
        try:
            fn()
        except (ValueError, KeyError, psycopg.errors.DataError) as exc:
            self._send(400, {"error": str(exc)})
        except psycopg.Error as exc:
            self._send(503, {"error": type(exc).__name__})
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
        self._send(200, [{"id": r[0], "name": r[1], "balance_cents": r[2]} for r in rows])

    def _create_account(self) -> None:
        name = str(self._body()["name"])
        with connect() as conn:
            row = conn.execute(
                "INSERT INTO accounts (name) VALUES (%s) RETURNING id", (name,)
            ).fetchone()
        assert row is not None  # nosec B101  # RETURNING always yields a row
        self._send(201, {"id": row[0], "name": name})

    def _create_transaction(self) -> None:
        body = self._body()
        amount = int(body["amount_cents"])
        with connect() as conn:
            row = conn.execute(
                "INSERT INTO transactions (from_account, to_account, amount_cents) "
                "VALUES (%s, %s, %s) RETURNING id",
                (body.get("from"), int(body["to"]), amount),
            ).fetchone()
        assert row is not None  # nosec B101  # RETURNING always yields a row
        self._send(201, {"id": row[0]})


def main() -> int:
    host = os.environ.get("FLOWLET_BACKEND_HOST", "127.0.0.1")
    port = int(os.environ.get("FLOWLET_BACKEND_PORT", "8000"))
    create_schema()
    Handler.metrics = Metrics()
    server = ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"flowlet-backend listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
