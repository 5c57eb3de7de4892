"""The ledger's money movements, over one psycopg connection (its schema: ``migrations/``,
applied by ``python -m flowlet_backend.migrate``).

Each account carries its balance (``accounts.balance_cents``); every movement changes the
balances and inserts its ledger entry (``transactions``) in one database transaction. A debit is
one guarded statement, ``UPDATE accounts SET balance_cents = balance_cents - x WHERE id = %s AND
balance_cents >= x``: PostgreSQL re-checks the condition on the newest row version after any lock
wait, so of two concurrent transfers of the whole balance exactly one debits and the other finds
the balance too small (reading the balance first and writing later lets both pass under READ
COMMITTED). A CHECK keeps the column from ever going below zero.

All SQL is constant text; values travel as parameters.
"""

from __future__ import annotations

from typing import Any

import psycopg

NON_NEGATIVE = "accounts_balance_not_negative"
HAS_NON_NEGATIVE = (
    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass('accounts') "
    "AND conname = %s)"
)
LOCK_BOTH = "SELECT id, balance_cents FROM accounts WHERE id IN (%s, %s) ORDER BY id FOR UPDATE"
DEBIT = (
    "UPDATE accounts SET balance_cents = balance_cents - %(cents)s "
    "WHERE id = %(id)s AND balance_cents >= %(cents)s RETURNING balance_cents"
)
CREDIT = (
    "UPDATE accounts SET balance_cents = balance_cents + %(cents)s WHERE id = %(id)s RETURNING id"
)
ENTRY = (
    "INSERT INTO transactions (from_account, to_account, amount_cents) "
    "VALUES (%s, %s, %s) RETURNING id"
)
ADD_NON_NEGATIVE = f"ALTER TABLE accounts ADD CONSTRAINT {NON_NEGATIVE} CHECK (balance_cents >= 0)"
BALANCES = "SELECT id, name, balance_cents FROM accounts ORDER BY id"


class Refused(Exception):
    """A movement the ledger refuses; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def format_cents(cents: int) -> str:
    """1234 -> "12.34", -5 -> "-0.05" (exact: integer arithmetic only)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def non_negative(conn: psycopg.Connection[Any]) -> str | None:
    """Add the CHECK that keeps balances at or above zero (run by the migrate command, under
    its lock). While accounts have a negative balance (recorded before the balance column),
    it is not added: a warning naming them is returned, and the next migrate tries again;
    those accounts cannot be debited meanwhile (the debit's own condition)."""
    if conn.execute(HAS_NON_NEGATIVE, (NON_NEGATIVE,)).fetchone() == (True,):
        return None
    rows = conn.execute("SELECT id FROM accounts WHERE balance_cents < 0 ORDER BY id").fetchall()
    if rows:
        return (
            f"accounts {', '.join(str(r[0]) for r in rows)} have a negative balance (recorded "
            f"before the balance column): {NON_NEGATIVE} is added once they are corrected; "
            "they cannot be debited meanwhile"
        )
    conn.execute(ADD_NON_NEGATIVE)
    return None


def balances(conn: psycopg.Connection[Any]) -> list[tuple[int, str, int]]:
    return [(int(r[0]), str(r[1]), int(r[2])) for r in conn.execute(BALANCES).fetchall()]


def transfer(conn: psycopg.Connection[Any], source: int, to: int, cents: int) -> int:
    """Move ``cents`` from ``source`` to ``to``; the new entry's id. Both rows are locked in id
    order first (two opposite transfers cannot deadlock); the debit's own condition decides."""
    with conn.transaction():
        locked = dict(conn.execute(LOCK_BOTH, (source, to)).fetchall())
        if source not in locked:
            raise Refused("from: no such account")
        if to not in locked:
            raise Refused("to: no such account")
        if conn.execute(DEBIT, {"cents": cents, "id": source}).fetchone() is None:
            raise Refused(
                f"amount: {format_cents(cents)} is more than the balance of account "
                f"{source} ({format_cents(int(locked[source]))})",
                status=409,
            )
        conn.execute(CREDIT, {"cents": cents, "id": to})
        return _entry(conn, source, to, cents)


def deposit(conn: psycopg.Connection[Any], to: int, cents: int) -> int:
    """Add ``cents`` to ``to`` from outside the ledger (an entry with no source account)."""
    with conn.transaction():
        if conn.execute(CREDIT, {"cents": cents, "id": to}).fetchone() is None:
            raise Refused("to: no such account")
        return _entry(conn, None, to, cents)


def _entry(conn: psycopg.Connection[Any], source: int | None, to: int, cents: int) -> int:
    row = conn.execute(ENTRY, (source, to, cents)).fetchone()
    assert row is not None  # nosec B101  # RETURNING always yields a row
    return int(row[0])
