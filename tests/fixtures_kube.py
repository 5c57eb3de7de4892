"""What the tests of the topics that drive helm and kubectl (deploy, monitoring) share: the
in-memory Kubernetes API server (tests/fakekube.py) with a kubeconfig pointing at it,
recording wrappers of the real helm and kubectl, and a recording strict mock context.

Other fixture modules import nothing from here (plugins load in name order; one imported
before it is registered could not be rewritten): shared helpers live in tests/fakekube.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import StrictMockContext, need
from fakekube import CONTEXTS, FakeKube, kubeconfig_for
from invoke import Config, Result


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig with the project's contexts, pointing at a closed port (no cluster)."""
    path = kubeconfig_for(tmp_path / "kubeconfig", "https://127.0.0.1:9", CONTEXTS)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def fake_apiserver(tmp_path: Path) -> Iterator[FakeKube]:
    """The in-memory API server; ``.kubeconfig`` has the contexts ``fake`` and the project's
    three, all pointing at it (set ``KUBECONFIG`` to use it)."""
    fake = FakeKube().start()
    fake.kubeconfig = kubeconfig_for(tmp_path / "fake-kubeconfig", fake.url)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def cluster(fake_apiserver: FakeKube, monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    """``fake_apiserver`` as the kubeconfig of this test and the ``inv`` it starts."""
    need("helm", "kubectl")
    monkeypatch.setenv("KUBECONFIG", str(fake_apiserver.kubeconfig))
    return fake_apiserver


# -- recording wrappers: helm and kubectl first on PATH ----------------------------------------

WRAPPER = '''#!{python}
"""Test wrapper of {tool}: log argv, environment and pid, then exec the real {tool}
({real}); ``kubectl port-forward`` is answered here (a fake API server cannot stream)."""
import hashlib, json, os, signal, sys, time

argv = sys.argv[1:]
secret_hash, size = {secret_hash!r}, {size!r}


def holds_secret(text):
    return any(
        hashlib.sha256(text[i : i + size].encode()).hexdigest() == secret_hash
        for i in range(len(text) - size + 1)
    )


leaked = sorted(k for k, v in os.environ.items() if holds_secret(v))
record = {{"tool": {tool!r}, "argv": argv, "env": sorted(os.environ), "leaked": leaked,
          "pid": os.getpid(), "pgid": os.getpgid(0), "time": time.time()}}
with open({log!r}, "a") as log:
    log.write(json.dumps(record) + "\\n")
if {tool!r} == "kubectl" and "port-forward" in argv:
    local, remote = argv[-1].split(":")
    signal.signal(signal.SIGINT, lambda *a: sys.exit(0))  # kubectl: Ctrl-C ends it cleanly
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # (set before the line that says
    print(f"Forwarding from 127.0.0.1:{{local}} -> {{remote}}", flush=True)  # it is ready)
    while True:
        time.sleep(0.05)
os.execv({real!r}, [{real!r}, *argv])
'''


@dataclass
class Recorder:
    """What ``recording_tools`` yields: the wrapper directory (put it first on PATH) and the
    calls the wrappers logged."""

    bin: Path
    log: Path

    def path(self, base: str | None = None) -> str:
        """``base`` (default: this process's PATH) with the wrappers first."""
        return f"{self.bin}{os.pathsep}{os.environ['PATH'] if base is None else base}"

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in rows if tool in (None, r["tool"])]

    def argvs(self, tool: str | None = None) -> list[str]:
        """Each call as a command line (``helm repo list -o json``)."""
        return [shlex.join([r["tool"], *r["argv"]]) for r in self.calls(tool)]


@pytest.fixture
def recording_tools(tmp_path: Path) -> Callable[..., Recorder]:
    """``make(secret, helm=None)``: ``helm`` and ``kubectl`` wrappers that log every call (argv,
    the names of the environment variables it got, and which of them hold ``secret`` -- known
    to the wrappers by its hash only, so that no file holds it) and exec the real binaries
    (``.tools``; ``helm=`` another helm): what a command ran, as run."""

    def make(secret: str, helm: Path | None = None) -> Recorder:
        need("helm", "kubectl")
        recorder = Recorder(bin=tmp_path / "recording-bin", log=tmp_path / "recorded.jsonl")
        recorder.bin.mkdir(exist_ok=True)
        for tool in ("helm", "kubectl"):
            real = helm if tool == "helm" and helm is not None else shutil.which(tool)
            assert real is not None
            script = recorder.bin / tool
            script.write_text(
                WRAPPER.format(
                    python=sys.executable,
                    tool=tool,
                    real=str(Path(real).resolve()),
                    log=str(recorder.log),
                    secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
                    size=len(secret),
                )
            )
            script.chmod(0o755)
        return recorder

    return make


# -- a strict mock context that records what each command got ----------------------------------


class RecordingContext(StrictMockContext):
    """conftest's StrictMockContext that also records ``calls`` (command, dry, stdin) and each
    command's environment in ``envs`` (command, env, replace_env), and runs ``hooks``
    ({regex: fn(command)}) after each non-dry command they match."""

    def __init__(self, config: Config, run: dict[Any, Any], hooks: Any = None) -> None:
        super().__init__(config=config, run=run)
        self._set(calls=[], envs=[], hooks=hooks or {})

    @property
    def stdin(self) -> dict[str, str]:
        """``{command: what it got on stdin}`` of the commands that got something."""
        return {command: data for command, _, data in self.calls if data is not None}

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


@pytest.fixture
def recording_context() -> type[RecordingContext]:
    """``recording_context(config, run, hooks=None)``: a :class:`RecordingContext`."""
    return RecordingContext
