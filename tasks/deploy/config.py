"""``deploy.*`` configuration merged with the flags, and the namespace manifests on disk."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke import Context
from tasks.core.errors import OpsError

from tasks.deploy.plan import (
    ChartInputs,
    manifest_params,
    parse_timeout,
    render_manifests,
    validate_image_tag,
)
from tasks.core.environments import Environment
from tasks.core.settings import project_root, resolve_path


@dataclass(frozen=True)
class Settings:
    """``deploy.*`` config merged with the flags, validated (errors name the key or flag)."""

    chart: Path
    manifests: Path
    timeout_seconds: int
    history_max: int
    audit_log: Path
    rollout_components: tuple[str, ...]
    diff: bool
    image_tag: str
    field_manager: str
    log_lines: int
    secret: Mapping[str, Any]
    kubernetes_version: str
    crd_allowlist: tuple[str, ...]


def resolve_settings(
    c: Context,
    *,
    timeout: str | None = None,
    diff: bool = True,
    image_tag: str | None = None,
) -> Settings:
    cfg = c.config.deploy
    root = project_root(c)
    timeout_source = "deploy.timeout" if timeout is None else "--timeout"
    timeout_value = str(cfg.timeout) if timeout is None else timeout
    tag = str(cfg.image_tag or "") if image_tag is None else image_tag
    if tag:
        validate_image_tag(tag, source="deploy.image_tag" if image_tag is None else "--image-tag")
    history_max = cfg.history_max
    if not isinstance(history_max, int) or isinstance(history_max, bool) or history_max < 1:
        raise OpsError(f"deploy.history_max: {history_max!r} is not valid; valid: an integer >= 1")
    components = cfg.rollout_deployments
    if not isinstance(components, (list, tuple)) or not components:
        raise OpsError(f"deploy.rollout_deployments: {components!r} is not a non-empty list")
    return Settings(
        chart=resolve_path(root, str(cfg.chart), source="deploy.chart"),
        manifests=resolve_path(root, str(cfg.manifests), source="deploy.manifests"),
        timeout_seconds=parse_timeout(timeout_value, source=timeout_source),
        history_max=history_max,
        audit_log=resolve_path(
            root, str(cfg.audit_log), source="deploy.audit_log", must_exist=False
        ),
        rollout_components=tuple(str(x) for x in components),
        diff=diff,
        image_tag=tag,
        field_manager=str(cfg.field_manager),
        log_lines=int(cfg.log_lines),
        secret=dict(cfg.secret),
        kubernetes_version=str(cfg.kubernetes_version),
        crd_allowlist=tuple(str(x) for x in cfg.crd_allowlist),
    )


def chart_inputs(environment: Environment, settings: Settings) -> ChartInputs:
    if environment.values_file is None:
        raise OpsError(f"environments.{environment.name}.values_file: missing required key")
    return ChartInputs(
        chart=settings.chart,
        values_file=environment.values_file,
        secret_name=str(settings.secret.get("name") or ""),
        timeout_seconds=settings.timeout_seconds,
        image_tag=settings.image_tag,
    )


def load_manifests(directory: Path, environment: str, namespace: str) -> str:
    import yaml  # lazy: keep `inv --list` light

    params_file = directory / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    values = manifest_params(
        {environment: {}} if not params else params,
        environment,
        namespace,
        source=str(params_file),
    )
    templates = {
        p.name: p.read_text() for p in sorted(directory.glob("*.yaml")) if p.name != "params.yaml"
    }
    return render_manifests(templates, values).text
