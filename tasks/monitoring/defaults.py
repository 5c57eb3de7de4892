"""Defaults of the ``monitoring`` config key (kept apart so ``inv --list`` stays light)."""

from __future__ import annotations

from typing import Any

# Install order: the Prometheus Operator CRDs (from kube-prometheus-stack) first, Loki before the
# log agent that ships to it, Jaeger last. Uninstall runs in reverse.
COMPONENTS = ("kube_prometheus_stack", "loki", "alloy", "jaeger")

# Chart versions current when this was written (2026-08 chart indexes); bump them here or in
# invoke.yaml, never float them. Loki's OSS chart moved to grafana-community in 2026-03; Alloy's
# chart stays in Grafana's repository; Jaeger chart 4.x runs Jaeger v2 (all-in-one, OTel based).
DEFAULTS: dict[str, Any] = {
    "namespace": "monitoring",
    "values_dir": "kubernetes/monitoring",
    "timeout": "10m",
    "repos": {
        "prometheus-community": "https://prometheus-community.github.io/helm-charts",
        "grafana": "https://grafana.github.io/helm-charts",
        "grafana-community": "https://grafana-community.github.io/helm-charts",
        "jaegertracing": "https://jaegertracing.github.io/helm-charts",
    },
    "components": {
        "kube_prometheus_stack": {
            "enabled": True,
            "release": "kube-prometheus-stack",
            "repo": "prometheus-community",
            "chart": "kube-prometheus-stack",
            "version": "88.5.3",
            "values": "kube-prometheus-stack.yaml",
        },
        "loki": {
            "enabled": True,
            "release": "loki",
            "repo": "grafana-community",
            "chart": "loki",
            "version": "18.11.0",
            "values": "loki.yaml",
        },
        "alloy": {
            "enabled": True,
            "release": "alloy",
            "repo": "grafana",
            "chart": "alloy",
            "version": "1.11.1",
            "values": "alloy.yaml",
        },
        "jaeger": {
            "enabled": True,
            "release": "jaeger",
            "repo": "jaegertracing",
            "chart": "jaeger",
            "version": "4.11.1",
            "values": "jaeger.yaml",
        },
    },
    "grafana": {
        "admin_secret": "grafana-admin",  # nosec B105
        "admin_user": "admin",
        "password_env": "GRAFANA_ADMIN_PASSWORD",  # nosec B105
    },
}
