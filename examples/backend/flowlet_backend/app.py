"""Flowlet example backend: a tiny ledger service over PostgreSQL.

Endpoints:
  GET  /healthz                 200 when the database answers, else 503
  GET  /metrics                 Prometheus text format
  GET  /api/accounts            [{"id", "name", "balance_cents", "balance"}]
  POST /api/accounts            {"name": ...} -> 201 the new account; 409 if the name is taken
  POST /api/transactions        {"from": id, "to": id, "amount": "12.34"} -> 201; 409 when the
                                amount is more than the balance of "from"; "from": null -> 400
  POST /api/deposits            {"to": id, "amount": "12.34"} -> 201: money from outside the
                                ledger, allowed by DepositPolicy (below): 401/403 otherwise

Money is never a float: amounts are stored as integer minor units (cents, BIGINT), and the API
carries them as strings ("balance_cents": "1234", "balance": "12.34"), so no JSON parser on
the way rounds them. A request amount is a string like "12.34" (or an integer
"amount_cents"); a JSON number with a fraction is refused. Errors are JSON ``{"error": ...}``
with a 4xx status naming the field. A body needs a Content-Length of at most MAX_BODY bytes
(400 when it is not a number, 413 when larger, 411 for Transfer-Encoding); a client has
READ_TIMEOUT seconds to send its request. Balances and their concurrency: ledger.py.

Configuration comes from the environment: FLOWLET_DB_DSN (libpq connection string; the
password comes from PGPASSWORD/PGPASSFILE or FLOWLET_DB_PASSWORD, never the DSN in logs),
FLOWLET_BACKEND_HOST (default 127.0.0.1), FLOWLET_BACKEND_PORT (default 8000) and
FLOWLET_DEPOSIT_TOKEN (the bearer token deposits need; without it, deposits are open only on
a loopback host).

The schema is migrate.py's: at startup the backend checks the database's schema version and,
when it is behind, exits 2 with one line naming ``python -m flowlet_backend.migrate``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from . import ledger, migrate
from .db import connect
from .ledger import Refused, format_cents

AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?$")
CONTENT_LENGTH = re.compile(r"^[0-9]{1,19}$")
MAX_NAME = 100
MAX_BODY = 64 * 1024  # bytes: every request of this API is far smaller
READ_TIMEOUT = 30  # seconds a client may take to send its request

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


def schema_refusal() -> str | None:
    """Why this backend must not serve the database (its schema is behind), or None. The
    backend never changes the schema itself: ``python -m flowlet_backend.migrate`` does."""
    try:
        with connect() as conn:
            return migrate.behind(conn)
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        return f"cannot read the schema version: {lines[0] if lines else type(exc).__name__}"
    except (OSError, ValueError) as exc:  # the migrations directory
        return f"cannot read the migrations: {exc}"


@dataclass(frozen=True)
class DepositPolicy:
    """Who may deposit (POST /api/deposits: money from outside the ledger). With a token
    (FLOWLET_DEPOSIT_TOKEN), whoever sends ``Authorization: Bearer TOKEN``; without one, any
    client of a backend that listens on loopback only (the dev stack), and nobody otherwise."""

    token: str
    loopback: bool

    @classmethod
    def from_environment(cls, host: str) -> DepositPolicy:
        return cls(token=os.environ.get("FLOWLET_DEPOSIT_TOKEN", ""), loopback=is_loopback(host))

    def refusal(self, authorization: str | None) -> Refused | None:
        if self.token:
            scheme, _, given = (authorization or "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return None
            return Refused("deposits need the header Authorization: Bearer <deposit token>", 401)
        if self.loopback:
            return None
        return Refused(
            "deposits are disabled: this backend listens beyond loopback and has no "
            "FLOWLET_DEPOSIT_TOKEN",
            403,
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def content_length(values: list[str], transfer_encoding: str | None) -> int:
    """The body's length in bytes from the request's headers, or Refused (400/411/413)."""
    if transfer_encoding is not None:
        raise Refused(
            "send the body with a Content-Length (Transfer-Encoding is not accepted)", 411
        )
    if len({v.strip() for v in values}) > 1:
        raise Refused("Content-Length: given more than once with different values")
    text = values[0].strip() if values else "0"
    if not CONTENT_LENGTH.match(text):
        raise Refused(f"Content-Length: {text[:40]!r} is not a number of bytes")
    length = int(text)
    if length > MAX_BODY:
        raise Refused(f"the body is {length} bytes; at most {MAX_BODY} are accepted", 413)
    return length


class Handler(BaseHTTPRequestHandler):
    server_version = "flowlet-backend/0.1"
    timeout = READ_TIMEOUT  # a client that stops sending does not hold a thread for ever
    metrics: Metrics
    deposits: DepositPolicy

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stdout.write("%s %s\n" % (self.address_string(), format % args))
        sys.stdout.flush()

    def _send(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self._status = status

    def _body(self) -> dict[str, Any]:
        try:
            length = content_length(
                self.headers.get_all("Content-Length") or [], self.headers.get("Transfer-Encoding")
            )
            raw = self.rfile.read(length)
        except Refused:
            self.close_connection = True  # the unread body must not be taken for a request
            raise
        except OSError:
            self.close_connection = True
            raise Refused(f"the body did not arrive within {READ_TIMEOUT} s", 408) from None
        if len(raw) < length:
            self.close_connection = True
            raise Refused("the body ended before its Content-Length")
        try:
            data = json.loads(raw or b"{}", parse_float=_no_float)
        except ValueError as exc:
            raise Refused(f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise Refused("the body must be a JSON object")
        return data

    def _timed(self, route: str, fn: Any) -> None:
        start = time.perf_counter()
        self._status = 500
        try:
            fn()
        except Refused as exc:
            extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            self._send(exc.status, {"error": exc.message}, headers=extra)
        except psycopg.errors.UniqueViolation:
            self._send(409, {"error": "name: an account with this name exists already"})
        except psycopg.errors.ForeignKeyViolation:
            self._send(400, {"error": "no such account"})
        except psycopg.errors.CheckViolation:
            self._send(409, {"error": "amount: more than the balance"})
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
        elif self.path == "/api/deposits":
            self._timed("/api/deposits", self._create_deposit)
        else:
            self._timed("other", lambda: self._send(404, {"error": "not found"}))

    def _healthz(self) -> None:
        with connect() as conn:
            conn.execute("SELECT 1")
        self._send(200, {"status": "ok"})

    def _list_accounts(self) -> None:
        with connect() as conn:
            rows = ledger.balances(conn)
        self._send(200, [account_json(*row) for row in rows])

    def _create_account(self) -> None:
        name = self._body().get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
            raise Refused(f"name: give a name of 1 to {MAX_NAME} characters")
        with connect() as conn:
            row = conn.execute(
                "INSERT INTO accounts (name) VALUES (%s) RETURNING id", (name.strip(),)
            ).fetchone()
        assert row is not None  # nosec B101  # RETURNING always yields a row
        self._send(201, account_json(row[0], name.strip(), 0))

    def _create_transaction(self) -> None:
        body = self._body()
        if body.get("from") in (None, ""):
            raise Refused("from: choose the account to debit (a deposit is POST /api/deposits)")
        source = account_id(body.get("from"), "from")
        cents = parse_amount(body)
        to = account_id(body.get("to"), "to")
        if source == to:
            raise Refused("to: must differ from from")
        with connect() as conn:
            entry = ledger.transfer(conn, source, to, cents)
        self._send(201, entry_json(entry, cents))

    def _create_deposit(self) -> None:
        refused = self.deposits.refusal(self.headers.get("Authorization"))
        if refused is not None:
            self.close_connection = True  # its body stays unread
            raise refused
        body = self._body()
        if body.get("from") not in (None, ""):
            raise Refused("from: a deposit has no source account (a transfer is /api/transactions)")
        cents = parse_amount(body)
        to = account_id(body.get("to"), "to")
        with connect() as conn:
            entry = ledger.deposit(conn, to, cents)
        self._send(201, entry_json(entry, cents))


class _Float:
    def __init__(self, text: str) -> None:
        self.text = text


def _no_float(text: str) -> _Float:
    return _Float(text)


def account_json(ident: int, name: str, cents: int) -> dict[str, Any]:
    return {"id": ident, "name": name, "balance_cents": str(cents), "balance": format_cents(cents)}


def entry_json(ident: int, cents: int) -> dict[str, Any]:
    return {"id": ident, "amount_cents": str(cents), "amount": format_cents(cents)}


def parse_amount(body: dict[str, Any]) -> int:
    """The positive amount in cents: "amount" as a string like "12.34", or integer cents."""
    if "amount_cents" in body:
        value = body["amount_cents"]
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise Refused("amount_cents: give a positive whole number of cents")
        return value
    value = body.get("amount")
    if isinstance(value, _Float) or isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = value.text if isinstance(value, _Float) else value
        raise Refused(f'amount: {shown} is a JSON number; send a string like "12.34"')
    match = AMOUNT.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise Refused(f"amount: {value!r} is not an amount like 12.34")
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if cents <= 0:
        raise Refused("amount: must be more than 0.00")
    return cents


def account_id(value: Any, field: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Refused(f"{field}: choose an account")
    return value


class Server(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 resets connections that arrive together
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client went away: one line
            print(f"{client_address[0]} closed the connection early", flush=True)
            return
        super().handle_error(request, client_address)


def main() -> int:
    host = os.environ.get("FLOWLET_BACKEND_HOST", "127.0.0.1")
    port = int(os.environ.get("FLOWLET_BACKEND_PORT", "8000"))
    refusal = schema_refusal()
    if refusal is not None:
        print(f"flowlet-backend: {refusal}", file=sys.stderr, flush=True)
        return 2
    Handler.metrics = Metrics()
    Handler.deposits = DepositPolicy.from_environment(host)
    server = Server((host, port), Handler)
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
