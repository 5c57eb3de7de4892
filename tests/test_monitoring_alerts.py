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

The same harness scrapes the example backend (on its own database of the test PostgreSQL) as
the chart's ServiceMonitor would, with the chart's rules as production renders them; dropping
its table makes every request a 503, and ``FlowletHighErrorRate`` is paged. Its /metrics text
passes ``promtool check metrics``.

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
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, free_port, need, readme, run_inv

from tasks.core.runner import child_setup
from tasks.monitoring import rules

pytestmark = pytest.mark.slow

KPS_VALUES = REPO / "kubernetes" / "monitoring" / "kube-prometheus-stack.yaml"
CHART = REPO / "kubernetes" / "flowlet-chart"
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


def shortened(shipped: list[rules.RuleFile]) -> str:
    """The rule files' groups with every ``for:`` cut to SHORT_FOR (nothing else changed)."""
    groups = []
    for rule_file in shipped:
        for group in rule_file.groups:
            copy = json.loads(json.dumps(group))
            for rule in copy["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR
            groups.append(copy)
    return str(yaml.safe_dump({"groups": groups}, sort_keys=False))


def backup_rules() -> list[rules.RuleFile]:
    return rules.values_rule_files(KPS_VALUES.read_text(), str(KPS_VALUES))


def chart_rules(env: str = "production") -> list[rules.RuleFile]:
    """The Flowlet chart's PrometheusRule as ``inv deploy --env production`` renders it."""
    from tasks.deploy.commands import template_argv
    from tasks.deploy.plan import ChartInputs, Target

    namespace, values = {"production": ("flowlet-prod", "values-production.yaml")}[env]
    argv = template_argv(
        Target(env, namespace, "", "flowlet"),
        ChartInputs(CHART, CHART / values, "flowlet-app", 600),
    )
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return rules.chart_rule_files(env, out, str(CHART))


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


def start_stack(
    tmp_path: Path, webhook: Webhook, rule_text: str, scrapes: dict[str, tuple[int, dict[str, str]]]
) -> tuple[Stack, list[Server]]:
    """node-exporter (textfile collector), Alertmanager (the toolkit's routing) and Prometheus
    (1s scrapes and evaluations of ``rule_text``; ``scrapes``: job -> (port, target labels))."""
    need("prometheus", "prometheus-alertmanager", "prometheus-node-exporter")
    logs = tmp_path / "logs"
    logs.mkdir()
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    (tmp_path / "rules.yaml").write_text(rule_text)
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "node-exporter")}
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(routing_config(webhook.port)))
    jobs = {"node-exporter": (ports["node-exporter"], {}), **scrapes}
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
                "job_name": job,
                "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": labels}],
            }
            for job, (port, labels) in jobs.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
    started: list[Server] = []
    try:
        started.append(
            start(
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
        )
        started.append(
            start(
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
        )
        started.append(
            start(
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
        )
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    node_exporter, alertmanager, prometheus = started
    return Stack(prometheus, alertmanager, node_exporter, textfile_dir), started


@pytest.fixture
def stack(tmp_path: Path, webhook: Webhook) -> Iterator[Stack]:
    """The stack with the shipped backup rules."""
    built, started = start_stack(tmp_path, webhook, shortened(backup_rules()), {})
    try:
        yield built
    finally:
        for server in reversed(started):
            server.stop()


def test_only_for_is_shortened() -> None:
    """The e2e rules differ from the shipped ones in ``for:`` only."""
    need("helm")
    shipped = backup_rules() + chart_rules()
    ours = yaml.safe_load(shortened(shipped))["groups"]
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


@dataclass
class Backend:
    port: int
    database: str
    server: Server

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(  # nosec B310 (127.0.0.1)
                f"http://127.0.0.1:{self.port}{path}", timeout=10
            ) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0


@pytest.fixture
def backend(pg_server: Any, tmp_path: Path) -> Iterator[Backend]:
    """The example backend (examples/backend) on a database of its own in the test PostgreSQL."""
    import secrets
    import sys

    database = pg_server.create_db("alerts_" + secrets.token_hex(4))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "examples" / "backend"),
        "FLOWLET_DB_DSN": f"host={pg_server.host} port={pg_server.port} dbname={database} "
        f"user={pg_server.user}",
        "FLOWLET_DB_PASSWORD": pg_server.password,
        "FLOWLET_BACKEND_PORT": str(port),
    }
    log = tmp_path / "backend.log"
    migrated = subprocess.run(  # nosec B603 - the backend serves only a migrated schema
        [sys.executable, "-m", "flowlet_backend.migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with log.open("wb") as out:
        process = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "flowlet_backend.app"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            preexec_fn=child_setup(death_signal=signal.SIGKILL),
        )
    server = Server("backend", process, log, port)
    try:
        wait_until(lambda: server.ready("/healthz"), TIMEOUT, "the backend to answer /healthz")
        yield Backend(port, database, server)
    finally:
        server.stop()
        pg_server.sql(f'drop database "{database}" with (force)')


def test_5xx_storm_pages_high_error_rate(
    tmp_path: Path, webhook: Webhook, backend: Backend, pg_server: Any
) -> None:
    """The example backend scraped as the chart's ServiceMonitor would (job flowlet-backend,
    namespace flowlet-prod), the chart's rules as production renders them: when its database
    loses the accounts table, every request answers 503, and FlowletHighErrorRate is paged.
    Its /metrics passes ``promtool check metrics``. (Its resolution takes the rule's 5m rate
    window; the promtool unit tests cover that side.)"""
    need("promtool", "helm")
    labels = {"namespace": "flowlet-prod"}
    built, started = start_stack(
        tmp_path, webhook, shortened(chart_rules()), {"flowlet-backend": (backend.port, labels)}
    )
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            backend.get("/api/accounts")
            stop.wait(0.02)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        assert backend.get("/api/accounts") == 200

        def counted() -> str | None:  # the backend counts a request after it has answered it
            text = http_get(f"http://127.0.0.1:{backend.port}/metrics")
            return text if text and 'route="/api/accounts",status="200"' in text else None

        metrics = wait_until(counted, TIMEOUT, "the backend to count /api/accounts")
        check = subprocess.run(
            ["promtool", "check", "metrics"],
            input=metrics,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        wait_until(
            lambda: prometheus_has(built, 'flowlet_http_requests_total{job="flowlet-backend"}'),
            TIMEOUT,
            "Prometheus to scrape the backend",
        )
        assert webhook.alerts("FlowletHighErrorRate", "firing") == []

        pg_server.sql("drop table accounts cascade", backend.database)  # the injected fault
        assert backend.get("/api/accounts") == 503
        paged = wait_until(
            lambda: webhook.alerts("FlowletHighErrorRate", "firing", "/pager"),
            TIMEOUT,
            "Alertmanager to page FlowletHighErrorRate",
        )
        assert paged[0]["labels"] == {"alertname": "FlowletHighErrorRate", "severity": "critical"}
        description = paged[0]["annotations"]["description"]
        assert "of the requests to flowlet-backend in flowlet-prod failed with a 5xx" in description
        assert "(threshold 0.02)" in description
    finally:
        stop.set()
        thread.join()
        for server in reversed(started):
            server.stop()


def prometheus_has(stack: Stack, selector: str) -> bool:
    query = urllib.parse.urlencode({"query": selector})
    text = http_get(stack.prometheus.url(f"/api/v1/query?{query}"))
    return bool(text and json.loads(text)["data"]["result"])


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[Server]:
    """Alertmanager alone, with the routing ``monitoring.alerting`` renders (ALERTING)."""
    need("prometheus-alertmanager")
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(routing_config(webhook.port)))
    port = free_port()
    server = start(
        "alertmanager",
        [
            "prometheus-alertmanager",
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        port,
        "/-/ready",
        logs,
    )
    try:
        yield server
    finally:
        server.stop()


@readme(
    "inv monitoring.test-alert --env staging",
    "inv monitoring.test-alert --env staging --severity warning --receiver chat",
)
def test_test_alert_reports_where_alertmanager_routed_it(
    cluster: Any, recording_tools: Any, alertmanager: Server, webhook: Webhook
) -> None:
    """``inv monitoring.test-alert`` through the (recorded) kubectl port-forward to a real
    Alertmanager: it prints the receivers Alertmanager itself reports, and the page arrives.
    The recording kubectl answers port-forward without binding, so the local port is the real
    Alertmanager's."""
    recorder = recording_tools("no-secret-here")
    env = {"PATH": recorder.path()}
    port = ["--port", str(alertmanager.port)]
    critical = run_inv(["monitoring.test-alert", "--env", "staging", *port], env=env)
    assert critical.returncode == 0, critical.stdout + critical.stderr
    assert critical.stdout.splitlines()[-1] == "FlowletTestAlert (critical) routed to: pager"
    assert (
        f"kubectl --context flowlet-staging --namespace monitoring port-forward "
        f"svc/kube-prometheus-stack-alertmanager {alertmanager.port}:9093" in recorder.argvs()
    )
    paged = wait_until(
        lambda: webhook.alerts("FlowletTestAlert", "firing", "/pager"),
        TIMEOUT,
        "the test alert to reach the pager webhook",
    )
    assert paged[0]["labels"]["flowlet_test"] == "true"
    assert paged[0]["labels"]["environment"] == "staging"

    argv = ["monitoring.test-alert", "--env", "staging", "--severity", "warning", *port]
    warning = run_inv([*argv, "--receiver", "chat"], env=env)
    assert warning.returncode == 0, warning.stdout + warning.stderr
    assert warning.stdout.splitlines()[-1] == "FlowletTestAlert (warning) routed to: chat"

    wrong = run_inv([*argv, "--receiver", "pager"], env=env)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "the warning test alert was routed to chat, not pager"


@readme("inv --dry monitoring.test-alert --env production")
def test_test_alert_dry_posts_nothing(cluster: Any, recording_tools: Any) -> None:
    recorder = recording_tools("no-secret-here")
    done = run_inv(
        "inv --dry monitoring.test-alert --env production", env={"PATH": recorder.path()}
    )
    assert done.returncode == 0, done.stderr
    assert "POST http://127.0.0.1:9093/api/v2/alerts" in done.stdout
    assert '"alertname": "FlowletTestAlert", "severity": "critical"' in done.stdout
    assert not any("port-forward" in argv for argv in recorder.argvs())
