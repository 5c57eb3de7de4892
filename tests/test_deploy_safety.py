"""The app Secret's values: where they come from, and that they only ever reach kubectl's stdin.

(That helm and kubectl children never get the password variable is proven end to end in
tests/test_deploy_fakeapi.py::test_children_never_get_the_password; signals reaching helm in
test_sigterm_reaches_helm_which_rolls_back_then_exit_143.)
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import fails_with, need
from invoke import Config, Context

from tasks.core.runner import probe
from tasks.core.settings import Settings
from tasks.deploy.commands import secret_render_argv
from tasks.deploy.secrets import SecretSource, data_digest, data_of, env_content, secret_source


def secret_settings(**values: object) -> Settings:
    return Settings(
        {"name": "flowlet-app", "env_file": "", "env_vars": ("FLOWLET_DB_PASSWORD",), **values}
    )


def test_values_from_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "pw-1")
    monkeypatch.setenv("FLOWLET_API_KEY", "key=with=equals")
    source = SecretSource("flowlet-app", None, ("FLOWLET_DB_PASSWORD", "FLOWLET_API_KEY"))
    assert env_content(source) == "FLOWLET_DB_PASSWORD=pw-1\nFLOWLET_API_KEY=key=with=equals\n"
    assert source.describe() == "environment variables FLOWLET_DB_PASSWORD, FLOWLET_API_KEY"


@pytest.mark.parametrize(
    "variables,message",
    [
        ({}, "deploy.secret.env_vars: environment variable(s) not set: FLOWLET_DB_PASSWORD"),
        (
            {"FLOWLET_DB_PASSWORD": "line1\nline2"},
            "FLOWLET_DB_PASSWORD: multi-line values cannot go in an env file; use "
            "deploy.secret.env_file",
        ),
    ],
    ids=["missing", "multi-line"],
)
def test_refusals_name_the_variable_never_the_value(
    variables: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWLET_DB_PASSWORD", raising=False)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    with fails_with() as err:
        env_content(SecretSource("flowlet-app", None, ("FLOWLET_DB_PASSWORD",)))
    assert err.value.message == message


def test_configured_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.production"
    env_file.write_text("FLOWLET_DB_PASSWORD=x\n")
    env_file.chmod(0o644)
    settings = secret_settings(env_file=".env.{env}")
    with fails_with(
        r"^deploy.secret.env_file: \S+ is readable by group/others \(mode 0644\); run chmod 600"
    ):
        secret_source(settings, "production", tmp_path)
    env_file.chmod(0o600)
    source = secret_source(settings, "production", tmp_path)
    assert (source.env_file, env_content(source)) == (env_file, "FLOWLET_DB_PASSWORD=x\n")
    with fails_with(
        r"^deploy.secret.env_file: '\S+/.env.staging' is not valid; valid: an existing file$"
    ):
        secret_source(settings, "staging", tmp_path)
    with fails_with(r"^deploy.secret: set env_file or env_vars"):
        secret_source(secret_settings(env_vars=()), "staging", tmp_path)


@pytest.mark.slow
def test_real_kubectl_reads_the_values_from_stdin_only(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kubectl renders the Secret offline from its stdin; the value is on no argv and in none of
    our output; the digest is computed from what it rendered."""
    need("kubectl")
    value = "real-kubectl-secret-9c1e"
    c = Context(config=Config(overrides={"run": {"in_stream": False}}))
    argv = secret_render_argv("flowlet-staging", "flowlet-staging", "flowlet-app")
    result = probe(c, argv, stdin=f"FLOWLET_DB_PASSWORD={value}\nOTHER=2\n")
    assert result.exited == 0, result.stderr
    assert value not in " ".join(argv) and "--from-env-file=/dev/stdin" in argv
    encoded = base64.b64encode(value.encode()).decode()
    data = data_of(result.stdout, what="secret/flowlet-app")
    assert data == {"FLOWLET_DB_PASSWORD": encoded, "OTHER": "Mg=="}
    assert data_digest(data) == data_digest({"OTHER": "Mg==", "FLOWLET_DB_PASSWORD": encoded})
    captured = capsys.readouterr()
    assert value not in captured.out + captured.err and encoded not in captured.out + captured.err


def test_data_of_refuses_what_is_not_a_secret() -> None:
    with fails_with("^secret/x: kubectl did not print a Secret$"):
        data_of("kind: ConfigMap\n", what="secret/x")
