"""Monitoring test fixtures: its config, a recording strict mock context, canned answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT_NS
from invoke import Config, Result

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "monitoring"

HELM_VERSION = "helm version --template '{{.Version}}'"
CONTEXTS = "kubectl config get-contexts -o name"
REPO_LIST = "helm repo list -o json"
ALL_REPOS = [
    {"name": "prometheus-community", "url": "https://prometheus-community.github.io/helm-charts"},
    {"name": "grafana-community", "url": "https://grafana-community.github.io/helm-charts"},
    {"name": "grafana", "url": "https://grafana.github.io/helm-charts"},
    {"name": "jaegertracing", "url": "https://jaegertracing.github.io/helm-charts"},
]
CHARTS = {  # chart ref -> pinned version (as in invoke.yaml)
    "prometheus-community/kube-prometheus-stack": "88.5.3",
    "grafana-community/loki": "18.11.0",
    "grafana/alloy": "1.11.1",
    "jaegertracing/jaeger": "4.11.1",
}
CRDS = (
    "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
    "metadata:\n  name: servicemonitors.monitoring.coreos.com\n"
)


VALUES = REPO / "kubernetes" / "monitoring"
H4 = ["--rollback-on-failure", "--wait=watcher", "--timeout", "10m"]
H3 = ["--atomic", "--wait", "--timeout", "10m"]


def upgrades(context: str, flags: list[str], namespace: str = "monitoring") -> list[str]:
    def one(release: str, chart: str, version: str, values: str, extra: str = "") -> str:
        return (
            f"helm --kube-context {context} upgrade --install --version "
            f"{version} --namespace {namespace} --values {VALUES / values}{extra} "
            + " ".join(flags)
            + f" -- {release} {chart}"
        )

    return [
        one(
            "kube-prometheus-stack",
            "prometheus-community/kube-prometheus-stack",
            "88.5.3",
            "kube-prometheus-stack.yaml",
            " --set-string grafana.admin.existingSecret=grafana-admin",
        ),
        one("loki", "grafana-community/loki", "18.11.0", "loki.yaml"),
        one("alloy", "grafana/alloy", "1.11.1", "alloy.yaml"),
        one("jaeger", "jaegertracing/jaeger", "4.11.1", "jaeger.yaml"),
    ]


def search_command(chart: str) -> str:
    return f"helm search repo --version {CHARTS[chart]} -o json -- {chart}"


def search_answer(chart: str, version: str | None = None) -> str:
    """What ``helm search repo`` prints when the local index has ``version`` (None: nothing)."""
    if version is None:
        return "[]"
    return json.dumps([{"name": chart, "version": version, "app_version": "x", "description": ""}])


def canned(helm_version: str = "v4.1.4", overrides: dict[Any, Any] | None = None) -> dict[Any, Any]:
    """Answers of a machine with every repository added and every pinned chart in the index.

    ``overrides`` come first, so they win over the defaults' regular expressions too.
    """
    base: dict[Any, Any] = {
        CONTEXTS: "kind-flowlet\nflowlet-staging\nflowlet-production\n",
        HELM_VERSION: helm_version,
        REPO_LIST: json.dumps(ALL_REPOS),
        **{search_command(chart): search_answer(chart, v) for chart, v in CHARTS.items()},
        re.compile(r"kubectl --context \S+ apply -f -"): "namespace/monitoring configured",
        re.compile(r"kubectl --context \S+ --namespace \S+ get secret grafana-admin -o name"): (
            "secret/grafana-admin"
        ),
        re.compile(r"helm repo (add|update) .*"): "ok",
        re.compile(r"helm show crds .*"): CRDS,
        re.compile(r"kubectl --context \S+ apply --server-side --force-conflicts -f -"): "ok",
        re.compile(r"helm --kube-context \S+ (upgrade|uninstall) .*"): "done",
        re.compile(r"kubectl --context \S+ --namespace \S+ create secret generic .*"): "created",
    }
    answers = dict(overrides or {})
    for key, value in base.items():
        answers.setdefault(key, value)
    return answers


def secret_missing() -> Result:
    return Result(
        stdout="",
        stderr='Error from server (NotFound): secrets "grafana-admin" not found\n',
        exited=1,
    )


@pytest.fixture
def mon_config(tmp_path: Path) -> Callable[..., Config]:
    """A Config with every topic's defaults (registered on the root, as ``inv`` has them) and
    the project's invoke.yaml; ``dry`` and ``overrides`` optional."""

    def make(dry: bool = False, overrides: dict[str, Any] | None = None) -> Config:
        config = Config(defaults={**Config.global_defaults(), **ROOT_NS.configuration()})
        config.set_project_location(str(REPO))
        config.load_project()
        if overrides:
            config.load_overrides(overrides)
        config.run.dry = dry
        return config

    return make


def load(name: str) -> str:
    return (DATA / name).read_text()


# -- a local chart repository with the pinned charts (tiny stand-ins) -----------------------

CRD_TEMPLATE = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {{kind: {kind}, listKind: {kind}List, plural: {plural}, singular: {singular}}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
        description: "{padding}"
"""
# The real kube-prometheus-stack CRDs are megabytes of YAML, fed to kubectl's stdin: so are
# the stand-ins' (Invoke feeds an in_stream one character per 10 ms unless the runner helps).
CRD_PADDING = "x" * 600_000
STAND_IN_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-stand-in
  labels:
    app.kubernetes.io/instance: {{ .Release.Name | quote }}
    helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
data:
  values.json: {{ toJson .Values | quote }}
"""


@dataclass
class ChartRepos:
    """What ``chart_repos`` yields: one local HTTP chart repository per configured name."""

    base_url: str
    root: Path

    def url(self, repo: str) -> str:
        return f"{self.base_url}/{repo}"

    def invoke_yaml(self) -> str:
        """A config that points every ``monitoring.repos`` entry at the local repositories."""
        repos = {repo: self.url(repo) for repo in dict.fromkeys(r.split("/")[0] for r in CHARTS)}
        return json.dumps({"monitoring": {"repos": repos}})


@pytest.fixture(scope="session")
def chart_repos(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The four pinned charts (names and versions as in tasks/monitoring/settings.py) as tiny
    stand-ins (one ConfigMap each; kube-prometheus-stack also ships the Prometheus Operator
    CRDs in ``crds/``), packaged by the real ``helm package`` and indexed by ``helm repo index``,
    served over HTTP on 127.0.0.1: ``helm repo add/update/search/show`` work offline."""
    import subprocess
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import yaml

    from tasks.monitoring.settings import SCHEMA

    helm = REPO / ".tools" / "bin" / "helm"
    if not helm.exists():
        from conftest import need

        need("helm")
        helm = Path("helm")
    work = tmp_path_factory.mktemp("chart-repos")
    served = work / "served"

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    server.daemon_threads = True
    base_url = f"http://127.0.0.1:{server.server_port}"
    env = {"HOME": str(work), "PATH": "/usr/bin:/bin"}
    for entry in SCHEMA.defaults()["components"].values():
        source = work / "src" / entry["chart"]
        (source / "templates").mkdir(parents=True)
        chart = {"apiVersion": "v2", "name": entry["chart"], "version": entry["version"],
                 "appVersion": "stand-in", "description": "a test stand-in"}  # fmt: skip
        (source / "Chart.yaml").write_text(yaml.safe_dump(chart))
        (source / "templates" / "stand-in.yaml").write_text(STAND_IN_TEMPLATE)
        if entry["chart"] == "kube-prometheus-stack":
            (source / "crds").mkdir()
            for kind in ("ServiceMonitor", "PrometheusRule"):
                plural = kind.lower() + "s"
                text = CRD_TEMPLATE.format(
                    kind=kind, plural=plural, singular=kind.lower(), padding=CRD_PADDING
                )
                (source / "crds" / f"{plural}.yaml").write_text(text)
        target = served / entry["repo"]
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(helm), "package", str(source), "-d", str(target)], env=env,
                       check=True, capture_output=True, timeout=60)  # fmt: skip
    for target in served.iterdir():
        index = [str(helm), "repo", "index", str(target), "--url", f"{base_url}/{target.name}"]
        subprocess.run(index, env=env, check=True, capture_output=True, timeout=60)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ChartRepos(base_url=base_url, root=served)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def local_chart_repos(chart_repos: ChartRepos) -> ChartRepos:
    """``~/.invoke.yaml`` (HOME is the test's own) points ``monitoring.repos`` at the local
    chart repositories: README's commands then run exactly as written."""
    import os

    (Path(os.environ["HOME"]) / ".invoke.yaml").write_text(chart_repos.invoke_yaml())
    return chart_repos


SECRET = "Gr4fana-test-Pa55w0rd"  # nosec B105: the test's Grafana admin password
