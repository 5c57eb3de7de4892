"""Collection defaults of the ``deploy`` config key (kept apart so ``inv --list`` stays light)."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "chart": "kubernetes/flowlet-chart",
    "manifests": "kubernetes/manifests",
    "timeout": "10m",
    "history_max": 10,
    "audit_log": ".flowlet/deploy-audit.jsonl",
    "rollout_deployments": ["backend", "frontend"],
    "image_tag": "",
    "field_manager": "flowlet-ops",
    "log_lines": 40,
    "kubernetes_version": "1.33",
    "crd_allowlist": [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "HTTPRoute",
        "Gateway",
        "GrafanaDashboard",
    ],
    "secret": {"name": "flowlet-app", "env_file": "", "env_vars": ["FLOWLET_DB_PASSWORD"]},
}

ENV_HELP = "environment from invoke.yaml: development, staging or production (default: development)"
COMMON_HELP = {
    "env": ENV_HELP,
    "namespace": "override the environment's namespace",
    "context": "kube context to use instead of environments.<env>.kube_context",
}
