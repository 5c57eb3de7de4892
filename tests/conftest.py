"""Shared fixtures: safety nets, a strict MockContext, and an in-process task runner."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess  # nosec B404
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Collection, Config, MockContext, Program, Result
from invoke.exceptions import Exit, UnexpectedExit

from tasks.core.errors import OpsError

REPO = Path(__file__).resolve().parent.parent
TOOLS_BIN = REPO / ".tools" / "bin"


def _load_root() -> Collection:
    """The root collection, exactly as ``inv`` composes it from tasks.py (every topic's
    defaults registered on the root; the strict config loading installed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("flowlet_root_tasks", REPO / "tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ns  # type: ignore[no-any-return]


ROOT_NS = _load_root()

# Topic fixtures live in tests/fixtures_<topic>.py (real servers: PostgreSQL, MariaDB, sshd ...).
pytest_plugins = sorted(p.stem for p in Path(__file__).parent.glob("fixtures_*.py"))

# Tools that .ci/run installs into .tools/ (helm, kubectl) come first on PATH.
if TOOLS_BIN.is_dir():
    os.environ["PATH"] = f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture(autouse=True)
def _safety_net(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test off the real home directory, ~/.ssh, ~/.kube and real clusters."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(home / ".kube" / "config"))
    for var in ("PGPASSFILE", "PGPASSWORD", "MYSQL_PWD", "SSH_AUTH_SOCK", "INVOKE_RUNTIME_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):
        if var.startswith("INVOKE_"):
            monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def closing_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Close the pipes of commands run by a real invoke Context once they finish.

    Invoke 2.2's Local runner never closes its Popen pipes, which shows up as ResourceWarning
    (an error under our strict warnings) in whichever test the garbage collector runs in.
    """
    from invoke.runners import Local

    original = Local.stop

    def stop(self: Local) -> None:
        original(self)
        process = getattr(self, "process", None)
        for stream in (process.stdin, process.stdout, process.stderr) if process else ():
            if stream is not None:
                stream.close()

    monkeypatch.setattr(Local, "stop", stop)


class StrictMockContext(MockContext):
    """Invoke's MockContext, but a failed Result raises UnexpectedExit unless warn=True.

    It also records every command in order (``.commands``) and applies ``c.cd`` / ``c.prefix``
    to the recorded command, as a real Context would, so assertions see the exact command line.
    Results are looked up by the full command; a regex key matches by ``re.fullmatch``; a value
    is a Result, a str (stdout, exit 0) or a list of those consumed by successive calls.
    """

    def __init__(self, config: Config | None = None, **kwargs: Any) -> None:
        results = dict(kwargs.pop("run", {}) or {})
        super().__init__(config=config, **kwargs)
        self._set(commands=[], _strict_results=results)

    def _full(self, command: str) -> str:
        if self.command_cwds and self.command_cwds[-1]:
            command = f"cd {self.command_cwds[-1]} && {command}"
        if self.command_prefixes:
            command = " && ".join([*self.command_prefixes, command])
        return command

    def run(self, command: str, **kwargs: Any) -> Result:  # type: ignore[override]
        full = self._full(command)
        self.commands.append(full)
        dry = kwargs.get("dry", self.config.run.dry)
        if dry:
            return Result(command=full, stdout="", exited=0)
        results = self._strict_results
        result: Result | None = None
        if isinstance(results, dict):
            for key, value in results.items():
                matched = key.fullmatch(full) if isinstance(key, re.Pattern) else key == full
                if matched:
                    if isinstance(value, list):  # successive calls consume the list in order
                        value = value.pop(0) if len(value) > 1 else value[0]
                    result = value if isinstance(value, Result) else Result(stdout=str(value))
                    break
        if result is None:
            raise NotImplementedError(f"unexpected command: {full}")
        result = Result(
            command=full,
            stdout=result.stdout,
            stderr=result.stderr,
            exited=result.exited,
        )
        if result.exited != 0 and not kwargs.get("warn", self.config.run.warn):
            raise UnexpectedExit(result)
        return result


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def project_config() -> Config:
    """A Config with the project's invoke.yaml loaded over the collection defaults."""
    config = Config(defaults={**Config.global_defaults(), **ROOT_NS.configuration()})
    config.set_project_location(str(REPO))
    config.load_project()
    return config


def run_task(
    ns: Collection, argv: list[str], config_file: Path | None = None, cwd: Path | None = None
) -> int:
    """Run ``inv [-f config_file] <argv>`` in-process against ``ns``; returns the exit code.

    ``Exit`` / ``UnexpectedExit`` become the exit code exactly as ``inv`` would produce it.
    """
    program = Program(namespace=ns, name="inv", binary="inv", config_class=Config)
    prefix = ["-f", str(config_file)] if config_file else []
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        program.run(["inv", *prefix, *argv], exit=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else 1
    finally:
        os.chdir(old)
    return 0


INV = shutil.which("inv") or "inv"


def _default_signals() -> None:
    """Child preexec: default dispositions, whatever this test run inherited (``cmd &`` from a
    script starts it with SIGINT ignored, which a child would inherit)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def inv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an ``inv`` started by a test: ours (already safety-netted), the
    .tools binaries first on PATH, ``INVOKE_*`` removed, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    env.update(extra or {})
    return env


def start_inv(
    command: str | list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.Popen[str]:
    """Start ``inv`` (a README command line run by bash, or an argv after ``inv``) as a real
    process with default signal dispositions, text pipes for stdout and stderr."""
    argv = ["bash", "-c", command] if isinstance(command, str) else [INV, *command]
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(  # nosec B603
        argv, cwd=cwd, env=inv_env(env), text=True, preexec_fn=_default_signals, **kwargs
    )


def run_inv(
    command: str | list[str],
    *,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a command line the way a user types it (``bash -c``) or ``inv <argv>``; never a
    traceback (asserted), whatever the exit code."""
    child = start_inv(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
    )
    try:
        out, err = child.communicate(input, timeout=timeout)
    except BaseException:
        child.kill()
        child.communicate()
        raise
    assert "Traceback (most recent call last)" not in out + err, err
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def readme(*commands: str) -> pytest.MarkDecorator:
    """Mark a test as the one that runs these command lines of README.md, as written (the
    README contract test checks that every command README shows has such a test)."""
    return pytest.mark.readme(*commands)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(*binaries: str, why: str = "") -> None:
    """Skip unless ``binaries`` (names on PATH, or paths) are installed -- the one place for
    "skip locally, fail in CI": .ci/run sets CI=true and installs them all, so CI never skips."""
    missing = [
        b for b in binaries
        if not (os.access(b, os.X_OK) if os.sep in b else shutil.which(b) is not None)
    ]  # fmt: skip
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI is missing {missing}: .ci/install should have installed them")
        pytest.skip(f"needs {', '.join(missing)}" + (f" ({why})" if why else ""))


@pytest.fixture
def helm_on_path() -> None:
    """For tests past the prerequisite step, which looks helm and kubectl up on PATH even when
    a mock context answers their commands."""
    need("helm", "kubectl", why="the prerequisite step looks them up on PATH")


class Failure:
    """What :func:`fails_with` saw: ``value.code`` and ``value.message`` (the stderr line)."""

    def __init__(self) -> None:
        self.value: OpsError = OpsError("")


@contextlib.contextmanager
def fails_with(match: str | None = None, *, code: int | None = None) -> Iterator[Failure]:
    """Expect the block to fail the way a user sees it.

    A task called directly runs inside the boundary: it prints one line on stderr and raises
    ``Exit(code)``; a planner raises :class:`OpsError`. Either way ``match`` is searched (as a
    regex, like ``pytest.raises``) in the message, and ``code`` compared with the exit code.
    """
    failure = Failure()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            yield failure
    except OpsError as exc:
        failure.value = exc
    except Exit as exc:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        assert len(lines) <= 1, f"more than one line on stderr: {lines}"
        failure.value = OpsError(lines[0] if lines else (exc.message or ""), code=exc.code)
    else:
        pytest.fail(f"did not fail (expected {match!r})")
    if match is not None:
        assert re.search(
            match, failure.value.message
        ), f"{failure.value.message!r} does not match {match!r}"
    if code is not None:
        assert failure.value.code == code, failure.value.message


@pytest.fixture
def strict_context() -> Iterator[type[StrictMockContext]]:
    yield StrictMockContext
