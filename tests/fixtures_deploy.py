"""Fixtures for the deploy tests: helm binaries, a kubeconfig, configs, and mock cluster answers."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from invoke import Config, Result

from tasks import deploy

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
        timeout=60,
    )


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig with the project's contexts, pointing at a closed port (no cluster)."""
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "nobody", "user": {"token": "not-a-real-token"}}],
        "contexts": [
            {"name": ctx, "context": {"cluster": "nowhere", "user": "nobody"}}
            for _, ctx, _ in ENVIRONMENTS.values()
        ],
        "current-context": "kind-flowlet",
    }
    path.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def deploy_config(tmp_path: Path) -> Config:
    """The project's invoke.yaml over the deploy collection's defaults; audit log in tmp."""
    config = Config(defaults={**Config.global_defaults(), **deploy.ns.configuration()})
    config.set_project_location(str(REPO))
    config.load_project()
    config.deploy.audit_log = str(tmp_path / "audit.jsonl")
    return config


def history_json(*statuses: str) -> str:
    """A ``helm history -o json`` answer with one revision per status (oldest first)."""
    return json.dumps(
        [
            {
                "revision": number,
                "updated": f"2026-11-2{number}T10:00:00.000000+00:00",
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


@pytest.fixture
def cluster_answers() -> Callable[..., dict[Any, Any]]:
    """Build StrictMockContext results for one deploy: local probes plus cluster answers."""

    def build(
        env: str,
        *,
        helm_version: str = "v4.1.4",
        history: str | Result = "[]",
        plugins: str = "NAME\tVERSION\tDESCRIPTION\n",
        porcelain: str = "",
        extra: dict[Any, Any] | None = None,
    ) -> dict[Any, Any]:
        namespace, context, _ = ENVIRONMENTS[env]
        answers: dict[Any, Any] = {
            "helm version --template '{{.Version}}'": helm_version,
            "kubectl version --client --output json": KUBECTL_VERSION,
            "kubectl config get-contexts -o name": "\n".join(
                ctx for _, ctx, _ in ENVIRONMENTS.values()
            ),
            f"git -C {REPO} rev-parse HEAD": SHA + "\n",
            f"git -C {REPO} status --porcelain": porcelain,
            f"helm --kube-context {context} history flowlet --namespace {namespace} --max 20 "
            "--output json": history,
            "helm plugin list": plugins,
            f"helm --kube-context {context} status flowlet --namespace {namespace} --output json": (
                status_json(2, namespace)
            ),
            f"helm --kube-context {context} history flowlet --namespace {namespace} --max 1 "
            "--output json": json.dumps(json.loads(history_json("superseded", "deployed"))[-1:]),
        }
        answers.update(extra or {})
        return answers

    return build


def need_tools() -> None:
    for binary in ("helm", "kubectl", "git"):
        if shutil.which(binary) is None:
            if os.environ.get("CI"):
                pytest.fail(f"CI is missing {binary}")
            pytest.skip(f"needs {binary}")


# -- a read-only fake Kubernetes API server --------------------------------------------------

_API_RESOURCES = {
    "v1": [("configmaps", "ConfigMap"), ("services", "Service"), ("secrets", "Secret"),
           ("serviceaccounts", "ServiceAccount"), ("namespaces", "Namespace")],
    "apps/v1": [("deployments", "Deployment")],
    "networking.k8s.io/v1": [("ingresses", "Ingress"), ("networkpolicies", "NetworkPolicy")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
    # The CRDs monitoring.setup installs (kube-prometheus-stack's Prometheus Operator).
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor"),
                                 ("prometheusrules", "PrometheusRule")],
}  # fmt: skip


def release_object(
    version: int, status: str, namespace: str, description: str = ""
) -> dict[str, Any]:
    """A Helm release (the release.v1 JSON Helm stores), based on the captured Helm 4 sample."""
    release = json.loads((SAMPLES / "helm4-install-dry-run.json").read_text())
    release.update(version=version, namespace=namespace)
    release["info"].update(
        status=status,
        description=description or f"Upgrade complete (revision {version})",
        last_deployed=f"2026-11-2{version}T10:00:00Z",
    )
    return release


def helm_secret(release: dict[str, Any]) -> dict[str, Any]:
    """How Helm's default storage driver keeps a release: gzip+base64 JSON in a Secret."""
    payload = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    name, version = release["name"], release["version"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{version}",
            "namespace": release["namespace"],
            "labels": {"name": name, "owner": "helm", "status": release["info"]["status"],
                       "version": str(version)},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(payload.encode()).decode()},
    }  # fmt: skip


@dataclass
class FakeAPI:
    """What ``fake_apiserver`` yields: its kubeconfig, the requests seen, the stored releases."""

    kubeconfig: Path
    requests: list[str]
    releases: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, path: str) -> dict[str, Any] | None:
        """Discovery documents, Helm's release Secrets, empty lists; other objects are absent."""
        if path == "/version":
            return {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = []
            for gv in (gv for gv in _API_RESOURCES if "/" in gv):
                name, version = gv.split("/")
                preferred = {"groupVersion": gv, "version": version}
                groups.append(
                    {"name": name, "versions": [preferred], "preferredVersion": preferred}
                )
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        group_version = path.removeprefix("/api/").removeprefix("/apis/")
        if group_version in _API_RESOURCES:
            resources = [
                {"name": name, "singularName": kind.lower(), "namespaced": kind != "Namespace",
                 "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update"]}
                for name, kind in _API_RESOURCES[group_version]
            ]  # fmt: skip
            return {
                "kind": "APIResourceList",
                "groupVersion": group_version,
                "resources": resources,
            }
        parts = path.strip("/").split("/")
        if "namespaces" in parts and parts.index("namespaces") + 3 == len(parts):  # a list
            namespace, plural = parts[-2], parts[-1]
            items = [
                helm_secret(r) for r in self.releases if r["namespace"] == namespace
            ] if plural == "secrets" else []  # fmt: skip
            kinds = {plural: kind for pairs in _API_RESOURCES.values() for plural, kind in pairs}
            api_version = "/".join(parts[: parts.index("namespaces")][1:])
            return {"kind": f"{kinds.get(plural, '')}List", "apiVersion": api_version,
                    "metadata": {}, "items": items}  # fmt: skip
        if "secrets" in parts and parts.index("secrets") + 2 == len(parts):
            for release in self.releases:
                if helm_secret(release)["metadata"]["name"] == parts[-1]:
                    return helm_secret(release)
        return None


@pytest.fixture
def fake_apiserver(tmp_path: Path) -> Iterator[FakeAPI]:
    """A local HTTP server answering like a Kubernetes 1.33 API server, refusing every write.

    Context ``fake`` in ``.kubeconfig``; ``.requests`` records ``METHOD path``; ``.releases``
    holds Helm releases served as Helm's storage Secrets (so the real helm binaries answer
    ``helm history/status``). Helm 3's ``install --dry-run=client`` insists on talking to a
    cluster (helm/helm#13144); this lets it run offline, and proves dry runs only read.
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    api = FakeAPI(kubeconfig=tmp_path / "fake-kubeconfig", requests=[])

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            api.requests.append(f"GET {path}")
            body = api.answer(path)
            if body is None:
                self._reply(404, {"kind": "Status", "status": "Failure", "code": 404})
            else:
                self._reply(200, body)

        def refuse(self) -> None:
            api.requests.append(f"{self.command} {self.path.split('?')[0]}")
            self._reply(405, {"kind": "Status", "status": "Failure", "code": 405})

        do_POST = do_PUT = do_PATCH = do_DELETE = refuse

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cluster = {"server": f"http://127.0.0.1:{server.server_port}"}
    api.kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": cluster}],
                "users": [{"name": "fake", "user": {"token": "fake"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
