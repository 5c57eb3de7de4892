"""The real helm binaries against a read-only fake API server that stores Helm releases.

Real ``helm history/status -o json`` output (Helm 4 and Helm 3) for the parsers, and the
stuck-release guard, history and status tasks end to end. The server refuses every write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT_NS, run_task
from fixtures_deploy import REPO, SAMPLES, FakeAPI, helm_env, need_tools, release_object, run_helm
from invoke import Collection

from tasks import deploy as deploy_collection
from tasks.deploy import helmout

pytestmark = pytest.mark.slow

NAMESPACE = "flowlet-staging"


@pytest.fixture
def stuck_release(fake_apiserver: FakeAPI, monkeypatch: pytest.MonkeyPatch) -> FakeAPI:
    """Revisions 1 superseded, 2 deployed, 3 pending-upgrade (an interrupted upgrade)."""
    need_tools()
    monkeypatch.setenv("KUBECONFIG", str(fake_apiserver.kubeconfig))
    fake_apiserver.releases += [
        release_object(1, "superseded", NAMESPACE, "Install complete"),
        release_object(2, "deployed", NAMESPACE, "flowlet-ops deploy env=staging git=abc"),
        release_object(3, "pending-upgrade", NAMESPACE, "Preparing upgrade"),
    ]
    return fake_apiserver


@pytest.mark.parametrize("major", [4, 3], ids=["helm4", "helm3"])
def test_parsers_read_real_helm_output(major: int, stuck_release: FakeAPI) -> None:
    common = ["--kube-context", "fake", "--namespace", NAMESPACE, "--output", "json"]
    history_text = run_helm(major, "history", "flowlet", *common).stdout
    history = helmout.parse_history(history_text)
    assert [(r.revision, r.status) for r in history] == [
        (1, "superseded"),
        (2, "deployed"),
        (3, "pending-upgrade"),
    ]
    assert history[1].description == "flowlet-ops deploy env=staging git=abc"
    assert (history[1].chart, history[1].app_version) == ("flowlet-0.1.0", "0.1.0")
    assert helmout.plan_recovery(history).revision == 2
    sample = json.loads((SAMPLES / f"helm{major}-history.json").read_text())
    assert set(json.loads(history_text)[0]) == set(sample[0])

    status_text = run_helm(major, "status", "flowlet", *common).stdout
    status = helmout.parse_status(status_text)
    assert (status.name, status.namespace, status.revision, status.status) == (
        "flowlet",
        NAMESPACE,
        3,
        "pending-upgrade",
    )
    assert "chart" not in json.loads(status_text), "helm status -o json carries no chart"
    assert status.chart == ""
    captured = json.loads((SAMPLES / f"helm{major}-status.json").read_text())
    assert set(json.loads(status_text)) == set(captured)
    assert all(r.startswith("GET ") for r in stuck_release.requests)


def inv(tmp_path: Path, *argv: str) -> int:
    config = tmp_path / "invoke.yaml"
    config.write_text(
        (REPO / "invoke.yaml").read_text()
        + f"run:\n  in_stream: false\ndeploy:\n  audit_log: {tmp_path / 'audit.jsonl'}\n"
    )
    return run_task(ROOT_NS, list(argv), config_file=config, cwd=REPO)


@pytest.mark.parametrize("major", [4, 3], ids=["helm4", "helm3"])
def test_stuck_release_stops_a_real_deploy(
    major: int,
    stuck_release: FakeAPI,
    tmp_path: Path,
    closing_pipes: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", helm_env(major)["PATH"])
    assert inv(tmp_path, "deploy", "--env=staging", "--context=fake") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "release flowlet in flowlet-staging is stuck in pending-upgrade (revision 3): another "
        "helm operation is running or was interrupted; if none is running, recover with: "
        "inv deploy.recover --env=staging --namespace=flowlet-staging --context=fake"
    )
    assert all(r.startswith("GET ") for r in stuck_release.requests)


def test_history_and_status_tasks(
    stuck_release: FakeAPI,
    tmp_path: Path,
    closing_pipes: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert inv(tmp_path, "deploy.history", "--env=staging", "--context=fake") == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if not line.startswith("    ")]
    assert lines[0] == ["REVISION", "UPDATED", "STATUS", "CHART", "APP", "VERSION", "DESCRIPTION"]
    assert [line[:3] for line in lines[1:]] == [
        ["1", "2026-11-21T10:00:00", "superseded"],
        ["2", "2026-11-22T10:00:00", "deployed"],
        ["3", "2026-11-23T10:00:00", "pending-upgrade"],
    ]
    assert inv(tmp_path, "deploy.status", "--env=staging", "--context=fake") == 0
    out = capsys.readouterr().out
    assert (
        "flowlet in flowlet-staging: revision 3 pending-upgrade; chart flowlet-0.1.0 (app 0.1.0); "
        "deployed 2026-11-23T10:00:00Z; Preparing upgrade"
    ) in out.splitlines()


def test_recover_rolls_back_to_the_last_deployed_revision(
    stuck_release: FakeAPI,
    tmp_path: Path,
    closing_pipes: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The fake server refuses writes, so helm's rollback fails: but it asked for revision 2."""
    code = inv(tmp_path, "deploy.recover", "--env=staging", "--context=fake", "--yes")
    captured = capsys.readouterr()
    assert "revision 3 is pending-upgrade: will roll back to revision 2" in captured.out
    assert code != 0 and "helm recover failed" in captured.err
    writes: list[Any] = [r for r in stuck_release.requests if not r.startswith("GET ")]
    assert writes and all(f"/namespaces/{NAMESPACE}/" in w for w in writes)
    record = json.loads((tmp_path / "audit.jsonl").read_text())
    assert (record["action"], record["result"], record["context"]) == ("recover", "failed", "fake")
