"""The one process runner: explicit environments without secrets, own process groups, default
signal dispositions, children that die with their parent, and the Local runner Invoke uses."""

from __future__ import annotations

import os
import re
import signal
import subprocess  # nosec B404
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from invoke import Config, Context

from tasks.core import runner
from tasks.core.errors import CommandFailed, OpsError


def test_child_env_drops_secrets_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "pg-secret")
    monkeypatch.setenv("FLOWLET_TEST_TOKEN", "tok")
    monkeypatch.setenv("FLOWLET_TEST_PLAIN", "plain")
    runner.register_secret_names(["FLOWLET_TEST_TOKEN"])
    env = runner.child_env({"EXTRA": "1"})
    assert "PGPASSWORD" not in env and "FLOWLET_TEST_TOKEN" not in env
    assert env["FLOWLET_TEST_PLAIN"] == "plain" and env["EXTRA"] == "1"
    assert runner.child_env(pass_secrets=["FLOWLET_TEST_TOKEN"])["FLOWLET_TEST_TOKEN"] == "tok"


def test_spawned_child_sees_no_secret_in_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLET_TEST_TOKEN", "tok")
    runner.register_secret_names(["FLOWLET_TEST_TOKEN"])
    child = runner.capture(["sh", "-c", "env"])
    assert "FLOWLET_TEST_TOKEN" not in child.stdout and "PATH=" in child.stdout


def test_spawn_puts_the_child_in_its_own_process_group() -> None:
    child = runner.spawn(["sleep", "30"])
    try:
        assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
    finally:
        runner.stop_group(child)
    assert child.returncode == -signal.SIGTERM


def test_children_start_with_default_signals_even_if_we_ignore_sigint() -> None:
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
        child = runner.capture([sys.executable, "-c", probe])
    finally:
        signal.signal(signal.SIGINT, old)
    assert child.stdout.strip() == "False"


@pytest.mark.signals
def test_a_child_dies_with_its_parent_even_on_kill_9() -> None:
    parent_code = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        from tasks.core import runner
        child = runner.spawn(["sleep", "60"])
        print(child.pid, flush=True)
        time.sleep(60)
        """ % os.getcwd())
    parent = subprocess.Popen(  # nosec B603
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{grandchild}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{grandchild}"), "the child outlived its parent"


@pytest.mark.signals
def test_a_graceful_child_gets_sigterm_when_we_die_and_can_still_write(tmp_path: Path) -> None:
    """kill -9 of its parent: a GRACEFUL child (helm upgrade) gets SIGTERM, not SIGKILL, in its
    own session, and writing to its orphaned stdout does not kill it (SIGPIPE) mid-cleanup."""
    done = tmp_path / "done"
    script = (
        f"trap 'echo cleaning up; echo cleaning up >&2; echo TERM > {done}; exit 0' TERM; "
        "echo started; while :; do sleep 0.1; done"
    )
    parent_code = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from invoke import Config, Context
        from tasks.core import runner
        c = Context(Config(overrides={"runners": {"local": runner.Local}}))
        runner.run(c, ["sh", "-c", %r], stopping=runner.GRACEFUL, in_stream=False)
        """ % (os.getcwd(), script))
    parent = subprocess.Popen(  # nosec B603
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    assert parent.stdout.readline() == "started\n"
    (child,) = (
        int(p) for p in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
    )
    assert os.getsid(child) == child, "its own session: a closing terminal's SIGHUP misses it"
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not done.exists():
        time.sleep(0.05)
    assert done.read_text() == "TERM\n"


def test_detached_children_outlive_us_by_design() -> None:
    child = runner.spawn(["sleep", "30"], detach=True)
    try:
        assert os.getsid(child.pid) == child.pid
        assert child not in runner._children
    finally:
        runner.stop_group(child)


def test_a_missing_binary_is_one_line() -> None:
    with pytest.raises(OpsError, match="^'no-such-tool-here' not found on PATH$"):
        runner.spawn(["no-such-tool-here"])


def test_capture_check_keeps_the_exit_code_and_the_last_line() -> None:
    with pytest.raises(CommandFailed) as failed:
        runner.capture(["sh", "-c", "echo first >&2; echo 'last words' >&2; exit 5"], check=True)
    assert failed.value.code == 5
    assert failed.value.message == "sh failed (exit 5): last words"


def test_the_local_runner_gives_c_run_children_their_own_group() -> None:
    c = Context(Config(overrides={"runners": {"local": runner.Local}}))
    result = runner.run(c, ["sh", "-c", "ps -o pgid= -p $$; echo $$"], hide=True, in_stream=False)
    pgid, pid = result.stdout.split()
    assert pgid == pid


def test_run_feeds_stdin_and_dry_prints_instead(capsys: pytest.CaptureFixture[str]) -> None:
    c = Context(Config(overrides={"runners": {"local": runner.Local}}))
    assert runner.run(c, ["cat"], stdin="a manifest\n", hide=True).stdout == "a manifest\n"
    dry = Context(Config(overrides={"runners": {"local": runner.Local}, "run": {"dry": True}}))
    runner.run(dry, ["kubectl", "apply", "-f", "-"], stdin="secret: value\n")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # Invoke's echo is bold
    assert out == "kubectl apply -f -\n"  # the command, never what goes to its stdin


def test_the_local_runner_finishes_when_an_interrupt_left_popens_lock_held() -> None:
    """An interrupt raised between ``Popen.poll()``'s lock acquire and its ``try`` leaves the
    lock held and poll() answering "running" for ever: a CI deploy once hung so after SIGTERM.
    The runner reaps its child itself."""

    class Interrupted(runner.Local):
        def start(self, command: str, shell: str, env: dict[str, str]) -> None:
            super().start(command, shell, env)
            self.process._waitpid_lock.acquire()  # type: ignore[attr-defined]

    c = Context(Config(overrides={"runners": {"local": Interrupted}}))
    results: list[int] = []
    worker = threading.Thread(
        target=lambda: results.append(
            runner.run(c, ["sh", "-c", "exit 7"], hide=True, warn=True, in_stream=False).exited
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "c.run never saw its child exit"
    assert results == [7]
