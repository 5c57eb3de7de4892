"""Opt-in live test against a real cluster: runs only when FLOWLET_LIVE_KUBE_CONTEXT is set.

    FLOWLET_LIVE_KUBE_CONTEXT=kind-flowlet \\
    FLOWLET_LIVE_IMAGE_TAG=0.1.0 \\
    python -m pytest tests/test_deploy_live.py -q

It runs ``inv setup --env staging`` (namespace, deploy lock, Secret from
FLOWLET_LIVE_DB_PASSWORD, deploy) with the staging values (or FLOWLET_LIVE_VALUES, e.g. to point
config.database at a reachable PostgreSQL, which the migration hook Job and the backend's
readiness probe need) into a throw-away namespace (FLOWLET_LIVE_NAMESPACE, default
``flowlet-live-<random>``), deploys again
(idempotent), checks ``deploy.status`` / ``deploy.history``, rolls back to revision 1, and
uninstalls and deletes the namespace at the end. The images
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
from conftest import run_inv

LIVE_CONTEXT = os.environ.get("FLOWLET_LIVE_KUBE_CONTEXT", "")
REAL_KUBECONFIG = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LIVE_CONTEXT, reason="set FLOWLET_LIVE_KUBE_CONTEXT to run"),
]


def test_live_setup_deploy_status_history_rollback(project: Path) -> None:
    namespace = os.environ.get("FLOWLET_LIVE_NAMESPACE") or f"flowlet-live-{secrets.token_hex(3)}"
    tag = os.environ.get("FLOWLET_LIVE_IMAGE_TAG", "0.1.0")
    config = yaml.safe_load((project / "invoke.yaml").read_text())
    staging = config["environments"]["staging"]
    staging.update(namespace=namespace, kube_context=LIVE_CONTEXT)
    if os.environ.get("FLOWLET_LIVE_VALUES"):
        staging["values_file"] = os.path.abspath(os.environ["FLOWLET_LIVE_VALUES"])
    config["deploy"] = {"timeout": "5m"}
    (project / "live.yaml").write_text(yaml.safe_dump(config))
    env = {
        "KUBECONFIG": REAL_KUBECONFIG,
        "FLOWLET_DB_PASSWORD": os.environ.get("FLOWLET_LIVE_DB_PASSWORD", "live-test-password"),
    }

    def inv(command: str) -> None:
        result = run_inv(f"inv -f live.yaml {command}", cwd=project, env=env, timeout=900)
        assert result.returncode == 0, result.stderr

    try:
        inv(f"setup --env staging --image-tag={tag} --allow-dirty")
        inv(f"deploy --env=staging --image-tag={tag}")  # idempotent
        inv("deploy.status --env=staging")
        inv("deploy.history --env=staging")
        inv("deploy.rollback --env=staging --revision=1")
        audit = (project / ".flowlet" / "deploy-audit.jsonl").read_text()
        assert audit.count('"result": "succeeded"') == 3
    finally:
        subprocess.run(
            [
                "helm",
                "--kube-context",
                LIVE_CONTEXT,
                "uninstall",
                "flowlet",
                "--namespace",
                namespace,
            ],
            check=False,
            timeout=300,
            env={**os.environ, "KUBECONFIG": REAL_KUBECONFIG},
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
            env={**os.environ, "KUBECONFIG": REAL_KUBECONFIG},
        )
