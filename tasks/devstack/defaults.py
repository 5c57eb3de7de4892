"""Defaults of the ``dev`` config key (kept import-free: ``inv --list`` loads it every time)."""

from __future__ import annotations

import copy
from typing import Any

DB_NAME = "db"

# Defaults of the ``dev`` key. Relative paths are relative to the project root (invoke.yaml's
# directory). Strings in process commands/env/health URLs may use {python} {root} {host}
# {port} {db_host} {db_port} {db_name} {db_user} and {<process>_port}.
DEV_DEFAULTS: dict[str, Any] = {
    "flowlet_dir": ".flowlet",
    "env_file": ".env.local",
    "database": "postgres",
    "postgres_dir": "",
    "postgres_bin_dir": "",
    "postgres_user": "postgres",
    "ready_timeout": 30.0,
    "stop_grace": 10.0,
    "log_lines": 20,
    "processes": {
        "backend": {
            "command": ["{python}", "-m", "flowlet_backend.app"],
            "cwd": "examples/backend",
            "host": "127.0.0.1",
            "port": 8000,
            "health_url": "http://{host}:{port}/healthz",
            "after": [DB_NAME],
            "env": {
                "FLOWLET_BACKEND_HOST": "{host}",
                "FLOWLET_BACKEND_PORT": "{port}",
                "FLOWLET_DB_DSN": "host={db_host} port={db_port} dbname={db_name} user={db_user}",
            },
        },
        "frontend": {
            "command": ["node", "server.js"],
            "cwd": "examples/frontend",
            "host": "127.0.0.1",
            "port": 3000,
            "health_url": "http://{host}:{port}/healthz",
            "after": [],
            "env": {
                "FLOWLET_FRONTEND_HOST": "{host}",
                "FLOWLET_FRONTEND_PORT": "{port}",
                "FLOWLET_BACKEND_URL": "http://127.0.0.1:{backend_port}",
            },
        },
    },
}


def dev_defaults() -> dict[str, Any]:
    """A fresh copy of the ``dev`` defaults (setup declares them too: it builds the stack)."""
    return copy.deepcopy(DEV_DEFAULTS)
