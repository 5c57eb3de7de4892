"""Alertmanager receivers as config (``monitoring.alerting``).

The rendered config passes the real ``amtool check-config`` (Debian's Alertmanager 0.25;
with the secret files in place) and routes as promised (``amtool config routes test``);
``monitoring.setup`` puts the receivers' secrets into one Secret through kubectl's stdin only
(never argv, the environment of helm/kubectl, the output or ``--dry``), and prints the routing
tree.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need
from fixtures_monitoring import canned

from tasks import monitoring
from tasks.core.settings import Where
from tasks.monitoring import alerting
from tasks.monitoring.settings import ALERTING

SLACK = "https://hooks.slack.example/services/T0/B0/s3cr3t-slack"
PAGER = "pd-routing-key-s3cr3t"
SMTP = "smtp-pa$$word `s3cr3t`"
HOOK = "https://hooks.example/alerts?token=s3cr3t-hook"
SECRETS = {"SLACK_URL": SLACK, "PD_KEY": PAGER, "SMTP_PASSWORD": SMTP, "HOOK_URL": HOOK}
RECEIVERS = {
    "pager": {"type": "pagerduty", "secret_env": "PD_KEY"},
    "chat": {"type": "slack", "secret_env": "SLACK_URL", "channel": "#ops"},
    "mail": {
        "type": "email",
        "secret_env": "SMTP_PASSWORD",
        "to": "ops@example.com",
        "from": "alerts@example.com",
        "smarthost": "smtp.example.com:587",
    },
    "hook": {"type": "webhook", "secret_env": "HOOK_URL"},
}
CONFIG = {"critical": ["pager", "mail"], "warning": ["chat", "hook"], "receivers": RECEIVERS}


def settings(raw: dict[str, Any] | None = None) -> Any:
    return ALERTING.check(CONFIG if raw is None else raw, Where("monitoring.alerting"))


def test_config_routes_by_severity_with_secrets_as_files() -> None:
    config = alerting.alertmanager_config(settings())
    route = config["route"]
    assert route["receiver"] == "null"
    assert route["group_by"] == ["alertname", "namespace", "environment", "database"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )
    assert [(r["matchers"], r["receiver"]) for r in route["routes"]] == [
        (['severity="critical"'], "pager"),
        (['severity="critical"'], "mail"),
        (['severity="warning"'], "chat"),
        (['severity="warning"'], "hook"),
    ]
    receivers = {r["name"]: r for r in config["receivers"]}
    base = "/etc/alertmanager/secrets/alertmanager-receivers"
    assert receivers["pager"]["pagerduty_configs"][0]["routing_key_file"] == f"{base}/pager"
    assert receivers["chat"]["slack_configs"][0]["api_url_file"] == f"{base}/chat"
    assert receivers["chat"]["slack_configs"][0]["channel"] == "#ops"
    assert receivers["hook"]["webhook_configs"][0]["url_file"] == f"{base}/hook"
    mail = receivers["mail"]["email_configs"][0]
    assert mail["auth_password_file"] == f"{base}/mail"
    assert mail["auth_username"] == "alerts@example.com"
    text = json.dumps(config) + " ".join(alerting.helm_args(settings()))
    assert not any(secret in text for secret in SECRETS.values())
    assert config["inhibit_rules"][0]["source_matchers"] == ['severity="critical"']


@pytest.fixture
def checked_config(tmp_path: Path) -> Path:
    """The rendered config, its secret files where the config points (amtool reads them)."""
    need("amtool", why="Alertmanager's own config check")
    secrets = tmp_path / "secrets"
    secret_dir = secrets / "alertmanager-receivers"
    secret_dir.mkdir(parents=True)
    for name, receiver in RECEIVERS.items():
        (secret_dir / name).write_text(SECRETS[receiver["secret_env"]])
    config = alerting.alertmanager_config(settings(), secrets_dir=str(secrets))
    # Debian's Alertmanager 0.25 predates webhook_configs.url_file (0.27; kube-prometheus-stack
    # 88.5.3 runs a newer one): amtool checks the webhook receiver with a plain url
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = "http://127.0.0.1:9/" + Path(hook.pop("url_file")).name
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_amtool_accepts_the_config(checked_config: Path) -> None:
    check = subprocess.run(
        ["amtool", "check-config", str(checked_config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert " - 5 receivers" in check.stdout and " - 1 inhibit rules" in check.stdout


@pytest.mark.parametrize(
    "labels, receivers",
    [
        (["severity=critical", "alertname=FlowletBackupTooOld"], "pager,mail"),
        (["severity=warning", "alertname=FlowletBackupFailed"], "chat,hook"),
        (["severity=info", "alertname=Watchdog"], "null"),
    ],
    ids=["critical-pages", "warning-to-chat", "other-to-null"],
)
def test_amtool_routes_by_severity(checked_config: Path, labels: list[str], receivers: str) -> None:
    argv = ["amtool", "config", "routes", "test", f"--config.file={checked_config}", *labels]
    routed = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert routed.stdout.strip() == receivers, routed.stderr


def test_routing_tree_names_no_secret() -> None:
    tree = alerting.routing_tree(settings())
    assert tree[1] == (
        'severity="critical" -> pager (pagerduty; secret $PD_KEY -> Secret key pager), '
        "mail (email ops@example.com; secret $SMTP_PASSWORD -> Secret key mail)"
    )
    assert tree[3] == "anything else -> nobody (null)"


def test_secret_manifest_needs_every_variable() -> None:
    manifest = json.loads(alerting.secret_manifest(settings(), "monitoring", SECRETS))
    assert manifest["stringData"] == {"chat": SLACK, "hook": HOOK, "mail": SMTP, "pager": PAGER}
    with pytest.raises(Exception, match=r"^Alertmanager receivers: \$PD_KEY, \$SLACK_URL not set"):
        alerting.secret_manifest(settings(), "monitoring", {"SMTP_PASSWORD": "x", "HOOK_URL": "y"})


def test_setup_feeds_the_secrets_on_stdin_only(
    mon_config: Any, recording_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    c = recording_context(mon_config(overrides={"monitoring": {"alerting": CONFIG}}), canned())
    monitoring.setup(c, env="staging")
    applies = [cmd for cmd, _, data in c.calls if data and "alertmanager-receivers" in data]
    assert applies == ["kubectl --context flowlet-staging apply -f -"]
    manifest = json.loads(c.stdin[applies[0]])
    assert manifest["metadata"] == {"name": "alertmanager-receivers", "namespace": "monitoring"}
    assert manifest["stringData"]["pager"] == PAGER
    upgrade = next(
        cmd
        for cmd, _, _ in c.calls
        if " upgrade --install " in cmd and " -- kube-prometheus-stack " in cmd
    )
    assert "alertmanager.alertmanagerSpec.secrets=" in upgrade and "url_file" in upgrade
    for command, _, _ in c.calls:
        assert not any(secret in command for secret in SECRETS.values()), command
    for _, env, _ in c.envs:
        assert env is None or not set(SECRETS) & set(env), "a child got a receiver's secret"


def test_dry_setup_prints_the_routing_tree_and_no_secret(
    mon_config: Any,
    recording_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HOOK_URL")
    c = recording_context(
        mon_config(dry=True, overrides={"monitoring": {"alerting": CONFIG}}), canned()
    )
    monitoring.setup(c, env="production")
    out = capsys.readouterr().out
    assert "(--dry: $HOOK_URL not set; needed for the Alertmanager receivers)" in out
    assert re.search(r"==> \d+\. Alertmanager routing \(monitoring\.alerting\)\n", out)
    assert '    severity="warning" -> chat (slack #ops; secret $SLACK_URL' in out
    assert "Alertmanager receivers Secret monitoring/alertmanager-receivers" in out
    assert not any(secret in out for secret in SECRETS.values())
    assert not any(data and "stringData" in data for _, _, data in c.calls)


def test_setup_from_the_command_line_creates_the_receivers_secret(
    cluster: Any, local_chart_repos: Any, recording_tools: Any, tmp_path: Path
) -> None:
    """``inv -f receivers.yaml monitoring.setup`` by the real inv, helm and kubectl against the
    fake cluster: the Secret holds every receiver's secret; no helm/kubectl got one in its argv
    or environment, no output shows one, no file holds one."""
    from conftest import run_inv

    recorder = recording_tools(SLACK)
    config = tmp_path / "receivers.yaml"
    config.write_text(yaml.safe_dump({"monitoring": {"alerting": CONFIG}}))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"PATH": recorder.path(), "GRAFANA_ADMIN_PASSWORD": "admin-pw", "TMPDIR": str(tmp)}
    done = run_inv(
        ["-f", str(config), "monitoring.setup", "--env", "staging"], env={**env, **SECRETS}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    secret = cluster.get("Secret", "monitoring", "alertmanager-receivers")
    assert secret is not None
    stored = secret.get("stringData") or {
        k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()
    }
    assert stored == {"chat": SLACK, "hook": HOOK, "mail": SMTP, "pager": PAGER}
    calls = recorder.calls()
    assert any("alertmanager.alertmanagerSpec.secrets=" in " ".join(c["argv"]) for c in calls)
    for call in calls:
        assert call["leaked"] == [], call["argv"]
        assert not set(SECRETS) & set(call["env"]), call["argv"]
        assert not any(s in arg for s in SECRETS.values() for arg in call["argv"])
    assert not any(s in done.stdout + done.stderr for s in SECRETS.values())
    for path in (p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        assert not any(s.encode() in data for s in SECRETS.values()), path
    progress = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    assert "Alertmanager routing (monitoring.alerting)" in progress


# --- monitoring.test-alert: the pure parts ---------------------------------------------------


def test_test_alert_payload_and_verdict() -> None:
    from datetime import datetime, timezone

    from tasks.core.errors import OpsError
    from tasks.monitoring import testalert

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    (alert,) = testalert.test_alert("warning", "staging", now)
    assert alert["labels"] == {
        "alertname": "FlowletTestAlert",
        "severity": "warning",
        "environment": "staging",
        "flowlet_test": "true",
    }
    assert alert["endsAt"] == "2026-01-02T03:09:05+00:00"
    groups = [
        {"receiver": {"name": "chat"}, "alerts": [alert]},
        {"receiver": {"name": "hook"}, "alerts": [alert]},
        {"receiver": {"name": "pager"}, "alerts": [{"labels": {"alertname": "Other"}}]},
    ]
    assert testalert.routed_receivers(json.dumps(groups), "warning") == ["chat", "hook"]
    assert testalert.routed_receivers(json.dumps(groups), "critical") is None
    assert testalert.verdict(["chat", "hook"], "hook", "warning") == (
        "FlowletTestAlert (warning) routed to: chat, hook"
    )
    with pytest.raises(OpsError, match=r"^the critical test alert was routed to no receiver"):
        testalert.verdict(["null"], None, "critical")
    with pytest.raises(OpsError, match=r"no receiver"):
        testalert.verdict([], None, "critical")
    with pytest.raises(OpsError, match=r"JSON"):
        testalert.routed_receivers("<html>", "critical")


def test_dry_setup_production_shows_the_routing_tree_from_the_command_line(
    cluster: Any, local_chart_repos: Any, recording_tools: Any, tmp_path: Path
) -> None:
    """``inv -f receivers.yaml --dry monitoring.setup --env production`` by the real inv: the
    routing tree and the Secret step are printed with the variables' names, never their
    values; nothing reaches the cluster."""
    from conftest import run_inv

    recorder = recording_tools(PAGER)
    config = tmp_path / "receivers.yaml"
    config.write_text(yaml.safe_dump({"monitoring": {"alerting": CONFIG}}))
    env = {"PATH": recorder.path(), **SECRETS}
    argv = ["-f", str(config), "--dry", "monitoring.setup", "--env", "production"]
    done = run_inv(argv, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    tree = out[out.index("Alertmanager routing (monitoring.alerting)") :].splitlines()[1:6]
    assert tree == [
        "    group by alertname, namespace, environment, database; wait 30s, interval 5m, "
        + "repeat 4h",
        '    severity="critical" -> pager (pagerduty; secret $PD_KEY -> Secret key pager), mail '
        + "(email ops@example.com; secret $SMTP_PASSWORD -> Secret key mail)",
        '    severity="warning" -> chat (slack #ops; secret $SLACK_URL -> Secret key chat), hook '
        + "(webhook; secret $HOOK_URL -> Secret key hook)",
        "    anything else -> nobody (null)",
        "    a critical alert inhibits the warnings with the same alertname, namespace, "
        + "environment, database, location",
    ]
    assert "kubectl --context flowlet-production apply -f -" in out
    assert not any(s in done.stdout + done.stderr for s in SECRETS.values())
    assert cluster.requests == []
