"""The ``dev`` config key: the local stack (database, backend, frontend) and its supervisor.

Relative paths are relative to the project root. Strings in process commands, env values and
health URLs may use ``{python} {root} {host} {port} {db_host} {db_port} {db_name} {db_user}``
and ``{<process>_port}``. A process of ``kind: oneshot`` (``migrate``: the example's schema
migrations) runs to completion: those naming it in ``after`` start once it exited 0, and a
failure stops ``dev.start``. Each process receives only the ``.env.local`` keys listed in its
``env_file_keys`` (least privilege: the frontend gets none of the database secrets).
"""

from __future__ import annotations

from typing import Any

from tasks.core.errors import ConfigError
from tasks.core.settings import (
    ENV_NAME,
    Choice,
    EnvName,
    FilePath,
    Float,
    Int,
    List,
    Map,
    Port,
    Section,
    Str,
)

DB_NAME = "db"
HOST = r"^[A-Za-z0-9_.:-]+$"
PROCESS_NAME = r"^[a-z][a-z0-9_-]{0,30}$"
PROCESS_DESC = "a process name (lowercase letters, digits, '-', '_'; at most 31 characters)"
RESTART_POLICIES = ("no", "on-failure", "always")
KINDS = ("service", "oneshot")


class RestartPolicy(Choice):
    """``no``, ``on-failure`` or ``always`` (YAML reads an unquoted ``no`` as false: so do we)."""

    __slots__ = ()

    def check(self, value: Any, where: Any) -> str:
        return super().check("no" if value is False else value, where)


PROCESS = Section(
    {
        "command": List([], Str(empty=False), "argv (placeholders expanded)", min_items=1),
        "cwd": FilePath(".", "working directory (relative to the project root)", kind="dir"),
        "host": Str("127.0.0.1", "where it listens", pattern=HOST, desc="a host name or address"),
        "port": Port(8000, "where it listens"),
        "health_url": Str(
            "",
            "healthy on HTTP 200 here (empty: healthy when the port is open)",
            pattern=r"^(https?://\S+)?$",
            desc="an http:// or https:// URL, or empty",
        ),
        "after": List(
            [],
            Str(pattern=PROCESS_NAME, desc=PROCESS_DESC),
            "processes that must be ready (a oneshot: have exited 0) before this one starts",
        ),
        "env": Map(
            Str(),
            help="environment variables on top of inv's (placeholders expanded)",
            key_pattern=ENV_NAME,
            key_desc="an environment variable name",
        ),
        "env_file_keys": List(
            [], EnvName(empty=False), "keys of dev.env_file this process receives (only these)"
        ),
        "restart": RestartPolicy("no", RESTART_POLICIES, "when it exits: no, on-failure or always"),
        "max_restarts": Int(3, "restarts in a row before giving up", minimum=0, maximum=1000),
        "backoff": Float(1.0, "seconds before the first restart (doubles, at most 30)", above=0),
        "kind": Choice(
            "service",
            KINDS,
            "service (keeps running, ready by its health check) or oneshot (must exit 0; "
            "its host, port and health_url are not used)",
        ),
    },
    "a process of the stack",
)


def _after_graph(processes: dict[str, Any]) -> None:
    """Every ``after`` names a known process and there is no cycle."""
    names = {DB_NAME, *processes}
    for name, spec in processes.items():
        if name == DB_NAME:
            raise ConfigError(
                f"dev.processes.{name}: the name {DB_NAME!r} is reserved for the database"
            )
        for dep in spec.after:
            if dep not in names:
                valid = ", ".join(sorted(names))
                raise ConfigError(
                    f"dev.processes.{name}.after: unknown process {dep!r}; valid: {valid}"
                )
    for start in processes:
        path = [start]
        stack = [(start, iter(processes[start].after))]
        while stack:
            node, deps = stack[-1]
            dep = next(deps, None)
            if dep is None:
                stack.pop()
                path.pop()
                continue
            if dep == start:
                cycle = " -> ".join([*path, dep])
                raise ConfigError(f"dev.processes.{start}.after: a cycle ({cycle})")
            if dep in processes and dep not in path:
                path.append(dep)
                stack.append((dep, iter(processes[dep].after)))


def _check_dev(settings: Any, where: Any) -> None:
    _after_graph(dict(settings.processes))
    for name, spec in settings.processes.items():
        if spec.kind == "oneshot" and spec.restart == "always":
            raise ConfigError(
                f"dev.processes.{name}.restart: 'always' would run the oneshot {name} again "
                "after each success; valid for kind oneshot: no, on-failure"
            )


SCHEMA = Section(
    {
        "flowlet_dir": FilePath(".flowlet", "state: postgres/, logs/, run/, setup/", kind="dir"),
        "env_file": FilePath(".env.local", "KEY=VALUE file for the processes", kind="file"),
        "database": Str(
            "postgres",
            "environments.development.databases target of the stack",
            pattern=r"^[A-Za-z0-9_.-]+$",
            desc="a database target name",
        ),
        "postgres_dir": FilePath(
            "", "data directory (default <flowlet_dir>/postgres)", kind="dir", empty=True
        ),
        "postgres_bin_dir": FilePath(
            "", "PostgreSQL binaries (default: PATH)", kind="dir", empty=True
        ),
        "postgres_user": Str(
            "postgres",
            "system user running the server as root",
            pattern=r"^[a-z_][a-z0-9_-]*\$?$",
            desc="a system user name",
        ),
        "ready_timeout": Float(30.0, "seconds each process has to become ready", above=0),
        "stop_grace": Float(10.0, "seconds between the stop signal and SIGKILL", above=0),
        "log_lines": Int(20, "lines shown by dev.logs and on a failed start", minimum=1),
        "log_max_bytes": Int(
            10_485_760, "a log is rotated when it reaches this size (bytes)", minimum=4096
        ),
        "log_keep": Int(3, "rotated logs kept (NAME.log.1 ...)", minimum=0, maximum=50),
        "processes": Map(
            PROCESS,
            {
                "migrate": {
                    **PROCESS.defaults(),
                    "kind": "oneshot",
                    "command": ["{python}", "-m", "flowlet_backend.migrate"],
                    "cwd": "examples/backend",
                    "after": [DB_NAME],
                    "env": {
                        "FLOWLET_DB_DSN": (
                            "host={db_host} port={db_port} dbname={db_name} user={db_user}"
                        ),
                    },
                    "env_file_keys": ["FLOWLET_DB_PASSWORD"],
                },
                "backend": {
                    **PROCESS.defaults(),
                    "command": ["{python}", "-m", "flowlet_backend.app"],
                    "cwd": "examples/backend",
                    "port": 8000,
                    "health_url": "http://{host}:{port}/healthz",
                    "after": [DB_NAME, "migrate"],
                    "env": {
                        "FLOWLET_BACKEND_HOST": "{host}",
                        "FLOWLET_BACKEND_PORT": "{port}",
                        "FLOWLET_DB_DSN": (
                            "host={db_host} port={db_port} dbname={db_name} user={db_user}"
                        ),
                    },
                    "env_file_keys": [
                        "FLOWLET_DB_PASSWORD",
                        "FLOWLET_SESSION_SECRET",
                        "FLOWLET_LOG_LEVEL",
                    ],
                },
                "frontend": {
                    **PROCESS.defaults(),
                    "command": ["node", "server.js"],
                    "cwd": "examples/frontend",
                    "port": 3000,
                    "health_url": "http://{host}:{port}/healthz",
                    "after": [],
                    "env": {
                        "FLOWLET_FRONTEND_HOST": "{host}",
                        "FLOWLET_FRONTEND_PORT": "{port}",
                        "FLOWLET_BACKEND_URL": "http://127.0.0.1:{backend_port}",
                    },
                    "env_file_keys": ["FLOWLET_LOG_LEVEL"],
                },
            },
            "the processes besides the database, by name",
            key_pattern=PROCESS_NAME,
            key_desc=PROCESS_DESC,
        ),
    },
    check_all=_check_dev,
)
