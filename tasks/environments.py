"""Resolve ``--env`` / ``--namespace`` into a typed, validated :class:`Environment`.

Every task that acts on an environment goes through :func:`resolve_environment`, so a bad
flag or config key fails the same way everywhere: one line naming the flag or key, the bad
value and what is valid, exit code 1, no traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoke import Context
from invoke.exceptions import Exit

from tasks.envdefaults import (  # noqa: F401 (re-exported: the documented API)
    ENVIRONMENT_DEFAULTS,
    ENVIRONMENT_NAMES,
    config_defaults,
)

# DNS-1123 label: what Kubernetes accepts as a namespace name.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Environment:
    """One deploy target, as resolved from invoke.yaml and the command line."""

    name: str
    namespace: str
    kube_context: str
    release: str
    values_file: Path | None
    confirm: bool
    databases: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.name == "production"


def project_root(c: Context) -> Path:
    """Directory relative config paths are resolved against.

    That is the directory holding the project's invoke.yaml (and tasks.py) when run by ``inv``;
    otherwise the current directory.
    """
    prefix = c.config._project_prefix if "_project_prefix" in c.config else None
    return Path(prefix) if prefix else Path(os.getcwd())


def validate_namespace(value: str, *, source: str) -> str:
    """Return ``value`` if it is a DNS-1123 label, else fail naming ``source``."""
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise Exit(
            f"{source}: {value!r} is not a valid Kubernetes namespace "
            "(DNS-1123 label: lowercase letters, digits and '-', start and end alphanumeric, "
            "at most 63 characters)"
        )
    return value


def resolve_path(root: Path, value: str, *, source: str, must_exist: bool = True) -> Path:
    """Resolve a config path relative to ``root``; fail naming ``source`` when it is missing."""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = root / path
    if must_exist and not path.exists():
        raise Exit(f"{source}: path {value!r} does not exist (looked for {path})")
    return path


def environment_names(config: Mapping[str, Any]) -> list[str]:
    envs = config.get("environments") or {}
    return sorted(envs)


def resolve_environment(
    c: Context,
    env: str | None,
    namespace: str | None = None,
    *,
    require: tuple[str, ...] = (),
    default: str = "development",
) -> Environment:
    """Turn ``--env`` (and an optional ``--namespace`` override) into an :class:`Environment`.

    ``require`` names keys that must be non-empty for the calling task (e.g. ``kube_context``
    for deploy, ``values_file`` for render); they are checked here so that the error names the
    config key, not some later command failure.
    """
    name = default if env is None else env
    environments = c.config.get("environments") or {}
    if name not in environments:
        valid = ", ".join(sorted(environments)) or "(none configured)"
        raise Exit(f"--env: unknown environment {name!r}; valid: {valid}")
    raw: Mapping[str, Any] = environments[name]
    key_prefix = f"environments.{name}"

    for key in require:
        value = raw.get(key)
        if value is None or value == "":
            raise Exit(f"{key_prefix}.{key}: missing required key (set it in invoke.yaml)")

    if namespace is not None:
        ns_value = validate_namespace(namespace, source="--namespace")
    else:
        ns_raw = raw.get("namespace") or ""
        if not ns_raw:
            raise Exit(f"{key_prefix}.namespace: missing required key (set it in invoke.yaml)")
        ns_value = validate_namespace(str(ns_raw), source=f"{key_prefix}.namespace")

    confirm = raw.get("confirm", name == "production")
    if not isinstance(confirm, bool):
        raise Exit(f"{key_prefix}.confirm: {confirm!r} is not a boolean; valid: true, false")

    values_raw = raw.get("values_file") or ""
    values_file = (
        resolve_path(
            project_root(c),
            str(values_raw),
            source=f"{key_prefix}.values_file",
            must_exist="values_file" in require,
        )
        if values_raw
        else None
    )
    databases = raw.get("databases") or {}
    if not isinstance(databases, Mapping):
        raise Exit(f"{key_prefix}.databases: expected a mapping of database targets")

    known = {"namespace", "kube_context", "release", "values_file", "confirm", "databases"}
    return Environment(
        name=name,
        namespace=ns_value,
        kube_context=str(raw.get("kube_context") or ""),
        release=str(raw.get("release") or "flowlet"),
        values_file=values_file,
        confirm=confirm,
        databases=dict(databases),
        settings={k: v for k, v in raw.items() if k not in known},
    )
