"""The app Secret: created or updated from an env file or environment variables.

Values never appear on argv, in output or in ``--dry`` output: kubectl reads them from a file
(the configured env file, or a 0600 temporary file written from the environment and deleted
right after), renders the Secret client-side, and the YAML goes to ``kubectl apply`` on stdin.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke import Context
from tasks.core.errors import OpsError

from tasks.deploy.plan import apply_argv, secret_create_argv
from tasks.core.environments import validate_namespace
from tasks.core.settings import resolve_path
from tasks.core.runner import is_dry, run
from tasks.core.secrets import private_temp_file

# What --dry shows instead of the real temporary file (which --dry never creates).
DRY_ENV_FILE = os.path.join(tempfile.gettempdir(), "flowlet-secret-XXXXXXXX.env")


@dataclass(frozen=True)
class SecretSource:
    name: str
    env_file: Path | None
    env_vars: tuple[str, ...]

    def describe(self) -> str:
        if self.env_file is not None:
            return f"env file {self.env_file}"
        return f"environment variables {', '.join(self.env_vars)}"


def resolve_secret_source(
    settings: Mapping[str, Any], environment: str, root: Path
) -> SecretSource:
    """Read ``deploy.secret`` (name, env_file with an optional ``{env}``, env_vars)."""
    name = validate_namespace(str(settings.get("name") or ""), source="deploy.secret.name")
    raw_file = str(settings.get("env_file") or "")
    env_vars = settings.get("env_vars") or []
    if not isinstance(env_vars, (list, tuple)) or not all(isinstance(v, str) for v in env_vars):
        raise OpsError(f"deploy.secret.env_vars: {env_vars!r} is not a list of variable names")
    if raw_file:
        source = "deploy.secret.env_file"
        path = resolve_path(root, raw_file.replace("{env}", environment), source=source)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise OpsError(
                f"{source}: {path} is readable by group/others (mode {mode:04o}); "
                f"run chmod 600 {path}"
            )
        return SecretSource(name=name, env_file=path, env_vars=())
    if not env_vars:
        raise OpsError("deploy.secret: set env_file or env_vars (where the Secret's values come from)")
    return SecretSource(name=name, env_file=None, env_vars=tuple(env_vars))


@contextmanager
def env_file_for(source: SecretSource, *, dry: bool) -> Iterator[str]:
    """The env file kubectl reads: the configured one, or a 0600 temp file deleted afterwards."""
    if source.env_file is not None:
        yield str(source.env_file)
        return
    missing = [var for var in source.env_vars if not os.environ.get(var)]
    if missing:
        raise OpsError(f"deploy.secret.env_vars: environment variable(s) not set: {', '.join(missing)}")
    if dry:
        yield DRY_ENV_FILE
        return
    for var in source.env_vars:
        if "\n" in os.environ[var] or "\r" in os.environ[var]:
            raise OpsError(
                f"{var}: multi-line values cannot go in an env file; use deploy.secret.env_file"
            )
    content = "".join(f"{var}={os.environ[var]}\n" for var in source.env_vars)
    with private_temp_file(content, prefix="flowlet-secret-", suffix=".env") as path:
        yield path


def apply_secret(
    c: Context, context: str, namespace: str, source: SecretSource, field_manager: str
) -> None:
    """``kubectl create secret generic --from-env-file ... -o yaml`` piped to ``kubectl apply``."""
    with env_file_for(source, dry=is_dry(c)) as env_file:
        created = run(
            c, secret_create_argv(context, namespace, source.name, env_file), hide=True, warn=True
        )
        if created.exited != 0:  # stderr is not shown: it could quote the env file
            raise OpsError(
                f"kubectl create secret generic {source.name} failed (exit {created.exited}); "
                "check that the env file has KEY=value lines",
                code=created.exited,
            )
        applied = run(
            c,
            apply_argv(context, field_manager, namespace),
            in_stream=io.StringIO(created.stdout),
            hide=True,
            warn=True,
        )
        if applied.exited != 0:
            reason = (applied.stderr.strip().splitlines() or ["no error output"])[0]
            raise OpsError(
                f"kubectl apply of secret/{source.name} failed (exit {applied.exited}): {reason}",
                code=applied.exited,
            )
    done = "would be applied" if is_dry(c) else "applied"
    print(f"    secret/{source.name} {done} in {namespace} from {source.describe()}")
