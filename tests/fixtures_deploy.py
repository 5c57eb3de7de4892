"""Fixtures for the deploy tests: helm binaries, a scratch project, configs and the strict mock
context's answers (kubeconfigs and the in-memory Kubernetes API server, ``cluster``, are in
tests/fixtures_kube.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import need
from fakekube import CONTEXTS, FakeKube, helm_release_secret
from invoke import Config, Result

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "kubernetes" / "flowlet-chart"
MANIFESTS = REPO / "kubernetes" / "manifests"
SAMPLES = Path(__file__).resolve().parent / "samples" / "deploy"
HELM4 = REPO / ".tools" / "bin" / "helm"
HELM3 = REPO / ".tools" / "helm3" / "helm"
SHA = "0123456789abcdef0123456789abcdef01234567"

ENVIRONMENTS = {
    # env: (namespace, kube context, values file)
    "development": ("flowlet-dev", "kind-flowlet", "values.yaml"),
    "staging": ("flowlet-staging", "flowlet-staging", "values-staging.yaml"),
    "production": ("flowlet-prod", "flowlet-production", "values-production.yaml"),
}


def helm_binary(major: int) -> Path:
    binary = HELM4 if major == 4 else HELM3
    if not binary.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is missing {binary}: .ci/install should have installed it")
        pytest.skip(f"needs {binary}")
    return binary


def helm_env(major: int) -> dict[str, str]:
    """A subprocess environment whose PATH puts this Helm major first."""
    binary = helm_binary(major)
    return {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{os.environ['PATH']}"}


def run_helm(major: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary(major)), *args],
        env=helm_env(major),
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def need_tools() -> None:
    need("helm", "kubectl", "git")


def git(root: Path, *args: str) -> str:
    argv = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A clean git checkout with the project's invoke.yaml, kubernetes/ and the task code (its
    audit log, .flowlet/ and build/ ignored), where ``inv`` runs as a user would run it."""
    need_tools()
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "invoke.yaml", root / "invoke.yaml")
    shutil.copytree(REPO / "kubernetes", root / "kubernetes")
    for name in ("tasks.py", "tasks"):
        os.symlink(REPO / name, root / name)
    (root / ".gitignore").write_text(".flowlet/\nbuild/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    return root


@pytest.fixture
def deploy_config(project_config: Config, tmp_path: Path) -> Config:
    """conftest's ``project_config`` (the root collection's defaults with the project's
    invoke.yaml); audit log in tmp."""
    project_config.deploy.audit_log = str(tmp_path / "audit.jsonl")
    return project_config


def history_json(*statuses: str, updated: str = "2026-11-2{n}T10:00:00.000000+00:00") -> str:
    """A ``helm history -o json`` answer with one revision per status (oldest first)."""
    return json.dumps(
        [
            {
                "revision": number,
                "updated": updated.format(n=number),
                "status": status,
                "chart": "flowlet-0.1.0",
                "app_version": "0.1.0",
                "description": "Upgrade complete" if number > 1 else "Install complete",
            }
            for number, status in enumerate(statuses, start=1)
        ]
    )


def status_json(revision: int, namespace: str, status: str = "deployed") -> str:
    sample = json.loads((SAMPLES / "helm4-install-dry-run.json").read_text())
    sample.update(version=revision, namespace=namespace)
    sample["info"]["status"] = status
    return json.dumps(sample)


KUBECTL_VERSION = json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}})
SECRET_JSON = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "flowlet-app"},
        "data": {"FLOWLET_DB_PASSWORD": "c2VjcmV0"},
    }
)


def lease_json(namespace: str, resource_version: str = "7") -> str:
    return json.dumps(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "flowlet-ops-lock-flowlet",
                "namespace": namespace,
                "resourceVersion": resource_version,
            },
            "spec": {"holderIdentity": "alice@host/1", "leaseDurationSeconds": 120},
        }
    )


@pytest.fixture
def cluster_answers() -> Callable[..., dict[Any, Any]]:
    """StrictMockContext results for one operation: local probes plus cluster answers."""

    def build(
        env: str,
        *,
        helm_version: str = "v4.1.4",
        history: str | Result = "[]",
        plugins: str = "NAME\tVERSION\tDESCRIPTION\n",
        porcelain: str = "",
        secret: str | Result = SECRET_JSON,
        extra: dict[Any, Any] | None = None,
    ) -> dict[Any, Any]:
        namespace, context, _ = ENVIRONMENTS[env]
        kubectl = f"kubectl --context {context} --namespace {namespace}"
        answers: dict[Any, Any] = {
            "helm version --template '{{.Version}}'": helm_version,
            "kubectl version --client --output json": KUBECTL_VERSION,
            "kubectl config get-contexts -o name": "\n".join(CONTEXTS),
            f"git -C {REPO} rev-parse HEAD": SHA + "\n",
            f"git -C {REPO} status --porcelain": porcelain,
            f"helm --kube-context {context} history --namespace {namespace} --max 20 "
            "--output json -- flowlet": history,
            "helm plugin list": plugins,
            f"helm --kube-context {context} status --namespace {namespace} "
            "--output json -- flowlet": status_json(2, namespace),
            f"helm --kube-context {context} history --namespace {namespace} --max 1 "
            "--output json -- flowlet": json.dumps(
                json.loads(history_json("superseded", "deployed"))[-1:]
            ),
            f"{kubectl} get secret flowlet-app --output json": secret,
            re.compile(
                rf"helm --kube-context {context} get manifest .* --revision \d+ -- flowlet"
            ): ('      image: "ghcr.io/flowlet/backend:0.1.0"\n'),
            f"{kubectl} create --filename - --output json": lease_json(namespace),
            re.compile(r"kubectl --context \S+ --namespace \S+ create secret generic .*"): (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: flowlet-app}\n"
                "data: {FLOWLET_DB_PASSWORD: c2VjcmV0}\n"
            ),
        }
        answers.update(extra or {})
        return answers

    return build


def release_object(
    version: int, status: str, namespace: str, description: str = "", updated: str = ""
) -> dict[str, Any]:
    """A Helm release (the release.v1 JSON Helm stores), based on the captured Helm 4 sample."""
    release = json.loads((SAMPLES / "helm4-install-dry-run.json").read_text())
    release.update(version=version, namespace=namespace)
    release["info"].update(
        status=status,
        description=description or f"Upgrade complete (revision {version})",
        last_deployed=updated or f"2026-11-2{version % 10}T10:00:00Z",
    )
    return release


def store_release(fake: FakeKube, release: dict[str, Any]) -> None:
    """Put a release into the fake cluster the way Helm's Secret driver stores it."""
    fake.put(helm_release_secret(release), manager="helm")


def inv_env(kubeconfig: Path, major: int = 4, **extra: str) -> dict[str, str]:
    """The environment of an ``inv`` a test starts: this kubeconfig, this Helm major first."""
    return {"KUBECONFIG": str(kubeconfig), "PATH": helm_env(major)["PATH"], **extra}
