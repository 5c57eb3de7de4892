"""kubernetes/monitoring/*.yaml: parse, no key set twice, and agree with the monitoring config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_monitoring import REPO

from tasks.monitoring.settings import COMPONENTS, SCHEMA

DEFAULTS = SCHEMA.defaults()

VALUES_DIR = REPO / "kubernetes" / "monitoring"
FILES = sorted(VALUES_DIR.glob("*.yaml"))


class DuplicateKeyError(yaml.constructor.ConstructorError):
    pass


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping setting the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_strict(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=StrictLoader)  # nosec B506 - SafeLoader subclass


def values(name: str) -> dict[str, Any]:
    return load_strict(VALUES_DIR / name)  # type: ignore[no-any-return]


def keys(data: Any, prefix: str = "") -> set[str]:
    """Every dotted key path of a nested mapping."""
    if not isinstance(data, dict):
        return set()
    found: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        found |= {path} | keys(value, path + ".")
    return found


def test_strict_loader_rejects_duplicate_keys() -> None:
    with pytest.raises(DuplicateKeyError, match="duplicate key 'retention'"):
        yaml.load("a:\n  retention: 1d\n  retention: 2d\n", Loader=StrictLoader)  # nosec B506


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_values_file_parses_without_duplicate_keys(path: Path) -> None:
    assert isinstance(load_strict(path), dict)


def test_every_component_has_its_values_file_and_no_file_is_orphaned() -> None:
    referenced = {DEFAULTS["components"][key]["values"] for key in COMPONENTS}
    assert referenced == {p.name for p in FILES}


def test_chart_versions_are_declared_once_in_code_not_in_invoke_yaml() -> None:
    """The defaults live in tasks/monitoring/settings.py; invoke.yaml holds only what a project
    changes, so it can override them (a copy there would have to be kept equal by hand)."""
    assert "monitoring" not in load_strict(REPO / "invoke.yaml")


def test_grafana_password_never_in_values() -> None:
    kps = values("kube-prometheus-stack.yaml")
    assert not any(k.endswith(("adminPassword", "existingSecret")) for k in keys(kps))
    # the Secret's keys match what monitoring.setup creates
    assert kps["grafana"]["admin"] == {"userKey": "admin-user", "passwordKey": "admin-password"}


def test_kube_prometheus_stack_small_cluster_defaults() -> None:
    kps = values("kube-prometheus-stack.yaml")
    for part in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert kps[part]["enabled"] is False, part
    spec = kps["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "3d" and spec["retentionSize"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is True  # selects by `release` label
    sidecar = kps["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["label"], sidecar["labelValue"], sidecar["searchNamespace"]) == (
        "grafana_dashboard",
        "1",
        "ALL",
    )


def test_loki_is_monolithic_on_the_filesystem_without_caches() -> None:
    loki = values("loki.yaml")
    assert loki["deploymentMode"] == "Monolithic"
    assert loki["loki"]["commonConfig"]["replication_factor"] == 1
    assert loki["loki"]["storage"]["type"] == "filesystem"
    assert {c["object_store"] for c in loki["loki"]["schemaConfig"]["configs"]} == {"filesystem"}
    assert loki["singleBinary"]["replicas"] == 1
    assert loki["chunksCache"]["enabled"] is False and loki["resultsCache"]["enabled"] is False
    for mode in ("backend", "read", "write"):
        assert loki[mode]["replicas"] == 0


def test_services_referenced_by_name_match_the_configured_releases() -> None:
    """Alloy and Grafana reach Loki and Jaeger by Service name (= release name), same namespace."""
    releases = {key: DEFAULTS["components"][key]["release"] for key in COMPONENTS}
    loki_url = f"http://{releases['loki']}:3100"
    assert (
        f'url = "{loki_url}/loki/api/v1/push"'
        in values("alloy.yaml")["alloy"]["configMap"]["content"]
    )
    sources = {
        s["type"]: s["url"]
        for s in values("kube-prometheus-stack.yaml")["grafana"]["additionalDataSources"]
    }
    assert sources == {"loki": loki_url, "jaeger": f"http://{releases['jaeger']}:16686"}


def test_alloy_is_a_node_log_agent() -> None:
    alloy = values("alloy.yaml")
    assert alloy["controller"]["type"] == "daemonset"
    assert alloy["alloy"]["mounts"]["varlog"] is True
    content = alloy["alloy"]["configMap"]["content"]
    assert content.count("{") == content.count("}")
    assert 'sys.env("NODE_NAME")' in content
    assert {e["name"] for e in alloy["alloy"]["extraEnv"]} == {"NODE_NAME"}


def test_jaeger_uses_chart_4_keys() -> None:
    jaeger = values("jaeger.yaml")
    assert "allInOne" not in jaeger  # chart 3.x (Jaeger v1) key; chart 4.x runs v2 all-in-one
    assert jaeger["jaeger"]["replicas"] == 1
