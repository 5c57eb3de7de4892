"""The ``monitoring`` config key: pinned charts, repositories, per-component switches.

Chart versions current when this was written (2026-08 chart indexes); bump them here (or
override in invoke.yaml), never float them. Loki's OSS chart moved to grafana-community in
2026-03; Alloy's chart stays in Grafana's repository; Jaeger chart 4.x runs Jaeger v2.
"""

from __future__ import annotations

from tasks.core.environments import namespace_kind, release_kind
from tasks.core.settings import (
    DNS_LABEL,
    DNS_LABEL_DESC,
    Bool,
    Duration,
    EnvName,
    FilePath,
    Map,
    Section,
    Str,
)

# Install order: the Prometheus Operator CRDs (from kube-prometheus-stack) first, Loki before the
# log agent that ships to it, Jaeger last. Uninstall runs in reverse.
COMPONENTS = ("kube_prometheus_stack", "loki", "alloy", "jaeger")
VERSION = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
REPO_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def component(release: str, repo: str, chart: str, version: str, values: str) -> Section:
    return Section(
        {
            "enabled": Bool(True, "install this component"),
            "release": release_kind(release, "Helm release name"),
            "repo": Str(repo, "repository name (a key of monitoring.repos)", empty=False),
            "chart": Str(chart, "chart name", empty=False),
            "version": Str(
                version,
                "exact chart version",
                pattern=VERSION,
                desc="an exact chart version like 1.2.3 (ranges are not allowed: pinned)",
            ),
            "values": Str(values, "values file name in values_dir", empty=False),
        }
    )


def _check_monitoring(settings: object, where: object) -> None:
    from tasks.core.errors import ConfigError

    repos = settings.repos  # type: ignore[attr-defined]
    for key, entry in settings.components.items():  # type: ignore[attr-defined]
        if entry.enabled and entry.repo not in repos:
            valid = ", ".join(sorted(repos)) or "(none configured)"
            raise ConfigError(
                f"monitoring.components.{key}.repo: {entry.repo!r} is not in monitoring.repos; "
                f"valid: {valid}"
            )


SCHEMA = Section(
    {
        "namespace": namespace_kind("monitoring", "namespace of the stack"),
        "values_dir": FilePath("kubernetes/monitoring", "directory of the values files", kind="dir"),
        "timeout": Duration("10m", "Helm --timeout per release", min_seconds=1),
        "repos": Map(
            Str(pattern=r"^(https?|oci)://\S+$", desc="a chart repository URL"),
            {
                "prometheus-community": "https://prometheus-community.github.io/helm-charts",
                "grafana": "https://grafana.github.io/helm-charts",
                "grafana-community": "https://grafana-community.github.io/helm-charts",
                "jaegertracing": "https://jaegertracing.github.io/helm-charts",
            },
            "chart repository URL by name",
            key_pattern=REPO_NAME,
            key_desc="a repository name (lowercase letters, digits, '-')",
        ),
        "components": Section(
            {
                "kube_prometheus_stack": component(
                    "kube-prometheus-stack", "prometheus-community", "kube-prometheus-stack",
                    "88.5.3", "kube-prometheus-stack.yaml",
                ),
                "loki": component("loki", "grafana-community", "loki", "18.11.0", "loki.yaml"),
                "alloy": component("alloy", "grafana", "alloy", "1.11.1", "alloy.yaml"),
                "jaeger": component("jaeger", "jaegertracing", "jaeger", "4.11.1", "jaeger.yaml"),
            }
        ),  # fmt: skip
        "grafana": Section(
            {
                "admin_secret": Str(
                    "grafana-admin", "Grafana admin Secret name", pattern=DNS_LABEL,  # nosec B106
                    desc=DNS_LABEL_DESC,
                ),  # fmt: skip
                "admin_user": Str("admin", "Grafana admin user", empty=False),
                "password_env": EnvName(
                    "GRAFANA_ADMIN_PASSWORD",  # nosec B106
                    "variable the admin password is read from",
                    empty=False,
                    secret_env=True,
                ),
            }
        ),
    },
    check_all=_check_monitoring,
)
