"""Alertmanager receivers as config (``monitoring.alerting``): pure builders.

``monitoring.setup`` gives kube-prometheus-stack an Alertmanager config rendered from the
settings: ``severity="critical"`` alerts go to the ``critical`` receivers (paged),
``severity="warning"`` ones to the ``warning`` receivers (chat), anything else to ``null``;
a critical alert inhibits the warnings of the same alert and target. The secrets (Slack and
webhook URLs, PagerDuty routing keys, SMTP passwords) are read from the environment variables
the receivers name and go into one Secret through kubectl's stdin; the config refers to them
as files (``api_url_file``, ``routing_key_file``, ``auth_password_file``, ``url_file``) under
the path where the Prometheus Operator mounts ``alertmanagerSpec.secrets``. No secret is ever
in values, argv, the output or ``--dry``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tasks.core.errors import OpsError
from tasks.core.settings import Settings

# Where the Prometheus Operator mounts each Secret listed in alertmanagerSpec.secrets.
SECRETS_DIR = "/etc/alertmanager/secrets"
NULL = "null"
# The field of each receiver type that reads the secret from a file.
SECRET_FIELD = {
    "slack": "api_url_file",
    "pagerduty": "routing_key_file",
    "email": "auth_password_file",
    "webhook": "url_file",
}
CONFIGS = {t: f"{t}_configs" for t in ("slack", "pagerduty", "email", "webhook")}
INHIBIT_EQUAL = ("alertname", "namespace", "environment", "database", "location")


def enabled(alerting: Settings) -> bool:
    return bool(alerting.receivers)


def am_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def receiver_config(name: str, receiver: Settings, secret_dir: str) -> dict[str, Any]:
    """One Alertmanager receiver; its secret read from ``<secret_dir>/<name>``."""
    entry: dict[str, Any] = {SECRET_FIELD[receiver.type]: f"{secret_dir}/{name}"}
    entry["send_resolved"] = True
    if receiver.type == "slack" and receiver.channel:
        entry["channel"] = receiver.channel
    if receiver.type == "email":
        entry.update(
            {
                "to": receiver.to,
                "from": receiver["from"],
                "smarthost": receiver.smarthost,
                "auth_username": receiver.username or receiver["from"],
            }
        )
    return {"name": name, CONFIGS[receiver.type]: [entry]}


def alertmanager_config(alerting: Settings, secrets_dir: str = SECRETS_DIR) -> dict[str, Any]:
    """The whole Alertmanager config (no secret in it: only the paths of the secret files)."""
    secret_dir = f"{secrets_dir}/{alerting.secret}"
    routes = [
        {"matchers": [f'severity="{severity}"'], "receiver": name, "continue": True}
        for severity in ("critical", "warning")
        for name in alerting[severity]
    ]
    return {
        "route": {
            "receiver": NULL,
            "group_by": list(alerting.group_by),
            "group_wait": am_duration(alerting.group_wait),
            "group_interval": am_duration(alerting.group_interval),
            "repeat_interval": am_duration(alerting.repeat_interval),
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": list(INHIBIT_EQUAL),
            }
        ],
        "receivers": [{"name": NULL}]
        + [receiver_config(n, r, secret_dir) for n, r in sorted(alerting.receivers.items())],
    }


def helm_args(alerting: Settings) -> list[str]:
    """kube-prometheus-stack's values for the config and the mounted Secret (JSON on argv:
    paths and names only)."""
    config = json.dumps(alertmanager_config(alerting), separators=(",", ":"))
    return [
        "--set-json",
        f"alertmanager.config={config}",
        "--set-json",
        f"alertmanager.alertmanagerSpec.secrets={json.dumps([alerting.secret])}",
    ]


def routing_tree(alerting: Settings) -> list[str]:
    """The routing as ``--dry`` prints it: which receivers get which severity, and how."""
    receivers = alerting.receivers

    def describe(name: str) -> str:
        receiver = receivers[name]
        where = receiver.to if receiver.type == "email" else receiver.channel
        return (
            f"{name} ({receiver.type}{' ' + where if where else ''}; "
            f"secret ${receiver.secret_env} -> Secret key {name})"
        )

    group = ", ".join(alerting.group_by)
    timings = (alerting.group_wait, alerting.group_interval, alerting.repeat_interval)
    wait, interval, repeat = (am_duration(t) for t in timings)
    lines = [f"group by {group}; wait {wait}, interval {interval}, repeat {repeat}"]
    for severity in ("critical", "warning"):
        names = alerting[severity]
        targets = ", ".join(describe(n) for n in names) if names else "nobody (null)"
        lines.append(f'severity="{severity}" -> {targets}')
    lines.append("anything else -> nobody (null)")
    lines.append("a critical alert inhibits the warnings with the same " + ", ".join(INHIBIT_EQUAL))
    return lines


def missing_env(alerting: Settings, environ: Mapping[str, str]) -> list[str]:
    names = sorted({r.secret_env for r in alerting.receivers.values()})
    return [name for name in names if not environ.get(name)]


def require_env(alerting: Settings, environ: Mapping[str, str]) -> None:
    """Every variable the receivers name is set (checked before setup changes anything)."""
    missing = missing_env(alerting, environ)
    if missing:
        raise OpsError(
            "Alertmanager receivers: "
            + ", ".join(f"${name}" for name in missing)
            + " not set (monitoring.alerting.receivers.<name>.secret_env); export it and run again"
        )


def secret_manifest(alerting: Settings, namespace: str, environ: Mapping[str, str]) -> str:
    """The receivers' Secret (fed to ``kubectl apply -f -`` on stdin, never written or shown)."""
    require_env(alerting, environ)
    data = {name: environ[r.secret_env] for name, r in sorted(alerting.receivers.items())}
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": alerting.secret, "namespace": namespace},
            "type": "Opaque",
            "stringData": data,
        }
    )
