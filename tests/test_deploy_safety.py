"""Signal forwarding to a real child process, and the app Secret's handling of values."""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from fixtures_deploy import helm_binary
from invoke import Config, Context

from tasks.deploy.plan import secret_create_argv
from tasks.deploy.safety import interrupted_exit, run_forwarding_signals
from tasks.deploy.secrets import SecretSource, env_file_for, resolve_secret_source
from tasks.core.runner import probe

CHILD = """
import pathlib, signal, sys, time
from conftest import fails_with
marker, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def stop(signum, frame):
    marker.write_text(signal.Signals(signum).name)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
ready.touch()
time.sleep(30)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_signals_are_forwarded_and_the_child_finishes(
    signum: int, tmp_path: Path, closing_pipes: None
) -> None:
    """A SIGTERM/SIGINT to us reaches the child (helm) as the same signal; we wait for it."""
    marker, ready = tmp_path / "marker", tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def send() -> None:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send)
    sender.start()
    c = Context(config=Config(overrides={"run": {"in_stream": False, "hide": True}}))
    started = time.monotonic()
    result, received = run_forwarding_signals(
        c, [sys.executable, str(script), str(marker), str(ready)]
    )
    sender.join()
    assert received == signum
    assert result.exited == 3, "the child handled the signal and exited on its own"
    assert marker.read_text() == signal.Signals(signum).name
    assert time.monotonic() - started < 15
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    error = interrupted_exit(received, "helm stopped")
    assert (error.code, error.message) == (
        128 + signum,
        f"interrupted ({signal.Signals(signum).name}): helm stopped",
    )


def test_forwarding_under_dry_only_prints(capsys: pytest.CaptureFixture[str]) -> None:
    c = Context(config=Config(overrides={"run": {"dry": True}}))
    result, received = run_forwarding_signals(c, ["helm", "upgrade", "x"])
    assert (result.exited, received) == (0, None)
    assert "helm upgrade x" in capsys.readouterr().out


def test_temp_env_file_is_private_and_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "pw-1")
    monkeypatch.setenv("FLOWLET_API_KEY", "key=with=equals")
    source = SecretSource("flowlet-app", None, ("FLOWLET_DB_PASSWORD", "FLOWLET_API_KEY"))
    with env_file_for(source, dry=False) as path:
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert (
            Path(path).read_text() == "FLOWLET_DB_PASSWORD=pw-1\nFLOWLET_API_KEY=key=with=equals\n"
        )
    assert not Path(path).exists()


def test_temp_env_file_deleted_on_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "pw")
    source = SecretSource("flowlet-app", None, ("FLOWLET_DB_PASSWORD",))
    with pytest.raises(RuntimeError), env_file_for(source, dry=False) as path:
        raise RuntimeError("kubectl failed")
    assert not Path(path).exists()


@pytest.mark.parametrize(
    "variables,message",
    [
        ({}, "deploy.secret.env_vars: environment variable(s) not set: FLOWLET_DB_PASSWORD"),
        (
            {"FLOWLET_DB_PASSWORD": "line1\nline2"},
            "FLOWLET_DB_PASSWORD: multi-line values cannot go in an env file",
        ),
    ],
    ids=["missing", "multi-line"],
)
def test_env_var_refusals_name_the_variable_never_the_value(
    variables: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWLET_DB_PASSWORD", raising=False)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    source = SecretSource("flowlet-app", None, ("FLOWLET_DB_PASSWORD",))
    with fails_with() as err, env_file_for(source, dry=False):
        pass
    assert err.value.message.startswith(message)
    assert "line1" not in err.value.message


def test_configured_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.production"
    env_file.write_text("FLOWLET_DB_PASSWORD=x\n")
    env_file.chmod(0o644)
    settings = {"name": "flowlet-app", "env_file": ".env.{env}", "env_vars": []}
    with fails_with(match=r"deploy.secret.env_file: .* \(mode 0644\); run chmod 600"):
        resolve_secret_source(settings, "production", tmp_path)
    env_file.chmod(0o600)
    source = resolve_secret_source(settings, "production", tmp_path)
    assert source.env_file == env_file
    with fails_with(match="deploy.secret.env_file: path '.env.staging' does not exist"):
        resolve_secret_source(settings, "staging", tmp_path)
    with fails_with(match="deploy.secret.name: 'Bad_Name' is not a valid"):
        resolve_secret_source({**settings, "name": "Bad_Name"}, "production", tmp_path)


@pytest.mark.slow
def test_real_kubectl_reads_values_from_the_file_only(
    tmp_path: Path,
    kubeconfig: Path,
    closing_pipes: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """kubectl renders the Secret offline; the value is on no argv and nowhere in our output."""
    helm_binary(4)
    value = "real-kubectl-secret-9c1e"
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", value)
    source = SecretSource("flowlet-app", None, ("FLOWLET_DB_PASSWORD",))
    c = Context(config=Config(overrides={"run": {"in_stream": False}}))
    with env_file_for(source, dry=False) as path:
        argv = secret_create_argv("flowlet-staging", "flowlet-staging", "flowlet-app", path)
        result = probe(c, argv)
    assert result.exited == 0, result.stderr
    assert value not in " ".join(argv)
    encoded = base64.b64encode(value.encode()).decode()
    assert f"FLOWLET_DB_PASSWORD: {encoded}" in result.stdout
    captured = capsys.readouterr()
    assert value not in captured.out + captured.err and encoded not in captured.out + captured.err
