"""resolve_environment: every bad input fails with one clear line and exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import fails_with
from invoke import Config, Context

from tasks.core.environments import resolve_environment, validate_namespace


@pytest.fixture
def ctx(project_config: Config) -> Context:
    return Context(config=project_config)


@pytest.mark.parametrize(
    "env,namespace",
    [
        ("development", "flowlet-dev"),
        ("staging", "flowlet-staging"),
        ("production", "flowlet-prod"),
    ],
    ids=["development", "staging", "production"],
)
def test_project_environments_resolve(ctx: Context, env: str, namespace: str) -> None:
    resolved = resolve_environment(ctx, env)
    assert resolved.name == env
    assert resolved.namespace == namespace
    assert resolved.kube_context
    assert resolved.release == "flowlet"
    assert resolved.confirm is (env == "production")
    assert resolved.is_production is (env == "production")


def test_default_environment_is_development(ctx: Context) -> None:
    assert resolve_environment(ctx, None).name == "development"


def test_namespace_override(ctx: Context) -> None:
    assert resolve_environment(ctx, "staging", "team-a").namespace == "team-a"


def test_unknown_environment(ctx: Context) -> None:
    with fails_with() as err:
        resolve_environment(ctx, "prod")
    assert err.value.code == 1
    assert err.value.message == (
        "--env: 'prod' is not valid; valid: development, production, staging"
    )


@pytest.mark.parametrize(
    "bad",
    ["Flowlet", "flowlet_prod", "-flowlet", "flowlet-", "a" * 64, "", "flow.let"],
    ids=["uppercase", "underscore", "leading-dash", "trailing-dash", "too-long", "empty", "dot"],
)
def test_bad_namespace_flag(ctx: Context, bad: str) -> None:
    with fails_with() as err:
        resolve_environment(ctx, "staging", bad)
    assert err.value.message.startswith(
        f"--namespace: {bad!r} is not valid; valid: a DNS-1123 label"
    )
    assert "\n" not in err.value.message


def test_bad_namespace_in_config(ctx: Context) -> None:
    ctx.config.environments.staging.namespace = "Bad_NS"
    with fails_with() as err:
        resolve_environment(ctx, "staging")
    assert err.value.message.startswith(
        "environments.staging.namespace: 'Bad_NS' is not valid; valid: a DNS-1123 label"
    )


def test_missing_required_key(ctx: Context) -> None:
    ctx.config.environments.staging.kube_context = ""
    with fails_with() as err:
        resolve_environment(ctx, "staging", require=("kube_context",))
    assert err.value.message == (
        "environments.staging.kube_context: missing required key (set it in invoke.yaml)"
    )


def test_missing_path(ctx: Context, repo: Path) -> None:
    ctx.config.environments.staging.values_file = "kubernetes/nope.yaml"
    with fails_with() as err:
        resolve_environment(ctx, "staging", require=("values_file",))
    assert err.value.message == (
        f"environments.staging.values_file: {repo}/kubernetes/nope.yaml does not exist"
    )


def test_relative_paths_resolve_against_project(ctx: Context, repo: Path) -> None:
    ctx.config.environments.staging.values_file = "invoke.yaml"
    resolved = resolve_environment(ctx, "staging", require=("values_file",))
    assert resolved.values_file == repo / "invoke.yaml"


def test_confirm_must_be_boolean(ctx: Context) -> None:
    ctx.config.environments.staging.confirm = "yes"
    with fails_with() as err:
        resolve_environment(ctx, "staging")
    assert err.value.message == (
        "environments.staging.confirm: 'yes' is not valid; valid: true or false"
    )


def test_validate_namespace_accepts_63_chars() -> None:
    assert validate_namespace("a" * 63, source="--namespace") == "a" * 63


@pytest.mark.parametrize("namespace", ["null", "123", "yes", "0x1f", "1e3", "true"])
def test_yaml_ambiguous_namespaces_stay_strings(ctx: Context, namespace: str) -> None:
    """Valid DNS labels that YAML would read as null/int/bool/float: always text, quoted."""
    import yaml

    from tasks.core.environments import yaml_string

    resolved = resolve_environment(ctx, "staging", namespace)
    assert resolved.namespace == namespace
    assert yaml.safe_load(f"namespace: {yaml_string(resolved.namespace)}") == {
        "namespace": namespace
    }


@pytest.mark.parametrize(
    "release",
    ["Flowlet", "flow_let", "-flowlet", "flowlet.", "a" * 54, ""],
    ids=["uppercase", "underscore", "leading-dash", "trailing-dot", "too-long", "empty"],
)
def test_release_names_follow_helm(ctx: Context, release: str) -> None:
    ctx.config.environments.staging.release = release
    with fails_with(match=r"^environments\.staging\.release: .* is not valid; valid: a Helm"):
        resolve_environment(ctx, "staging")
