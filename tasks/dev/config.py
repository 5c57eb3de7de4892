"""Config keys of the local stack (``dev:``) and their resolution into a :class:`LocalStack`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoke import Context
from tasks.core.errors import OpsError

from tasks.dev.settings import DB_NAME
from tasks.core.environments import resolve_environment
from tasks.core.settings import project_root, resolve_path


@dataclass(frozen=True)
class Database:
    """The development database target (``environments.development.databases.<dev.database>``)."""

    host: str
    port: int
    name: str
    user: str
    password_env: str


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the stack: how to start it and how to tell it is ready."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    host: str
    port: int
    ready: str  # "postgres" | "http" | "port"
    health_url: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    user: str | None = None  # system user to run as (only when inv runs as root)


@dataclass(frozen=True)
class LocalStack:
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

    @property
    def run_dir(self) -> Path:
        return self.flowlet_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.flowlet_dir / "logs"

    @property
    def state_dir(self) -> Path:
        return self.flowlet_dir / "setup"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def names(self) -> list[str]:
        return [p.name for p in self.processes]

    def pg(self, binary: str) -> str:
        """Path of a PostgreSQL server binary (initdb, postgres, psql, pg_ctl)."""
        return os.path.join(self.pg_bin_dir, binary) if self.pg_bin_dir else binary


def find_postgres_bin_dir(configured: str) -> str:
    """``dev.postgres_bin_dir``, else the dir of ``initdb`` on PATH, else the newest Debian dir."""
    import shutil

    if configured:
        return configured
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
    except (KeyError, IndexError, ValueError) as exc:
        valid = ", ".join("{%s}" % k for k in sorted(variables))
        raise OpsError(f"{source}: cannot expand {value!r} ({exc}); placeholders: {valid}") from None


def _int(value: object, *, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise OpsError(f"{source}: {value!r} is not a port number (1-65535)")
    port = int(value)
    if not 0 < port < 65536:
        raise OpsError(f"{source}: {value!r} is not a port number (1-65535)")
    return port


def database_target(c: Context, dev: Mapping[str, Any]) -> Database:
    env = resolve_environment(c, "development")
    name = str(dev.get("database") or "")
    if name not in env.databases:
        valid = ", ".join(sorted(env.databases)) or "(none)"
        raise OpsError(f"dev.database: {name!r} is not a development database target; valid: {valid}")
    target = env.databases[name]
    prefix = f"environments.development.databases.{name}"
    for key in ("host", "port", "name", "user", "password_env"):
        if not target.get(key):
            raise OpsError(f"{prefix}.{key}: missing required key (set it in invoke.yaml)")
    return Database(
        host=str(target["host"]),
        port=_int(target["port"], source=f"{prefix}.port"),
        name=str(target["name"]),
        user=str(target["user"]),
        password_env=str(target["password_env"]),
    )


def load_stack(c: Context) -> LocalStack:
    """Resolve the ``dev`` config (and the development database target) into a LocalStack."""
    dev = c.config.get("dev") or {}
    root = project_root(c)
    flowlet_dir = resolve_path(
        root, str(dev["flowlet_dir"]), source="dev.flowlet_dir", must_exist=False
    )
    pg_dir = str(dev.get("postgres_dir") or "")
    pg_data = (
        resolve_path(root, pg_dir, source="dev.postgres_dir", must_exist=False)
        if pg_dir
        else flowlet_dir / "postgres"
    )
    as_root = os.geteuid() == 0
    pg_user = str(dev["postgres_user"]) if as_root else None
    if pg_user is not None:
        import pwd

        try:
            pwd.getpwnam(pg_user)
        except KeyError:
            raise OpsError(
                f"dev.postgres_user: system user {pg_user!r} does not exist (PostgreSQL refuses "
                "to run as root; install the postgresql package or set dev.postgres_user)"
            ) from None
    db = database_target(c, dev)
    bin_dir = find_postgres_bin_dir(str(dev.get("postgres_bin_dir") or ""))
    db_spec = ProcessSpec(
        name=DB_NAME,
        argv=(
            os.path.join(bin_dir, "postgres") if bin_dir else "postgres",
            *("-D", str(pg_data), "-p", str(db.port), "-h", db.host, "-k", str(pg_data)),
        ),
        cwd=pg_data,
        host=db.host,
        port=db.port,
        ready="postgres",
        user=pg_user,
    )
    raw_procs: Mapping[str, Any] = dev.get("processes") or {}
    ports = {
        f"{name}_port": _int(spec.get("port"), source=f"dev.processes.{name}.port")
        for name, spec in raw_procs.items()
    }
    common: dict[str, object] = {
        "python": sys.executable,
        "root": str(root),
        "db_host": db.host,
        "db_port": db.port,
        "db_name": db.name,
        "db_user": db.user,
        **ports,
    }
    specs = [db_spec]
    for name, raw in raw_procs.items():
        key = f"dev.processes.{name}"
        if name == DB_NAME:
            raise OpsError(f"{key}: the name {DB_NAME!r} is reserved for the database")
        host = str(raw.get("host") or "127.0.0.1")
        variables = {**common, "host": host, "port": ports[f"{name}_port"]}
        command = raw.get("command") or []
        if isinstance(command, str) or not command:
            raise OpsError(f"{key}.command: expected a non-empty list of arguments, got {command!r}")
        after = tuple(str(a) for a in raw.get("after") or ())
        health = str(raw.get("health_url") or "")
        specs.append(
            ProcessSpec(
                name=name,
                argv=tuple(expand(str(a), variables, source=f"{key}.command") for a in command),
                cwd=resolve_path(root, str(raw.get("cwd") or "."), source=f"{key}.cwd"),
                host=host,
                port=ports[f"{name}_port"],
                ready="http" if health else "port",
                health_url=expand(health, variables, source=f"{key}.health_url"),
                env={
                    str(k): expand(str(v), variables, source=f"{key}.env.{k}")
                    for k, v in (raw.get("env") or {}).items()
                },
                after=after,
            )
        )
    names = {s.name for s in specs}
    for spec in specs:
        for dep in spec.after:
            if dep not in names:
                raise OpsError(
                    f"dev.processes.{spec.name}.after: unknown process {dep!r}; "
                    f"valid: {', '.join(sorted(names))}"
                )
    return LocalStack(
        root=root,
        flowlet_dir=flowlet_dir,
        env_file=resolve_path(root, str(dev["env_file"]), source="dev.env_file", must_exist=False),
        pg_data=pg_data,
        pg_bin_dir=bin_dir,
        pg_user=pg_user,
        superuser=pg_user or _current_user(),
        database=db,
        processes=tuple(specs),
        ready_timeout=float(dev["ready_timeout"]),
        stop_grace=float(dev["stop_grace"]),
        log_lines=int(dev["log_lines"]),
    )


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
