"""Monitoring test fixtures: its config, a recording strict mock context, canned answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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


def search_command(chart: str) -> str:
    return f"helm search repo {chart} --version {CHARTS[chart]} -o json"


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


@pytest.fixture
def mon_context(strict_context: type) -> Callable[..., Any]:
    """A StrictMockContext that also records (command, dry, stdin) in ``calls``, each command's
    environment in ``envs``, and runs per-command hooks."""

    class Recording(strict_context):  # type: ignore[misc, valid-type]
        def __init__(self, config: Config, run: dict[Any, Any], hooks: Any = None) -> None:
            super().__init__(config=config, run=run)
            self._set(calls=[], envs=[], hooks=hooks or {})

        def run(self, command: str, **kwargs: Any) -> Result:  # type: ignore[override]
            stream = kwargs.get("in_stream")
            dry = bool(kwargs.get("dry", self.config.run.dry))
            stdin = stream.getvalue() if hasattr(stream, "getvalue") else None
            self.calls.append((command, dry, stdin))
            self.envs.append((command, kwargs.get("env"), kwargs.get("replace_env")))
            result = super().run(command, **kwargs)
            for pattern, hook in self.hooks.items():
                if re.search(pattern, command) and not dry:
                    hook(command)
            return result

    return Recording


def load(name: str) -> str:
    return (DATA / name).read_text()
