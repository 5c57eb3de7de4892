"""Flag help shared by the deploy tasks."""

from __future__ import annotations

ENV_HELP = "environment from invoke.yaml: development, staging or production (default: development)"
COMMON_HELP = {
    "env": ENV_HELP,
    "namespace": "override the environment's namespace",
    "context": "kube context to use instead of environments.<env>.kube_context",
}
