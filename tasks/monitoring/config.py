"""The ``monitoring`` config key: pinned charts, repositories and per-component switches.

Everything a monitoring task needs is read once into a frozen :class:`MonitoringSettings`, so a bad
key fails early with one line naming ``monitoring.<key>``, the bad value and what is valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke import Context
from tasks.core.errors import OpsError

from tasks.core.environments import validate_namespace
from tasks.core.settings import project_root, resolve_path
from tasks.monitoring.settings import COMPONENTS

_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_TIMEOUT = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Component:
    """One Helm release of the monitoring stack."""

    key: str
    release: str
    repo: str
    repo_url: str
    chart: str
    version: str
    values: Path

    @property
    def chart_ref(self) -> str:
        return f"{self.repo}/{self.chart}"


@dataclass(frozen=True)
class MonitoringSettings:
    namespace: str
    timeout: str
    components: tuple[Component, ...]  # enabled ones, in install order
    all_releases: Mapping[str, str]  # every component key -> release name (enabled or not)
    admin_secret: str
    admin_user: str
    password_env: str

    def component(self, key: str) -> Component | None:
        return next((c for c in self.components if c.key == key), None)


def _text(raw: Mapping[str, Any], key: str, source: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise OpsError(f"{source}.{key}: {value!r} is not valid; expected a non-empty string")
    return value


def read_settings(
    c: Context, namespace: str | None = None, *, check_files: bool = True
) -> MonitoringSettings:
    """Validate ``c.config.monitoring`` (and a ``--mon-namespace`` override)."""
    raw: Mapping[str, Any] = c.config.get("monitoring") or {}
    if namespace is not None:
        ns_value = validate_namespace(namespace, source="--mon-namespace")
    else:
        ns_value = validate_namespace(str(raw.get("namespace", "")), source="monitoring.namespace")
    timeout = str(raw.get("timeout", ""))
    if not timeout or not _TIMEOUT.match(timeout):
        raise OpsError(f"monitoring.timeout: {timeout!r} is not valid; expected a duration like 10m")
    repos: Mapping[str, Any] = raw.get("repos") or {}
    values_dir = str(raw.get("values_dir") or "")
    components: list[Component] = []
    releases: dict[str, str] = {}
    table: Mapping[str, Any] = raw.get("components") or {}
    unknown = sorted(set(table) - set(COMPONENTS))
    if unknown:
        raise OpsError(
            f"monitoring.components: unknown component {unknown[0]!r}; valid: "
            + ", ".join(COMPONENTS)
        )
    for key in COMPONENTS:
        source = f"monitoring.components.{key}"
        entry: Mapping[str, Any] = table.get(key) or {}
        enabled = entry.get("enabled", False)
        if not isinstance(enabled, bool):
            raise OpsError(f"{source}.enabled: {enabled!r} is not a boolean; valid: true, false")
        release = _text(entry, "release", source)
        validate_namespace(release, source=f"{source}.release")  # same DNS-1123 rule as Helm
        releases[key] = release
        if not enabled:
            continue
        repo = _text(entry, "repo", source)
        if repo not in repos:
            valid = ", ".join(sorted(repos)) or "(none configured)"
            raise OpsError(f"{source}.repo: {repo!r} is not in monitoring.repos; valid: {valid}")
        version = _text(entry, "version", source)
        if not _VERSION.match(version):
            raise OpsError(
                f"{source}.version: {version!r} is not valid; expected an exact chart version "
                "like 1.2.3 (ranges are not allowed: versions are pinned)"
            )
        values = resolve_path(
            project_root(c),
            str(Path(values_dir) / _text(entry, "values", source)),
            source=f"{source}.values",
            must_exist=check_files,
        )
        components.append(
            Component(
                key=key,
                release=release,
                repo=repo,
                repo_url=_text(repos, repo, "monitoring.repos"),
                chart=_text(entry, "chart", source),
                version=version,
                values=values,
            )
        )
    grafana: Mapping[str, Any] = raw.get("grafana") or {}
    admin_secret = _text(grafana, "admin_secret", "monitoring.grafana")
    validate_namespace(admin_secret, source="monitoring.grafana.admin_secret")
    password_env = _text(grafana, "password_env", "monitoring.grafana")
    if not _ENV_NAME.match(password_env):
        raise OpsError(
            f"monitoring.grafana.password_env: {password_env!r} is not a valid environment "
            "variable name"
        )
    return MonitoringSettings(
        namespace=ns_value,
        timeout=timeout,
        components=tuple(components),
        all_releases=releases,
        admin_secret=admin_secret,
        admin_user=_text(grafana, "admin_user", "monitoring.grafana"),
        password_env=password_env,
    )
