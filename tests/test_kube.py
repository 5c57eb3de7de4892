"""Helm version handling and the context guard (pure parts, plus the strict mock context)."""

from __future__ import annotations

import pytest
from conftest import fails_with
from invoke import Config, Result

from tasks.kube import (
    HelmVersion,
    check_helm_version,
    guard_context,
    helm,
    kubectl,
    parse_helm_version,
    upgrade_safety_flags,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("v4.1.4", HelmVersion(4, 1, 4)),
        ("v3.18.0+gabc123", HelmVersion(3, 18, 0)),
        ("3.19.2\n", HelmVersion(3, 19, 2)),
    ],
    ids=["helm4", "helm3-with-build", "no-v-prefix"],
)
def test_parse_helm_version(text: str, expected: HelmVersion) -> None:
    assert parse_helm_version(text) == expected


def test_parse_helm_version_rejects_garbage() -> None:
    with fails_with(match="cannot parse 'dev'"):
        parse_helm_version("dev")


@pytest.mark.parametrize(
    "version",
    [HelmVersion(2, 17, 0), HelmVersion(3, 17, 9), HelmVersion(4, 1, 1)],
    ids=["helm2", "old-helm3", "helm4-before-4.1.2"],
)
def test_unsupported_helm_versions(version: HelmVersion) -> None:
    with fails_with() as err:
        check_helm_version(version)
    assert err.value.message == (f"helm {version} is not supported; supported: v3.18.0+ or v4.1.2+")


def test_upgrade_flags_per_major() -> None:
    assert upgrade_safety_flags(HelmVersion(3, 18, 0), "10m") == [
        "--atomic",
        "--wait",
        "--timeout",
        "10m",
    ]
    assert upgrade_safety_flags(HelmVersion(4, 1, 4), "10m") == [
        "--rollback-on-failure",
        "--wait=watcher",
        "--timeout",
        "10m",
    ]


def test_commands_pin_the_context() -> None:
    assert kubectl("prod", "get", "pods") == ["kubectl", "--context", "prod", "get", "pods"]
    assert helm("prod", "status", "x") == ["helm", "--kube-context", "prod", "status", "x"]


def test_guard_context(strict_context: type) -> None:
    c = strict_context(
        config=Config(), run={"kubectl config get-contexts -o name": Result("kind-a\nstaging\n")}
    )
    guard_context(c, "staging", "--context")
    with fails_with() as err:
        guard_context(c, "production", "environments.production.kube_context")
    assert err.value.message == (
        "environments.production.kube_context: kube context 'production' not found in "
        "kubeconfig; available: kind-a, staging"
    )
