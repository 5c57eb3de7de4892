"""The app Secret: its values, its digest, and applying it without a file on disk.

The values come from ``deploy.secret.env_file`` (a ``KEY=value`` file, mode 0600) or from the
environment variables ``deploy.secret.env_vars`` names. They never appear on argv, in output,
in ``--dry`` output or on disk: the env-file text goes to ``kubectl create secret generic
--from-env-file=/dev/stdin --dry-run=client -o yaml`` on its stdin, and the rendered YAML to
``kubectl apply --server-side --force-conflicts`` on its stdin (this toolkit owns the Secret:
fields someone changed with plain kubectl are taken back).

The digest of the Secret's data goes into the backend's pod template (``secretChecksum``): a
changed Secret rolls the pods, an unchanged one changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import ConfigError, OpsError


@dataclass(frozen=True)
class SecretSource:
    name: str
    env_file: Path | None
    env_vars: tuple[str, ...]

    def describe(self) -> str:
        if self.env_file is not None:
            return f"env file {self.env_file}"
        return f"environment variables {', '.join(self.env_vars)}"


def secret_source(secret: Mapping[str, Any], environment: str, root: Path) -> SecretSource:
    """``deploy.secret`` (validated by the schema) for ``environment``: where values come from."""
    raw_file = str(secret["env_file"] or "")
    if raw_file:
        source = "deploy.secret.env_file"
        path = Path(os.path.expanduser(raw_file.replace("{env}", environment)))
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise ConfigError(f"{source}: {str(path)!r} is not valid; valid: an existing file")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{source}: {path} is readable by group/others (mode {mode:04o}); "
                f"run chmod 600 {path}"
            )
        return SecretSource(name=secret["name"], env_file=path, env_vars=())
    if not secret["env_vars"]:
        raise ConfigError(
            "deploy.secret: set env_file or env_vars (where the Secret's values come from)"
        )
    return SecretSource(name=secret["name"], env_file=None, env_vars=tuple(secret["env_vars"]))


def env_content(source: SecretSource) -> str:
    """The ``KEY=value`` text kubectl reads on stdin (in memory only; never printed)."""
    if source.env_file is not None:
        try:
            return source.env_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"deploy.secret.env_file: cannot read {source.env_file}: {exc}"
            ) from None
    missing = [var for var in source.env_vars if not os.environ.get(var)]
    if missing:
        raise ConfigError(
            f"deploy.secret.env_vars: environment variable(s) not set: {', '.join(missing)}"
        )
    for var in source.env_vars:
        if "\n" in os.environ[var] or "\r" in os.environ[var]:
            raise ConfigError(
                f"{var}: multi-line values cannot go in an env file; use deploy.secret.env_file"
            )
    return "".join(f"{var}={os.environ[var]}\n" for var in source.env_vars)


def data_digest(data: Mapping[str, str]) -> str:
    """sha256 of a Secret's ``data`` (keys sorted, values as stored: base64)."""
    canonical = json.dumps(dict(sorted(data.items())), separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def data_of(text: str, *, what: str) -> dict[str, str]:
    """The ``data`` of a Secret as kubectl printed it (YAML or JSON)."""
    import yaml  # lazy: keep `inv --list` light

    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError:
        obj = None
    if not isinstance(obj, Mapping) or obj.get("kind") != "Secret":
        raise OpsError(f"{what}: kubectl did not print a Secret")
    data = obj.get("data") or {}
    if not isinstance(data, Mapping):
        raise OpsError(f"{what}: the Secret's data is not a mapping")
    return {str(k): str(v) for k, v in data.items()}
