"""The ``monitoring`` config key: pinned charts, repositories, per-component switches.

This schema is the only place the monitoring defaults are written (invoke.yaml holds only what
a project changes). Chart versions current when this was written (2026-08 chart indexes); bump
them here (or override in invoke.yaml), never float them. Loki's OSS chart moved to
grafana-community in 2026-03; Alloy's chart stays in Grafana's repository; Jaeger chart 4.x
runs Jaeger v2.

It also holds the kinds of the monitoring flags (``--mon-namespace``, ``--app-namespace``,
``--context``, ``--port``), so a flag and a config key are checked by the same rules.
"""

from __future__ import annotations

from typing import Any

from tasks.core.environments import CONTEXT, CONTEXT_DESC, release_kind
from tasks.core.errors import ConfigError
from tasks.core.settings import (
    DNS_LABEL,
    DNS_LABEL_DESC,
    Bool,
    Choice,
    Duration,
    EnvName,
    FilePath,
    List,
    Map,
    Port,
    Section,
    Str,
    Where,
)

# Install order: the Prometheus Operator CRDs (from kube-prometheus-stack) first, Loki before the
# log agent that ships to it, Jaeger last. Uninstall runs in reverse.
COMPONENTS = ("kube_prometheus_stack", "loki", "alloy", "jaeger")
VERSION = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
REPO_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Helm: a chart name is lowercase letters, digits and '-' (what `helm create` accepts).
CHART_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A values file name inside values_dir: no directory part, no leading dot or dash.
VALUES_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml$"
# Grafana user names: printable, no spaces (the Secret key's value, given on kubectl's argv).
USER_NAME = r"^[A-Za-z0-9_.@-]+$"


def namespace(default: str = "", help: str = "") -> Str:
    """A Kubernetes namespace or object name (a DNS-1123 label), never empty."""
    return Str(default, help, pattern=DNS_LABEL, desc=DNS_LABEL_DESC, max_len=63, empty=False)


# The kinds of the flags every monitoring task shares (converted before the body runs).
CONTEXT_FLAG = Str(pattern=CONTEXT, desc=CONTEXT_DESC, empty=False)
TARGET_FLAGS: dict[str, Any] = {"context": CONTEXT_FLAG, "mon_namespace": namespace()}
SEVERITY_FLAG = Choice("critical", ("critical", "warning"))
RECEIVER_FLAG = Str(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", desc="a receiver name", empty=False)


def component(release: str, repo: str, chart: str, version: str, values: str) -> Section:
    def text(default: str, help: str, pattern: str, desc: str) -> Str:
        return Str(default, help, pattern=pattern, desc=desc, empty=False)

    return Section(
        {
            "enabled": Bool(True, "install this component"),
            "release": release_kind(release, "Helm release name"),
            "repo": text(repo, "repository name", REPO_NAME, "a key of monitoring.repos"),
            "chart": text(chart, "chart name", CHART_NAME, "a chart name (a-z, 0-9, '-')"),
            "version": text(
                version,
                "exact chart version",
                VERSION,
                "an exact chart version like 1.2.3 (ranges are not allowed: pinned)",
            ),
            "values": text(
                values,
                "values file name in values_dir",
                VALUES_NAME,
                "a .yaml file name in monitoring.values_dir (no directory part)",
            ),
        }
    )


RECEIVER_TYPES = ("slack", "pagerduty", "email", "webhook")
RECEIVER_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
RECEIVER_DESC = "a receiver name (lowercase letters, digits, '-')"
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
# What each receiver type needs besides its secret (the keys of an email receiver).
EMAIL_KEYS = ("to", "from", "smarthost")


def _receiver_names(help: str) -> List:
    return List([], Str(pattern=RECEIVER_NAME, desc=RECEIVER_DESC, empty=False), help)


RECEIVER = Section(
    {
        "type": Choice("webhook", RECEIVER_TYPES, "slack, pagerduty, email or webhook"),
        "secret_env": EnvName(
            "",
            "variable holding its secret: the Slack or webhook URL, the PagerDuty routing key, "
            "the SMTP password",
            secret_env=True,
        ),
        "channel": Str("", "Slack channel (slack; default: the webhook's own)"),
        "to": Str("", "recipient address (email)"),
        "from": Str("", "sender address (email)"),
        "smarthost": Str(
            "", "SMTP server host:port (email)", pattern=r"^[^\s:]+:\d+$", desc="host:port"
        ),
        "username": Str("", "SMTP user (email; default: the from address)"),
    }
)


def _check_alerting(alerting: Any, where: Where) -> None:
    """Every routed receiver exists and has its secret variable; email has its addresses."""
    receivers = alerting.receivers
    for severity in ("critical", "warning"):
        for name in alerting[severity]:
            if name not in receivers:
                valid = ", ".join(sorted(receivers)) or "(none configured)"
                raise ConfigError(
                    f"{where.child(severity).name}: {name!r} is not in "
                    f"{where.child('receivers').name}; valid: {valid}"
                )
    for name, receiver in receivers.items():
        here = where.child("receivers").child(name)
        if name == "null":
            raise ConfigError(f"{here.name}: 'null' is reserved (the receiver of unrouted alerts)")
        if not receiver.secret_env:
            raise ConfigError(
                f"{here.child('secret_env').name}: missing (the variable holding the "
                f"{receiver.type} receiver's secret)"
            )
        if receiver.type == "email":
            for key in EMAIL_KEYS:
                if not receiver[key]:
                    raise ConfigError(f"{here.child(key).name}: missing (needed by email)")


ALERTING = Section(
    {
        "secret": namespace(
            "alertmanager-receivers", "Secret holding the receivers' secrets (monitoring ns)"
        ),
        "critical": _receiver_names("receivers of severity=critical alerts (paged)"),
        "warning": _receiver_names("receivers of severity=warning alerts (chat)"),
        "group_by": List(
            ["alertname", "namespace", "environment", "database"],
            Str(pattern=LABEL_NAME, desc="a label name", empty=False),
            "labels that group alerts into one notification",
            min_items=1,
        ),
        "group_wait": Duration("30s", "wait before the first notification of a group"),
        "group_interval": Duration("5m", "wait before notifying a group's new alerts"),
        "repeat_interval": Duration("4h", "repeat a still-firing notification after"),
        "receivers": Map(
            RECEIVER,
            {},
            "receivers by name (type slack, pagerduty, email, webhook)",
            key_pattern=RECEIVER_NAME,
            key_desc=RECEIVER_DESC,
        ),
    },
    check_all=_check_alerting,
)


def _check_monitoring(settings: Any, where: Where) -> None:
    """Rules across keys: an enabled component's repository must be configured."""
    repos = settings.repos
    for key, entry in settings.components.items():
        if entry.enabled and entry.repo not in repos:
            valid = ", ".join(sorted(repos)) or "(none configured)"
            raise ConfigError(
                f"{where.child('components').name}.{key}.repo: {entry.repo!r} is not in "
                f"monitoring.repos; valid: {valid}"
            )


SCHEMA = Section(
    {
        "namespace": namespace("monitoring", "namespace of the stack"),
        "values_dir": FilePath(
            "kubernetes/monitoring", "directory of the values files", kind="dir"
        ),
        "timeout": Duration("10m", "Helm --timeout per release", min_seconds=1),
        "rule_tests": FilePath(
            "kubernetes/monitoring/tests",
            "directory of the promtool rule tests (monitoring.test-rules)",
            kind="dir",
        ),
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
                    "kube-prometheus-stack",
                    "prometheus-community",
                    "kube-prometheus-stack",
                    "88.5.3",
                    "kube-prometheus-stack.yaml",
                ),
                "loki": component("loki", "grafana-community", "loki", "18.11.0", "loki.yaml"),
                "alloy": component("alloy", "grafana", "alloy", "1.11.1", "alloy.yaml"),
                "jaeger": component("jaeger", "jaegertracing", "jaeger", "4.11.1", "jaeger.yaml"),
            }
        ),
        "grafana": Section(
            {
                "admin_secret": namespace("grafana-admin", "Grafana admin Secret name"),
                "admin_user": Str(
                    "admin",
                    "Grafana admin user",
                    pattern=USER_NAME,
                    desc="a user name (letters, digits, '_', '.', '@', '-')",
                    empty=False,
                ),
                "password_env": EnvName(
                    "GRAFANA_ADMIN_PASSWORD",
                    "variable the admin password is read from",
                    empty=False,
                    secret_env=True,
                ),
            }
        ),
        "alerting": ALERTING,
        "local_ports": Section(
            {
                "grafana": Port(3000, "local port of monitoring.grafana"),
                "jaeger": Port(16686, "local port of monitoring.jaeger"),
                "alertmanager": Port(9093, "local port of monitoring.test-alert"),
            }
        ),
    },
    check_all=_check_monitoring,
)
