"""Database targets (``environments.<env>.databases.<name>``) and how their tools get a password.

The schema (:mod:`tasks.core.environments`) has already checked each key's type; here a target is
picked (``--database``, or the only one of the engine) and the keys a backup needs are required.
Passwords never touch a disk: :func:`credentials` puts the one from ``password_env`` into a
:class:`tasks.core.secrets.SecretFile` that only the database tool inherits (``/dev/fd/N``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tasks.backup.tls import pg_tls_env
from tasks.core.environments import Environment, effective_sslmode
from tasks.core.errors import ConfigError, OpsError


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
    sslmode: str = "prefer"  # resolved: never "auto" (tasks.core.environments.effective_sslmode)
    sslrootcert: str = ""

    @property
    def source(self) -> str:
        return f"environments.{self.environment}.databases.{self.key}"

    @property
    def label(self) -> str:
        return f"{self.environment}/{self.key}"


def resolve_target(env: Environment, key: str | None, engine: str | None) -> DatabaseTarget:
    """The target named ``--database`` (or the only one of ``engine``) in ``env``."""
    databases = env.databases
    if key is None:
        candidates = [k for k, v in databases.items() if engine is None or v.engine == engine]
        if len(candidates) > 1 and engine in candidates:
            candidates = [str(engine)]  # the target named after its engine is the default
        if len(candidates) != 1:
            what = f"{engine} " if engine else ""
            raise ConfigError(
                f"--database: environment {env.name!r} has {len(candidates)} {what}targets "
                f"({', '.join(sorted(candidates)) or 'none'}); name one with --database"
            )
        key = candidates[0]
    if key not in databases:
        valid = ", ".join(sorted(databases)) or "(none configured)"
        raise ConfigError(f"--database: {key!r} is not valid in {env.name}; valid: {valid}")
    raw: Any = databases[key]
    source = f"environments.{env.name}.databases.{key}"
    if engine is not None and raw.engine != engine:
        raise ConfigError(f"--database: target {key!r} is a {raw.engine} database, not {engine}")
    for required in ("host", "name", "user"):
        if not raw[required]:
            raise ConfigError(f"{source}.{required}: missing required key (set it in invoke.yaml)")
    return DatabaseTarget(
        environment=env.name,
        key=key,
        engine=raw.engine,
        host=raw.host,
        port=raw.port,
        name=raw.name,
        user=raw.user,
        password_env=raw.password_env,
        passfile=raw.passfile,
        option_file=raw.option_file,
        backup_host=raw.backup_host,
        sslmode=effective_sslmode(raw.sslmode, raw.host, raw.sslrootcert),
        sslrootcert=raw.sslrootcert,
    )


def targets_of(env: Environment, key: str | None) -> list[DatabaseTarget]:
    """``--database`` (one target) or every target of ``env`` (none is an error)."""
    if key is not None:
        return [resolve_target(env, key, None)]
    if not env.databases:
        raise ConfigError(f"environments.{env.name}.databases: no database targets configured")
    return [resolve_target(env, name, None) for name in sorted(env.databases)]


def password(target: DatabaseTarget) -> str:
    value = os.environ.get(target.password_env)
    if not value:
        raise OpsError(
            f"{target.source}.password_env: environment variable {target.password_env} "
            "is not set (it must hold the database password)"
        )
    return value


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(target: DatabaseTarget, secret: str) -> str:
    """A ``.pgpass`` line for ``target`` (any database: restores go to other databases)."""
    fields = (target.host, str(target.port), "*", target.user, secret)
    return ":".join(_pgpass_escape(f) if f != "*" else f for f in fields) + "\n"


def mysql_option_text(secret: str) -> str:
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    return f'[client]\npassword="{escaped}"\n'


@dataclass(frozen=True)
class Credentials:
    """How a database tool gets its password: ``env`` (``PGPASSFILE``) and ``argv``
    (``--defaults-extra-file``, first on the command line) name a file; ``fds`` are the
    descriptors the tool must inherit (the in-memory secret). Nothing here is the password."""

    env: dict[str, str]
    argv: tuple[str, ...]
    fds: tuple[int, ...]


NO_CREDENTIALS = Credentials({}, (), ())


@contextmanager
def credentials(target: DatabaseTarget) -> Iterator[Credentials]:
    """The target's :class:`Credentials` for as long as the block runs (secrets in memory).

    postgres: ``PGPASSFILE`` names an in-memory passfile written from ``password_env``, or the
    configured ``passfile``; ``PGSSLMODE`` / ``PGSSLROOTCERT`` carry the target's TLS policy
    (:mod:`tasks.backup.tls`). mysql: ``--defaults-extra-file`` the same way (``option_file``).
    """
    with _password_credentials(target) as creds:
        if target.engine != "postgres":
            yield creds
            return
        yield Credentials({**creds.env, **pg_tls_env(target)}, creds.argv, creds.fds)


@contextmanager
def _password_credentials(target: DatabaseTarget) -> Iterator[Credentials]:
    from tasks.core.secrets import SecretFile

    if target.password_env:
        text = (
            pgpass_line(target, password(target))
            if target.engine == "postgres"
            else mysql_option_text(password(target))
        )
        with SecretFile(text, name="flowlet-db-password") as secret:
            if target.engine == "postgres":
                yield Credentials({"PGPASSFILE": secret.path}, (), (secret.fd,))
            else:
                yield Credentials({}, (f"--defaults-extra-file={secret.path}",), (secret.fd,))
        return
    if target.engine == "postgres" and target.passfile:
        yield Credentials({"PGPASSFILE": os.path.expanduser(target.passfile)}, (), ())
    elif target.engine == "mysql" and target.option_file:
        path = os.path.expanduser(target.option_file)
        yield Credentials({}, (f"--defaults-extra-file={path}",), ())
    else:
        yield NO_CREDENTIALS


def remote_secret(target: DatabaseTarget) -> bytes | None:
    """What a ``--host`` backup sends on the channel's stdin: the password (postgres, given to
    pg_dump as ``PGPASSWORD``) or option-file text (mysql); None without ``password_env``."""
    if not target.password_env:
        return None
    value = password(target)
    text = value if target.engine == "postgres" else mysql_option_text(value)
    if "\0" in text:
        raise OpsError(f"{target.source}.password_env: the password contains a NUL byte")
    return text.encode("utf-8")
