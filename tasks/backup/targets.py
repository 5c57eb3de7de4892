"""Typed database targets (``environments.<env>.databases.<name>``) and backup settings.

Everything a backup needs from configuration is validated here, so that a bad key fails with
one line naming the key, the bad value and what is valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import OpsError

from tasks.core.environments import Environment

ENGINES = ("postgres", "mysql")
FORMATS = ("plain", "custom", "directory")
COMPRESSORS = ("gzip", "zstd", "none")


@dataclass(frozen=True)
class DatabaseTarget:
    """One database to back up, as configured for one environment."""

    environment: str
    key: str
    engine: str
    host: str
    port: int
    name: str
    user: str
    password_env: str = ""
    passfile: str = ""
    option_file: str = ""
    backup_host: str = ""

    @property
    def source(self) -> str:
        return f"environments.{self.environment}.databases.{self.key}"


def resolve_target(env: Environment, key: str | None, engine: str | None) -> DatabaseTarget:
    """The target named ``--database`` (or the only one of ``engine``) in ``env``."""
    databases = env.databases
    if key is None:
        candidates = [
            k for k, v in databases.items() if engine is None or v.get("engine") == engine
        ]
        if len(candidates) > 1 and engine in candidates:
            candidates = [engine]  # the target named after its engine is the default
        if len(candidates) != 1:
            what = f"{engine} " if engine else ""
            raise OpsError(
                f"--database: environment {env.name!r} has {len(candidates)} {what}targets "
                f"({', '.join(sorted(candidates)) or 'none'}); name one with --database"
            )
        key = candidates[0]
    if key not in databases:
        valid = ", ".join(sorted(databases)) or "(none configured)"
        raise OpsError(f"--database: unknown target {key!r} in {env.name}; valid: {valid}")
    raw: Mapping[str, Any] = databases[key]
    source = f"environments.{env.name}.databases.{key}"
    found = str(raw.get("engine") or "")
    if found not in ENGINES:
        raise OpsError(f"{source}.engine: {found!r} is not valid; valid: {', '.join(ENGINES)}")
    if engine is not None and found != engine:
        raise OpsError(f"--database: target {key!r} is a {found} database, not {engine}")
    for required in ("host", "name", "user"):
        if not raw.get(required):
            raise OpsError(f"{source}.{required}: missing required key (set it in invoke.yaml)")
    port = raw.get("port", 5432 if found == "postgres" else 3306)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise OpsError(f"{source}.port: {port!r} is not a valid port (1-65535)")
    sources = [k for k in ("password_env", "passfile", "option_file") if raw.get(k)]
    if len(sources) > 1:
        raise OpsError(f"{source}: set only one of password_env, passfile, option_file")
    if raw.get("option_file") and found != "mysql":
        raise OpsError(f"{source}.option_file: only for mysql targets; use passfile for postgres")
    if raw.get("passfile") and found != "postgres":
        raise OpsError(f"{source}.passfile: only for postgres targets; use option_file for mysql")
    return DatabaseTarget(
        environment=env.name,
        key=key,
        engine=found,
        host=str(raw["host"]),
        port=port,
        name=str(raw["name"]),
        user=str(raw["user"]),
        password_env=str(raw.get("password_env") or ""),
        passfile=str(raw.get("passfile") or ""),
        option_file=str(raw.get("option_file") or ""),
        backup_host=str(raw.get("backup_host") or ""),
    )


def _password(target: DatabaseTarget) -> str:
    value = os.environ.get(target.password_env)
    if not value:
        raise OpsError(
            f"{target.source}.password_env: environment variable {target.password_env} "
            "is not set (it must hold the database password)"
        )
    return value


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


def pgpass_line(target: DatabaseTarget, password: str) -> str:
    """A ``.pgpass`` line for ``target`` (any database: restores go to other databases)."""
    fields = (target.host, str(target.port), "*", target.user, password)
    return ":".join(_pgpass_escape(f) if f != "*" else f for f in fields) + "\n"


def mysql_option_text(target: DatabaseTarget, password: str) -> str:
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'[client]\npassword="{escaped}"\n'


@contextmanager
def credentials(
    target: DatabaseTarget, workdir: Path
) -> Iterator[tuple[dict[str, str], list[str]]]:
    """``(environment, extra argv)`` giving the client tools the password, never on argv.

    postgres: ``PGPASSFILE`` (the configured passfile, or a 0600 temp file written from
    ``password_env``). mysql: ``--defaults-extra-file`` (the configured option file or a 0600
    temp file). Temp files live in ``workdir`` (0700) and are removed on exit.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "MYSQL_PWD")}
    if target.password_env:
        env.pop(target.password_env, None)
    created: Path | None = None
    extra: list[str] = []
    try:
        if target.engine == "postgres":
            if target.password_env:
                created = workdir / "pgpass"
                _write_private(created, pgpass_line(target, _password(target)))
                env["PGPASSFILE"] = str(created)
            elif target.passfile:
                env["PGPASSFILE"] = os.path.expanduser(target.passfile)
        else:
            if target.password_env:
                created = workdir / "my.cnf"
                _write_private(created, mysql_option_text(target, _password(target)))
                extra = [f"--defaults-extra-file={created}"]
            elif target.option_file:
                extra = [f"--defaults-extra-file={os.path.expanduser(target.option_file)}"]
        yield env, extra
    finally:
        if created is not None:
            created.unlink(missing_ok=True)


@dataclass(frozen=True)
class BackupSettings:
    """The collection-level ``backup:`` keys, validated."""

    output_dir: Path
    format: str
    compress: str
    level: int
    jobs: int
    manifest: str
    encrypt: bool
    recipients: tuple[str, ...]
    identity: str
    remote_dir: str
    retention: Mapping[str, int]


def resolve_settings(raw: Mapping[str, Any], root: Path) -> BackupSettings:
    out = Path(os.path.expanduser(str(raw.get("output_dir") or "backups")))
    retention = dict(raw.get("retention") or {})
    for key in ("keep_last", "daily", "weekly"):
        value = retention.get(key, 0)
        if not isinstance(value, int) or value < 0:
            raise OpsError(f"backup.retention.{key}: {value!r} is not a non-negative integer")
        retention[key] = value
    recipients = raw.get("recipients") or []
    if isinstance(recipients, str):
        recipients = [recipients]
    return BackupSettings(
        output_dir=out if out.is_absolute() else root / out,
        format=str(raw.get("format") or "plain"),
        compress=str(raw.get("compress") or "gzip"),
        level=int(raw.get("level", 6)),
        jobs=int(raw.get("jobs", 2)),
        manifest=str(raw.get("manifest") or "manifest.jsonl"),
        encrypt=bool(raw.get("encrypt", False)),
        recipients=tuple(str(r) for r in recipients),
        identity=str(raw.get("identity") or ""),
        remote_dir=str(raw.get("remote_dir") or "/var/backups/flowlet"),
        retention=retention,
    )
