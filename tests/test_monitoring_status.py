"""monitoring.status: kubectl JSON samples (tests/data/monitoring) into the table and --json."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import fails_with
from fixtures_monitoring import CONTEXTS, canned, load
from invoke import Result

from tasks import monitoring
from tasks.monitoring.workloads import (
    Workload,
    format_age,
    load_list,
    parse_workloads,
    render_table,
    restarts_by_workload,
)

NOW = datetime(2026, 11, 27, 5, 0, 0, tzinfo=timezone.utc)


def rows(prefix: str) -> list[Workload]:
    workloads = load_list(load(f"{prefix}-workloads.json"), "workloads")
    pods = load_list(load(f"{prefix}-pods.json"), "pods")
    return parse_workloads(workloads, pods, NOW)


def test_monitoring_namespace_sample() -> None:
    got = {(w.kind, w.name): (w.ready, w.desired, w.restarts) for w in rows("monitoring")}
    assert got == {
        ("Deployment", "jaeger"): (1, 1, 0),
        ("Deployment", "kube-prometheus-stack-grafana"): (1, 1, 1),
        ("Deployment", "kube-prometheus-stack-kube-state-metrics"): (1, 1, 0),
        ("Deployment", "kube-prometheus-stack-operator"): (1, 1, 0),
        ("StatefulSet", "alertmanager-kube-prometheus-stack-alertmanager"): (1, 1, 0),
        ("StatefulSet", "loki"): (1, 1, 2),
        ("StatefulSet", "prometheus-kube-prometheus-stack-prometheus"): (1, 1, 1),  # init
        ("DaemonSet", "alloy"): (2, 2, 1),
        ("DaemonSet", "kube-prometheus-stack-prometheus-node-exporter"): (2, 2, 0),
    }
    assert all(w.ok for w in rows("monitoring"))


def test_app_namespace_sample_has_a_crashlooping_frontend() -> None:
    backend, frontend = rows("app")
    assert (backend.name, backend.ready, backend.desired, backend.restarts, backend.ok) == (
        "flowlet-backend",
        2,
        2,
        3,
        True,
    )
    assert (frontend.name, frontend.ready, frontend.desired, frontend.restarts, frontend.ok) == (
        "flowlet-frontend",
        1,
        2,
        7,
        False,
    )
    assert format_age(backend.age_seconds) == "6d19h"


def test_job_pods_and_replicaset_names_map_to_their_owners() -> None:
    pods = load_list(load("monitoring-pods.json"), "pods")
    owners = restarts_by_workload(pods)
    assert ("Deployment", "kube-prometheus-stack-operator") in owners
    assert not any(name.startswith("loki-minio") for _, name in owners)


def test_unready_deployment_without_ready_replicas_field() -> None:
    """kubectl omits zero counts: a Deployment with no ready pod has no readyReplicas key."""
    item = {
        "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "n", "creationTimestamp": "2026-11-27T04:59:00Z"},
        "spec": {"replicas": 3},
        "status": {"replicas": 3, "unavailableReplicas": 3},
    }
    (row,) = parse_workloads([item], [], NOW)
    assert (row.ready, row.desired, row.ok, format_age(row.age_seconds)) == (0, 3, False, "60s")


AGES = [
    (0, "0s"),
    (119, "119s"),
    (120, "2m"),
    (150, "2m30s"),
    (600, "10m"),
    (10799, "179m"),
    (10800, "3h"),
    (11100, "3h5m"),
    (28800, "8h"),
    (172799, "47h"),
    (172800, "2d"),
    (180000, "2d2h"),
    (8 * 86400, "8d"),
    (2 * 365 * 86400, "2y"),
    (2 * 365 * 86400 + 5 * 86400, "2y5d"),
    (9 * 365 * 86400, "9y"),
]


@pytest.mark.parametrize("seconds,text", AGES, ids=[text for _, text in AGES])
def test_format_age(seconds: int, text: str) -> None:
    assert format_age(seconds) == text


def test_render_table() -> None:
    table = render_table(rows("app"), ["monitoring"])
    assert table.splitlines() == [
        "NAMESPACE        KIND        NAME              READY  RESTARTS  AGE    STATUS",
        "flowlet-staging  Deployment  flowlet-backend   2/2    3         6d19h  ok",
        "flowlet-staging  Deployment  flowlet-frontend  1/2    7         6d19h  NOT READY",
        "monitoring: no workloads found (not installed?)",
    ]


@pytest.mark.parametrize(
    "text,message",
    [("not json", "x: cannot parse kubectl's JSON output"), ("[]", "x: expected a kubectl List")],
    ids=["garbage", "not-a-list"],
)
def test_load_list_errors(text: str, message: str) -> None:
    with fails_with(match=message):
        load_list(text, "x")


def status_answers(app: str = "app", mon: str = "monitoring") -> dict[Any, Any]:
    def get(ns: str, what: str) -> str:
        return f"kubectl --context flowlet-staging --namespace {ns} get {what} -o json"

    def sample(prefix: str, kind: str) -> str:
        return load("empty.json") if prefix == "empty" else load(f"{prefix}-{kind}.json")

    return canned(
        overrides={
            get("flowlet-staging", "deployments,statefulsets,daemonsets"): sample(app, "workloads"),
            get("flowlet-staging", "pods"): sample(app, "pods"),
            get("monitoring", "deployments,statefulsets,daemonsets"): sample(mon, "workloads"),
            get("monitoring", "pods"): sample(mon, "pods"),
        }
    )


def test_status_task_table_and_exit_code(
    mon_config: Any, recording_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    c = recording_context(mon_config(), status_answers())
    with fails_with() as err:
        monitoring.status(c, env="staging")
    assert (err.value.code, err.value.message) == (1, "1 not ready")
    assert c.commands == [
        CONTEXTS,
        (
            "kubectl --context flowlet-staging --namespace flowlet-staging get "
            "deployments,statefulsets,daemonsets -o json"
        ),
        "kubectl --context flowlet-staging --namespace flowlet-staging get pods -o json",
        (
            "kubectl --context flowlet-staging --namespace monitoring get "
            "deployments,statefulsets,daemonsets -o json"
        ),
        "kubectl --context flowlet-staging --namespace monitoring get pods -o json",
    ]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 2 + 9
    assert out[2].startswith("flowlet-staging  Deployment   flowlet-frontend")
    assert out[2].endswith("NOT READY")


def test_status_json_all_ready(
    mon_config: Any, recording_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    c = recording_context(mon_config(), status_answers(app="monitoring"))
    # the app namespace answered with the monitoring sample: everything ready, exit 0
    monitoring.status(c, env="staging", json=True)
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["empty_namespaces"] == []
    first = report["workloads"][0]
    assert set(first) == {
        "namespace",
        "kind",
        "name",
        "ready",
        "desired",
        "restarts",
        "age_seconds",
        "age",
        "ok",
    }


def test_status_json_empty_namespace_is_not_ok(
    mon_config: Any, recording_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    c = recording_context(mon_config(), status_answers(app="monitoring", mon="empty"))
    with fails_with() as err:
        monitoring.status(c, env="staging", json=True)
    assert err.value.code == 1
    assert json.loads(capsys.readouterr().out)["empty_namespaces"] == ["monitoring"]


def test_status_kubectl_failure_keeps_its_exit_code(
    mon_config: Any, recording_context: Any
) -> None:
    failed = Result(stdout="", stderr="error: You must be logged in to the server", exited=7)
    answers = canned(
        overrides={
            "kubectl --context flowlet-staging --namespace team-a get "
            "deployments,statefulsets,daemonsets -o json": failed
        }
    )
    c = recording_context(mon_config(), answers)
    with fails_with() as err:
        monitoring.status(c, env="staging", app_namespace="team-a")
    assert err.value.code == 7
    assert err.value.message == (
        "kubectl get deployments,statefulsets,daemonsets -n team-a failed (exit 7): "
        "error: You must be logged in to the server"
    )


def test_status_rejects_a_bad_app_namespace(mon_config: Any, recording_context: Any) -> None:
    c = recording_context(mon_config(), canned())
    with fails_with(
        match=r"^--app-namespace: 'Team A' is not valid; valid: a DNS-1123 label", code=1
    ):
        monitoring.status(c, env="staging", app_namespace="Team A")
    assert c.commands == []
