"""The backend's database connection (FLOWLET_DB_DSN, password from FLOWLET_DB_PASSWORD)."""

from __future__ import annotations

import os
from typing import Any

import psycopg


def connect() -> psycopg.Connection[Any]:
    dsn = os.environ.get("FLOWLET_DB_DSN", "")
    password = os.environ.get("FLOWLET_DB_PASSWORD")
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": 5}
    if password:
        kwargs["password"] = password
    return psycopg.connect(dsn, **kwargs)
