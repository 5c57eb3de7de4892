"""The backup-too-old page end to end, with the real parts on 127.0.0.1.

Debian's ``prometheus``, ``prometheus-alertmanager`` and ``prometheus-node-exporter`` run with
their own data dirs and free ports. ``inv backup.postgres`` backs up the test PostgreSQL,
``inv backup.check --textfile DIR --max-age 1s`` writes the metrics file, node-exporter's
textfile collector exports it, Prometheus scrapes it every second and evaluates the project's
backup rules (extracted from kube-prometheus-stack.yaml by the code ``monitoring.test-rules``
uses), and Alertmanager, configured with the routing ``monitoring.setup`` renders from
``monitoring.alerting``, pages ``FlowletBackupTooOld`` (critical) to the "pager" webhook of this
test with the labels backup.check wrote, and sends the warning ``FlowletBackupCheckNotRunning``
to "chat" only. After a fresh backup and a check with a normal ``--max-age`` the page
resolves.

One change to the rules, and only this one: every ``for:`` is cut to 2s (the shipped 5m-30m
would make the test wait that long); the expressions, labels and annotations are the shipped
ones (asserted). promtool's unit tests (test_monitoring_rules.py) cover the real ``for:``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, free_port, need, run_inv

from tasks.core.runner import child_setup
from tasks.monitoring import rules

pytestmark = pytest.mark.slow

KPS_VALUES = REPO / "kubernetes" / "monitoring" / "kube-prometheus-stack.yaml"
SHORT_FOR = "2s"
TIMEOUT = 120.0  # a loaded 2-core machine starts three Go servers and runs two inv's


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)  # the poll interval, not a wait for time to pass


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # nosec B310 (127.0.0.1)
            return str(response.read().decode())
    except OSError:
        return None


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self, path: str) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited {self.process.returncode}: {self.log.read_text()}")
        return http_get(self.url(path)) is not None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, argv: list[str], port: int, ready: str, logs: Path) -> Server:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # nosec B603
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=child_setup(death_signal=signal.SIGKILL),
        )
    server = Server(name, process, log, port)
    wait_until(lambda: server.ready(ready), TIMEOUT, f"{name} to answer {ready}")
    return server


@dataclass
class Webhook:
    """A tiny Alertmanager webhook receiver: every notification it was sent, in order."""

    port: int
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, body)

    def alerts(self, alertname: str, status: str, path: str | None = None) -> list[dict[str, Any]]:
        return [
            alert
            for where, note in list(self.received)
            for alert in note["alerts"]
            if alert["labels"].get("alertname") == alertname
            and alert["status"] == status
            and path in (None, where)
        ]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hook.port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()
    thread.join()


def shortened_rules() -> tuple[str, list[rules.RuleFile]]:
    """The shipped backup rules with every ``for:`` cut to SHORT_FOR (nothing else changed)."""
    shipped = rules.values_rule_files(KPS_VALUES.read_text(), str(KPS_VALUES))
    groups = []
    for rule_file in shipped:
        for group in rule_file.groups:
            copy = json.loads(json.dumps(group))
            for rule in copy["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR
            groups.append(copy)
    return yaml.safe_dump({"groups": groups}, sort_keys=False), shipped


# monitoring.alerting as a project would set it, with the test's timings: critical alerts page
# "pager", warnings go to "chat" (both webhooks of this test).
ALERTING = {
    "critical": ["pager"],
    "warning": ["chat"],
    "group_wait": "1s",
    "group_interval": "1s",
    "receivers": {
        "pager": {"type": "webhook", "secret_env": "PAGER_URL"},
        "chat": {"type": "webhook", "secret_env": "CHAT_URL"},
    },
}


def routing_config(port: int) -> dict[str, Any]:
    """The Alertmanager config ``monitoring.setup`` renders from ALERTING, with one change:
    Debian's Alertmanager 0.25 predates ``webhook_configs.url_file`` (the cluster's reads the
    URL from the receivers' Secret), so each webhook gets its URL inline."""
    from tasks.core.settings import Where
    from tasks.monitoring import alerting
    from tasks.monitoring.settings import ALERTING as SCHEMA

    config = alerting.alertmanager_config(SCHEMA.check(ALERTING, Where("monitoring.alerting")))
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            name = Path(hook.pop("url_file")).name
            hook["url"] = f"http://127.0.0.1:{port}/{name}"
    return config


@dataclass
class Stack:
    prometheus: Server
    alertmanager: Server
    node_exporter: Server
    textfile_dir: Path


@pytest.fixture
def stack(tmp_path: Path, webhook: Webhook) -> Iterator[Stack]:
    need("prometheus", "prometheus-alertmanager", "prometheus-node-exporter")
    logs = tmp_path / "logs"
    logs.mkdir()
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    rules_text, _ = shortened_rules()
    (tmp_path / "rules.yaml").write_text(rules_text)
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "node-exporter")}
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(routing_config(webhook.port)))
    prom_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": "node-exporter",
                "static_configs": [{"targets": [f"127.0.0.1:{ports['node-exporter']}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
    started: list[Server] = []
    try:
        node_exporter = start(
            "node-exporter",
            [
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{ports['node-exporter']}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={textfile_dir}",
            ],
            ports["node-exporter"],
            "/metrics",
            logs,
        )
        started.append(node_exporter)
        alertmanager = start(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",  # no gossip port: a single instance
            ],
            ports["alertmanager"],
            "/-/ready",
            logs,
        )
        started.append(alertmanager)
        prometheus = start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            ports["prometheus"],
            "/-/ready",
            logs,
        )
        started.append(prometheus)
        yield Stack(prometheus, alertmanager, node_exporter, textfile_dir)
    finally:
        for server in reversed(started):
            server.stop()


def test_only_for_is_shortened() -> None:
    """The e2e rules differ from the shipped ones in ``for:`` only."""
    text, shipped = shortened_rules()
    ours = yaml.safe_load(text)["groups"]
    theirs = [dict(g) for rf in shipped for g in rf.groups]
    for group in theirs:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    assert ours == theirs
    assert any("for" in r for g in ours for r in g["rules"])


def prometheus_alert(stack: Stack, alertname: str, state: str) -> dict[str, Any] | None:
    text = http_get(stack.prometheus.url("/api/v1/alerts"))
    if text is None:
        return None
    for alert in json.loads(text)["data"]["alerts"]:
        if alert["labels"].get("alertname") == alertname and alert["state"] == state:
            return dict(alert)
    return None


def exported(stack: Stack, needle: str) -> bool:
    return needle in (http_get(stack.node_exporter.url("/metrics")) or "")


def test_backup_too_old_pages_the_webhook_and_resolves(
    stack: Stack, webhook: Webhook, pg_backup_env: Any
) -> None:
    config = ["-f", str(pg_backup_env.config)]
    textfile = str(stack.textfile_dir)
    backup = run_inv([*config, "backup.postgres", "--database", "postgres"])
    assert backup.returncode == 0, backup.stderr

    check = [*config, "backup.check", "--database", "postgres", "--textfile", textfile]
    short = run_inv([*check, "--max-age", "1s"])
    # OK or CRITICAL depending on how long the check took; the file says max_age 1 either way
    assert short.returncode in (0, 2), short.stdout + short.stderr
    (prom,) = stack.textfile_dir.glob("*.prom")
    assert prom.name == "flowlet_backup_development_postgres_local.prom"
    labels = 'database="postgres",environment="development",location="local"'
    wait_until(
        lambda: exported(stack, f"flowlet_backup_max_age_seconds{{{labels}}} 1\n"),
        TIMEOUT,
        "node-exporter to export the textfile backup.check wrote",
    )
    assert exported(stack, "node_textfile_scrape_error 0")

    firing = wait_until(
        lambda: webhook.alerts("FlowletBackupTooOld", "firing", "/pager"),
        TIMEOUT,
        "Alertmanager to page FlowletBackupTooOld (critical) to the pager webhook",
    )
    alert = firing[0]
    assert alert["labels"] == {
        "alertname": "FlowletBackupTooOld",
        "severity": "critical",
        "environment": "development",
        "database": "postgres",
        "location": "local",
        "instance": f"127.0.0.1:{stack.node_exporter.port}",
        "job": "node-exporter",
    }
    assert alert["annotations"]["summary"] == (
        "Backup development/postgres at local is older than its limit"
    )
    assert "(limit: backup.check --max-age)" in alert["annotations"]["description"]
    assert prometheus_alert(stack, "FlowletBackupTooOld", "firing") is not None
    # the check (max-age 1s) is also older than twice its limit: a warning, sent to chat only
    stale = wait_until(
        lambda: webhook.alerts("FlowletBackupCheckNotRunning", "firing", "/chat"),
        TIMEOUT,
        "Alertmanager to send FlowletBackupCheckNotRunning (warning) to the chat webhook",
    )
    assert stale[0]["labels"]["severity"] == "warning"
    assert webhook.alerts("FlowletBackupCheckNotRunning", "firing", "/pager") == []

    again = run_inv([*config, "backup.postgres", "--database", "postgres"])
    assert again.returncode == 0, again.stderr
    normal = run_inv([*check, "--max-age", "1h"])
    assert normal.returncode == 0, normal.stdout + normal.stderr
    resolved = wait_until(
        lambda: webhook.alerts("FlowletBackupTooOld", "resolved", "/pager"),
        TIMEOUT,
        "Alertmanager to deliver the resolution of FlowletBackupTooOld",
    )
    assert resolved[0]["labels"] == alert["labels"]
    assert webhook.alerts("FlowletBackupTooOld", "firing", "/chat") == []  # critical: paged only
    assert prometheus_alert(stack, "FlowletBackupTooOld", "firing") is None
    assert os.listdir(stack.textfile_dir) == [prom.name]  # no temp file left beside it
