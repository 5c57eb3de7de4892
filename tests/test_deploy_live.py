"""Opt-in live test against a real cluster: runs only when FLOWLET_LIVE_KUBE_CONTEXT is set.

    FLOWLET_LIVE_KUBE_CONTEXT=kind-flowlet \\
    FLOWLET_LIVE_IMAGE_TAG=0.1.0 \\
    python -m pytest tests/test_deploy_live.py -q

It runs ``setup_cluster`` (namespace, Secret from FLOWLET_LIVE_DB_PASSWORD, deploy) with the
staging values (or FLOWLET_LIVE_VALUES, e.g. to point config.database at a reachable
PostgreSQL, which the backend's readiness probe needs) into a throw-away namespace
(FLOWLET_LIVE_NAMESPACE, default ``flowlet-live-<random>``), deploys again (idempotent), checks
``deploy.status`` / ``deploy.history``, rolls back to revision 1, and uninstalls and deletes the
namespace at the end. The images
``ghcr.io/flowlet/{backend,frontend}:<FLOWLET_LIVE_IMAGE_TAG>`` must be pullable by the cluster
(for kind: ``kind load docker-image``), and the kubeconfig is the one from your environment
(``KUBECONFIG`` or ``~/.kube/config``), read before the test safety net replaces it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT_NS, run_task
from fixtures_deploy import REPO
from invoke import Collection, Config, Context

from tasks import deploy as deploy_collection
from tasks.deploy import setup_cluster
from tasks.core.environments import resolve_environment

LIVE_CONTEXT = os.environ.get("FLOWLET_LIVE_KUBE_CONTEXT", "")
REAL_KUBECONFIG = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LIVE_CONTEXT, reason="set FLOWLET_LIVE_KUBE_CONTEXT to run"),
]


def test_live_setup_deploy_status_history_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closing_pipes: None
) -> None:
    monkeypatch.setenv("KUBECONFIG", REAL_KUBECONFIG)
    monkeypatch.setenv(
        "FLOWLET_DB_PASSWORD", os.environ.get("FLOWLET_LIVE_DB_PASSWORD", "live-test-password")
    )
    namespace = os.environ.get("FLOWLET_LIVE_NAMESPACE") or f"flowlet-live-{secrets.token_hex(3)}"
    tag = os.environ.get("FLOWLET_LIVE_IMAGE_TAG", "0.1.0")
    settings = yaml.safe_load((REPO / "invoke.yaml").read_text())
    staging = settings["environments"]["staging"]
    staging.update(namespace=namespace, kube_context=LIVE_CONTEXT)
    staging["values_file"] = os.environ.get("FLOWLET_LIVE_VALUES") or str(
        REPO / staging["values_file"]
    )
    settings["deploy"] = {"audit_log": str(tmp_path / "audit.jsonl"), "timeout": "5m"}
    settings["run"] = {"in_stream": False}
    config_file = tmp_path / "invoke.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    ns = ROOT_NS

    def inv(*argv: str) -> int:
        return run_task(ns, list(argv), config_file=config_file, cwd=REPO)

    try:
        config = Config(
            defaults={**Config.global_defaults(), **deploy_collection.ns.configuration()}
        )
        config.set_runtime_path(str(config_file))
        config.load_runtime()
        c = Context(config=config)
        environment = resolve_environment(c, "staging", None, require=("values_file",))
        setup_cluster(c, environment, yes=True, allow_dirty=True, image_tag=tag)
        assert inv("deploy", "--env=staging", f"--image-tag={tag}", "--yes") == 0  # idempotent
        assert inv("deploy.status", "--env=staging") == 0
        assert inv("deploy.history", "--env=staging") == 0
        assert inv("deploy.rollback", "--env=staging", "--revision=1", "--yes") == 0
        assert (tmp_path / "audit.jsonl").read_text().count('"result": "succeeded"') == 3
    finally:
        kube = ["--kube-context", LIVE_CONTEXT]
        subprocess.run(
            ["helm", *kube, "uninstall", "flowlet", "--namespace", namespace],
            check=False,
            timeout=300,
        )
        subprocess.run(
            [
                "kubectl",
                "--context",
                LIVE_CONTEXT,
                "delete",
                "namespace",
                namespace,
                "--wait=false",
            ],
            check=False,
            timeout=120,
        )
