"""The ``dev`` config key: the local stack (database, backend, frontend).

Relative paths are relative to the project root. Strings in process commands, env values and
health URLs may use ``{python} {root} {host} {port} {db_host} {db_port} {db_name} {db_user}``
and ``{<process>_port}``.
"""

from __future__ import annotations

from tasks.core.settings import Float, FilePath, Int, List, Map, Port, Section, Str

DB_NAME = "db"
HOST = r"^[A-Za-z0-9_.:-]+$"
PROCESS_NAME = r"^[a-z][a-z0-9_-]*$"

PROCESS = Section(
    {
        "command": List([], Str(empty=False), "argv (placeholders expanded)", min_items=1),
        "cwd": Str(".", "working directory (relative to the project root)", empty=False),
        "host": Str("127.0.0.1", "where it listens", pattern=HOST, desc="a host name or address"),
        "port": Port(8000, "where it listens"),
        "health_url": Str("", "ready on HTTP 200 here (empty: ready when the port is open)"),
        "after": List([], Str(empty=False), "processes that must be ready before this one"),
        "env": Map(Str(), help="environment on top of inv's and .env.local"),
    },
    "a process of the stack",
)

SCHEMA = Section(
    {
        "flowlet_dir": FilePath(".flowlet", "state: postgres/, logs/, run/, setup/", kind="dir"),
        "env_file": FilePath(".env.local", "KEY=VALUE file for the processes", kind="file"),
        "database": Str(
            "postgres", "environments.development.databases target of the stack", empty=False
        ),
        "postgres_dir": FilePath("", "data directory (default <flowlet_dir>/postgres)", kind="dir", empty=True),
        "postgres_bin_dir": FilePath("", "PostgreSQL binaries (default: PATH)", kind="dir", empty=True),
        "postgres_user": Str("postgres", "system user running the server as root", empty=False),
        "ready_timeout": Float(30.0, "seconds each process has to become ready", above=0),
        "stop_grace": Float(10.0, "seconds between SIGTERM and SIGKILL", above=0),
        "log_lines": Int(20, "lines shown by dev.logs and on a failed start", minimum=1),
        "processes": Map(
            PROCESS,
            {
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
                        "FLOWLET_DB_DSN": (
                            "host={db_host} port={db_port} dbname={db_name} user={db_user}"
                        ),
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
            "the processes besides the database, by name",
            key_pattern=PROCESS_NAME,
            key_desc="a process name (lowercase letters, digits, '-', '_')",
        ),
    }
)
