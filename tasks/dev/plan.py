"""The local stack as a plan: validated settings + the development environment -> :class:`Stack`.

Pure apart from two look-ups of the machine (the PostgreSQL binaries, the ``postgres`` system
user when inv runs as root): which processes there are, their argv, working directory,
readiness check, environment (only the ``.env.local`` keys each is configured to receive),
restart policy, and the order they start in (each after the processes it names in ``after``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.errors import ConfigError, OpsError
from tasks.dev.settings import DB_NAME


@dataclass(frozen=True)
class Database:
    """The development database target (``environments.development.databases.<dev.database>``)."""

    host: str
    port: int
    name: str
    user: str
    password_env: str
    key: str  # its config key, for messages


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the stack: how to start it, tell it is healthy, and stop it."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    host: str
    port: int
    ready: str  # "postgres" | "http" | "port" | "exit0" (a oneshot: exited with code 0)
    health_url: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    env_file_keys: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    user: str | None = None  # system user to run as (only when inv runs as root)
    restart: str = "no"
    max_restarts: int = 0
    backoff: float = 1.0
    stop_signal: int = signal.SIGTERM  # PostgreSQL: SIGINT, its fast shutdown

    @property
    def port_key(self) -> str:
        return f"dev.processes.{self.name}.port"

    @property
    def oneshot(self) -> bool:
        return self.ready == "exit0"


@dataclass(frozen=True)
class Stack:
    root: Path
    flowlet_dir: Path
    env_file: Path
    pg_data: Path
    pg_bin_dir: str
    pg_user: str | None
    superuser: str
    database: Database
    processes: tuple[ProcessSpec, ...]
    ready_timeout: float
    stop_grace: float
    log_lines: int
    log_max_bytes: int
    log_keep: int

    @property
    def run_dir(self) -> Path:
        return self.flowlet_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.flowlet_dir / "logs"

    @property
    def state_dir(self) -> Path:
        return self.flowlet_dir / "setup"

    @property
    def lock_path(self) -> Path:
        return self.run_dir / "supervisor.lock"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def names(self) -> list[str]:
        return [p.name for p in self.processes]

    def spec(self, name: str) -> ProcessSpec:
        return next(p for p in self.processes if p.name == name)

    def pg(self, binary: str) -> str:
        """Path of a PostgreSQL server binary (initdb, postgres, psql)."""
        return os.path.join(self.pg_bin_dir, binary) if self.pg_bin_dir else binary

    def port_key(self, spec: ProcessSpec) -> str:
        return f"{self.database.key}.port" if spec.name == DB_NAME else spec.port_key


def find_postgres_bin_dir(configured: Path | None) -> str:
    """``dev.postgres_bin_dir``, else the dir of ``initdb`` on PATH, else the newest Debian dir."""
    import shutil

    if configured is not None:
        return str(configured)
    initdb = shutil.which("initdb")
    if initdb:
        return str(Path(initdb).resolve().parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return str(versions[-1].parent) if versions else ""


def expand(value: str, variables: Mapping[str, object], *, source: str) -> str:
    """``value.format(**variables)``; an unknown placeholder fails naming the config key."""
    try:
        return value.format(**variables)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        valid = ", ".join("{%s}" % k for k in sorted(variables))
        raise ConfigError(
            f"{source}: cannot expand {value!r} ({type(exc).__name__}: {exc}); "
            f"placeholders: {valid}"
        ) from None


def database_target(dev: Any, databases: Mapping[str, Any]) -> Database:
    name = dev.database
    if name not in databases:
        valid = ", ".join(sorted(databases)) or "(none)"
        raise ConfigError(
            f"dev.database: {name!r} is not a development database target; valid: {valid}"
        )
    target = databases[name]
    key = f"environments.development.databases.{name}"
    if target.engine != "postgres":
        raise ConfigError(f"{key}.engine: {target.engine!r}: the local stack runs PostgreSQL")
    for item in ("host", "name", "user", "password_env"):
        if not target[item]:
            raise ConfigError(f"{key}.{item}: missing required key (set it in invoke.yaml)")
    return Database(
        host=target.host,
        port=target.port,
        name=target.name,
        user=target.user,
        password_env=target.password_env,
        key=key,
    )


def build_stack(
    dev: Any,
    databases: Mapping[str, Any],
    *,
    root: Path,
    python: str,
    pg_user: str | None,
    current_user: str,
    pg_bin_dir: str,
) -> Stack:
    """The :class:`Stack` of validated ``dev`` settings (pure: the look-ups are arguments)."""
    flowlet_dir: Path = dev.flowlet_dir
    pg_data: Path = dev.postgres_dir or flowlet_dir / "postgres"
    db = database_target(dev, databases)
    db_spec = ProcessSpec(
        name=DB_NAME,
        argv=(
            os.path.join(pg_bin_dir, "postgres") if pg_bin_dir else "postgres",
            *("-D", str(pg_data), "-p", str(db.port), "-h", db.host, "-k", str(pg_data)),
        ),
        cwd=pg_data,
        host=db.host,
        port=db.port,
        ready="postgres",
        user=pg_user,
        stop_signal=signal.SIGINT,
    )
    processes: Mapping[str, Any] = dev.processes
    common: dict[str, object] = {
        "python": python,
        "root": str(root),
        "db_host": db.host,
        "db_port": db.port,
        "db_name": db.name,
        "db_user": db.user,
        **{f"{name}_port": spec.port for name, spec in processes.items()},
    }
    specs = [db_spec]
    for name, raw in processes.items():
        key = f"dev.processes.{name}"
        variables = {**common, "host": raw.host, "port": raw.port}
        health = expand(raw.health_url, variables, source=f"{key}.health_url")
        health = "" if raw.kind == "oneshot" else health
        specs.append(
            ProcessSpec(
                name=name,
                argv=tuple(expand(a, variables, source=f"{key}.command") for a in raw.command),
                cwd=raw.cwd,
                host=raw.host,
                port=raw.port,
                ready="exit0" if raw.kind == "oneshot" else "http" if health else "port",
                health_url=health,
                env={k: expand(v, variables, source=f"{key}.env.{k}") for k, v in raw.env.items()},
                env_file_keys=tuple(raw.env_file_keys),
                after=tuple(raw.after),
                restart=raw.restart,
                max_restarts=raw.max_restarts,
                backoff=raw.backoff,
            )
        )
    return Stack(
        root=root,
        flowlet_dir=flowlet_dir,
        env_file=dev.env_file,
        pg_data=pg_data,
        pg_bin_dir=pg_bin_dir,
        pg_user=pg_user,
        superuser=pg_user or current_user,
        database=db,
        processes=tuple(specs),
        ready_timeout=dev.ready_timeout,
        stop_grace=dev.stop_grace,
        log_lines=dev.log_lines,
        log_max_bytes=dev.log_max_bytes,
        log_keep=dev.log_keep,
    )


def load_stack(c: Any, *, name: str | None = None) -> Stack:
    """The stack of the current config (``dev`` settings + the development environment's
    databases); ``name`` (a ``--name`` flag) must name one of its processes."""
    import pwd
    import sys

    from tasks.core.settings import load, project_root

    dev = load(c, "dev")
    valid = [DB_NAME, *dev.processes]
    if name is not None and name not in valid:
        raise ConfigError(f"--name: {name!r} is not valid; valid: {', '.join(valid)}")
    environments = load(c, "environments")
    if "development" not in environments:
        raise ConfigError("environments.development: missing (the local stack's database)")
    databases = environments["development"].databases
    pg_user = dev.postgres_user if os.geteuid() == 0 else None
    if pg_user is not None:
        try:
            pwd.getpwnam(pg_user)
        except KeyError:
            raise ConfigError(
                f"dev.postgres_user: system user {pg_user!r} does not exist (PostgreSQL refuses "
                "to run as root; install the postgresql package or set dev.postgres_user)"
            ) from None
    return build_stack(
        dev,
        databases,
        root=project_root(c),
        python=sys.executable,
        pg_user=pg_user,
        current_user=pwd.getpwuid(os.geteuid()).pw_name,
        pg_bin_dir=find_postgres_bin_dir(dev.postgres_bin_dir),
    )


def process_env(
    spec: ProcessSpec, dotenv: Mapping[str, str], base: Mapping[str, str], env_file: Path
) -> dict[str, str]:
    """The whole environment of ``spec``: ``base`` (inv's, secrets removed), the ``.env.local``
    keys it is configured to receive (only those), then its own ``env``."""
    env = dict(base)
    for key in spec.env_file_keys:
        if key not in dotenv:
            raise OpsError(
                f"dev.processes.{spec.name}.env_file_keys: {key} is not set in {env_file}; "
                "run inv setup --env development, or remove it from the list"
            )
        env[key] = dotenv[key]
    env.update(spec.env)
    return env


def readiness(spec: ProcessSpec) -> str:
    if spec.oneshot:
        return "its exit with code 0"
    if spec.ready == "http":
        return f"HTTP 200 from {spec.health_url}"
    if spec.ready == "postgres":
        return f"PostgreSQL accepting connections on {spec.host}:{spec.port}"
    return f"port {spec.host}:{spec.port} open"


def where(spec: ProcessSpec) -> str:
    return spec.health_url or f"{spec.host}:{spec.port}"
