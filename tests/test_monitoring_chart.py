"""The Flowlet chart's ServiceMonitor, PrometheusRule and dashboard, rendered by the real helm.

Checked structurally: the ServiceMonitor selects the backend Service (and only it) on a port the
Service has; the `release` label is the configured kube-prometheus-stack release; every rule
expression parses as PromQL and uses only metrics the example backend really exports (rendered by
its own Metrics class and parsed as Prometheus text format) or standard kube-state-metrics names;
the dashboard JSON loads and queries only the backend's metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from conftest import need
from fixtures_monitoring import REPO

from tasks.monitoring.settings import SCHEMA

CHART = REPO / "kubernetes" / "flowlet-chart"
HELMS = {"helm4": REPO / ".tools" / "bin" / "helm", "helm3": REPO / ".tools" / "helm3" / "helm"}
NAMESPACE = "flowlet-staging"
RELEASE = "flowlet"
SWITCHES = [
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboard.enabled=true",
]
# Standard kube-state-metrics series (kube-prometheus-stack ships kube-state-metrics).
KUBE_STATE_METRICS = {
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas",
    "kube_deployment_status_replicas_available",
    "kube_deployment_status_replicas_unavailable",
    "kube_deployment_status_replicas_updated",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_waiting_reason",
    "kube_pod_status_phase",
    "kube_pod_status_ready",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHART / "Chart.yaml").exists(),
        reason="kubernetes/flowlet-chart/Chart.yaml is absent (the chart comes from the deploy "
        "branch)",
    ),
]


def render(helm: Path, *sets: str, json_sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``helm template`` with ``--set`` (and ``--set-json``: Helm's --set makes 0.01 a string)."""
    need("helm")
    if not helm.exists():
        pytest.skip(f"{helm} not installed (.ci/install provides it)")
    argv = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for value in sets:
        argv += ["--set", value]
    for value in json_sets:
        argv += ["--set-json", value]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=sorted(HELMS), ids=sorted(HELMS))
def manifests(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("helm-home")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse safety net is per test
        mp.setenv("HOME", str(home))
        mp.setenv("KUBECONFIG", str(home / "kubeconfig"))
        yield render(HELMS[request.param], *SWITCHES)


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def metric_names(expr: str) -> set[str]:
    """Names of every vector selector in a PromQL expression (parsing it on the way)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def matchers(expr: str) -> dict[str, set[str]]:
    """Label name -> the values it is matched with (``=`` matchers only) in ``expr``."""
    found: dict[str, set[str]] = {}

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            for m in node.matchers.matchers:
                if m.op == promql_parser.MatchOp.Equal:
                    found.setdefault(m.name, set()).add(m.value)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


@pytest.fixture(scope="module")
def backend_metrics() -> set[str]:
    """Sample names the example backend's real Metrics class renders, parsed as text format."""
    from prometheus_client.parser import text_string_to_metric_families

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(REPO / "examples" / "backend"))
        from flowlet_backend.app import Metrics

    metrics = Metrics()
    metrics.observe("GET", "/api/accounts", 200, 0.012)
    metrics.observe("POST", "/api/transactions", 503, 1.7)
    metrics.observe("GET", "/healthz", 200, 0.002)
    families = list(text_string_to_metric_families(metrics.render()))
    assert {f.type for f in families} == {"counter", "histogram", "gauge"}
    return {sample.name for family in families for sample in family.samples}


def test_monitoring_objects_are_off_by_default() -> None:
    docs = render(HELMS["helm4"])
    assert not {d["kind"] for d in docs} & {"ServiceMonitor", "PrometheusRule"}
    assert not any("grafana_dashboard" in (d["metadata"].get("labels") or {}) for d in docs)


def test_service_monitor_selects_the_backend_service(manifests: list[dict[str, Any]]) -> None:
    monitor = one(manifests, "ServiceMonitor")
    backend = one(manifests, "Service", f"{RELEASE}-backend")
    frontend = one(manifests, "Service", f"{RELEASE}-frontend")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= backend["metadata"]["labels"].items()
    assert not selector.items() <= frontend["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    ports = {p["name"] for p in backend["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    # the Service's port reaches the container port serving /metrics
    deployment = one(manifests, "Deployment", f"{RELEASE}-backend")
    container_ports = {
        p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]
    }
    target = next(
        p["targetPort"] for p in backend["spec"]["ports"] if p["name"] == endpoint["port"]
    )
    assert target in container_ports


def test_release_label_is_the_configured_kube_prometheus_stack(
    manifests: list[dict[str, Any]],
) -> None:
    release = SCHEMA.defaults()["components"]["kube_prometheus_stack"]["release"]
    chart_default = yaml.safe_load((CHART / "values.yaml").read_text())["monitoring"]["release"]
    assert chart_default == release
    labelled = [one(manifests, "ServiceMonitor"), one(manifests, "PrometheusRule")]
    labelled.append(one(manifests, "ConfigMap", f"{RELEASE}-dashboard"))
    assert [d["metadata"]["labels"]["release"] for d in labelled] == [release] * 3


def test_prometheus_rules_parse_and_use_known_metrics(
    manifests: list[dict[str, Any]], backend_metrics: set[str]
) -> None:
    rules = [r for g in one(manifests, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == {
        "FlowletHighErrorRate",
        "FlowletHighLatencyP99",
        "FlowletPodRestarting",
        "FlowletDeploymentUnavailable",
    }
    used: set[str] = set()
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names <= backend_metrics | KUBE_STATE_METRICS, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        used |= names
        found = matchers(rule["expr"])
        assert found["namespace"] == {NAMESPACE}, rule["alert"]
        if any(n.startswith("flowlet_") for n in names):
            assert found["job"] == {f"{RELEASE}-backend"}  # Prometheus' job = the Service name
    assert {n for n in used if n.startswith("flowlet_")} == {
        "flowlet_http_requests_total",
        "flowlet_http_request_duration_seconds_bucket",
    }


def test_dashboard_loads_and_queries_only_backend_metrics(
    manifests: list[dict[str, Any]], backend_metrics: set[str]
) -> None:
    config_map = one(manifests, "ConfigMap", f"{RELEASE}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    dashboard = json.loads(text)
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 8
    variables = [
        v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    for query in variables:  # label_values(<series selector>, <label>)
        match = re.fullmatch(r"label_values\((.+), \w+\)", query)
        assert match, query
        exprs.append(match.group(1))
    used: set[str] = set()
    for expr in exprs:
        # Grafana's variables are not PromQL: substitute what Grafana would.
        concrete = expr.replace("$__rate_interval", "5m")
        concrete = re.sub(r"\$\{?(\w+)\}?", "x", concrete)
        used |= metric_names(concrete)
    assert used <= backend_metrics
    assert used >= {
        "flowlet_http_requests_total",
        "flowlet_http_request_duration_seconds_bucket",
        "flowlet_up",
    }
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    assert "request rate" in titles and "error" in titles and "latency" in titles


def test_rule_thresholds_come_from_values() -> None:
    docs = render(
        HELMS["helm4"],
        "monitoring.prometheusRule.enabled=true",
        json_sets=(
            "monitoring.prometheusRule.errorRateThreshold=0.01",
            "monitoring.prometheusRule.latencyP99Seconds=0.25",
        ),
    )
    rules = {
        r["alert"]: r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }
    assert rules["FlowletHighErrorRate"]["expr"].endswith(") > 0.01")
    assert rules["FlowletHighLatencyP99"]["expr"].endswith(") > 0.25")
    assert not {"ServiceMonitor"} & {d["kind"] for d in docs}  # each switch on its own
