"""The ``deploy`` config key: chart, manifests, timeouts, the deploy lock, the app Secret."""

from __future__ import annotations

from tasks.core.settings import (
    DNS_LABEL,
    DNS_LABEL_DESC,
    Duration,
    EnvName,
    FilePath,
    Int,
    List,
    Map,
    Section,
    Str,
)

IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
IMAGE_TAG_DESC = (
    "an image tag: letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-'), "
    "e.g. a git SHA"
)
DIGEST = r"^sha256:[a-f0-9]{64}$"
DIGEST_DESC = "an image digest: sha256: and 64 lowercase hex digits"
COMPONENT = r"^(backend|frontend)$"
# --image-digest backend=sha256:...,frontend=sha256:...
IMAGE_DIGEST_ITEM = r"^(backend|frontend)=sha256:[a-f0-9]{64}$"
IMAGE_DIGEST_DESC = "COMPONENT=sha256:<64 hex digits>, COMPONENT backend or frontend"
MIN_TIMEOUT_SECONDS = 60
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KIND = r"^[A-Z][A-Za-z0-9]*$"

SCHEMA = Section(
    {
        "chart": FilePath("kubernetes/flowlet-chart", "chart directory", kind="dir"),
        "manifests": FilePath(
            "kubernetes/manifests", "manifests applied before Helm (params.yaml)", kind="dir"
        ),
        "timeout": Duration(
            "10m", "helm wait and rollout timeout", min_seconds=MIN_TIMEOUT_SECONDS
        ),
        "history_max": Int(10, "helm --history-max", minimum=1),
        "audit_log": FilePath(".flowlet/deploy-audit.jsonl", "audit log (JSON lines)", kind="file"),
        "lock_stale_after": Duration(
            "2m", "a deploy lock not renewed for this long is stale", min_seconds=10
        ),
        "rollout_deployments": List(
            ["backend", "frontend"],
            Str(pattern=DNS_LABEL, desc=DNS_LABEL_DESC),
            "components verified with kubectl rollout status",
            min_items=1,
        ),
        "image_tag": Str("", "default --image-tag", pattern=IMAGE_TAG, desc=IMAGE_TAG_DESC),
        "image_digests": Map(
            Str(pattern=DIGEST, desc=DIGEST_DESC),
            {},
            "images pinned by digest, by component (--image-digest overrides)",
            key_pattern=COMPONENT,
            key_desc="a component: backend or frontend",
        ),
        "field_manager": Str(
            "flowlet-ops",
            "server-side apply field manager",
            pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
            desc="a field manager name (letters, digits, '_', '.', ':', '-')",
        ),
        "log_lines": Int(40, "pod log lines shown after a failed rollout", minimum=1),
        "kubernetes_version": Str(
            "1.33", "schema version of deploy.lint", pattern=r"^1\.\d+$", desc="a version like 1.33"
        ),
        "crd_allowlist": List(
            [
                "ServiceMonitor",
                "PodMonitor",
                "PrometheusRule",
                "HTTPRoute",
                "Gateway",
                "GrafanaDashboard",
            ],
            Str(pattern=KIND, desc="a Kubernetes kind like ServiceMonitor"),
            "kinds deploy.lint accepts without a schema",
        ),
        "secret": Section(
            {
                "name": Str(
                    "flowlet-app",
                    "the app Secret (also the chart's existingSecret)",
                    pattern=DNS_SUBDOMAIN,
                    desc="a Kubernetes object name (lowercase DNS-1123 subdomain)",
                    max_len=253,
                    empty=False,
                ),
                "env_file": Str("", "env file with the Secret's values ({env} is replaced)"),
                "env_vars": List(
                    ["FLOWLET_DB_PASSWORD"],
                    EnvName(empty=False),
                    "variables used when env_file is empty",
                    secret_env=True,
                ),
            }
        ),
    }
)
