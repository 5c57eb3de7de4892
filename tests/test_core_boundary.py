"""The one error boundary, in real ``inv`` processes: one line and the right exit code for
every way a task can end, cleanups on every path, children never outliving ``inv``."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import REPO, run_inv, start_inv


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    shutil.copy(REPO / "tests" / "data" / "core" / "tasks.py", tmp_path / "tasks.py")
    return tmp_path


def inv(scratch: Path, *argv: str) -> tuple[int, str, str]:
    result = run_inv(list(argv), cwd=scratch, env={"FLOWLET_REPO": str(REPO)})
    return result.returncode, result.stdout, result.stderr


def test_an_ops_error_is_its_line_and_its_code(scratch: Path) -> None:
    assert inv(scratch, "refuse") == (4, "", "refused: the reason\n")


def test_a_bug_is_one_line_exit_3_never_a_traceback(scratch: Path) -> None:
    code, out, err = inv(scratch, "crash")
    assert code == 3
    assert err == (
        "internal error in crash: ValueError: boom (FLOWLET_TRACEBACK=1 shows the traceback)\n"
    )


def test_a_failed_command_keeps_its_exit_code_and_last_line(scratch: Path) -> None:
    code, out, err = inv(scratch, "command")
    assert code == 7
    assert err == "sh failed (exit 7): the tool said no\n"


@pytest.mark.parametrize(
    "value,expected",
    [("3", "count=3\n"), (None, "count=None\n")],
    ids=["given", "absent"],
)
def test_flags_are_converted_by_the_schema(scratch: Path, value: str | None, expected: str) -> None:
    argv = ["count", "--count", value] if value is not None else ["count"]
    assert inv(scratch, *argv) == (0, expected, "")


@pytest.mark.parametrize(
    "value,shown", [("abc", "'abc'"), ("0", "0"), ("-2", "-2"), ("1.5", "'1.5'")]
)
def test_a_bad_flag_value_is_one_line(scratch: Path, value: str, shown: str) -> None:
    code, out, err = inv(scratch, "count", "--count", value)
    assert (code, out) == (1, "")
    assert err == f"--count: {shown} is not valid; valid: an integer >= 1\n"


def _wait_for_line(child: object, prefix: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    stdout = child.stdout  # type: ignore[attr-defined]
    while time.monotonic() < deadline:
        line = stdout.readline()
        if line.startswith(prefix):
            return str(line)
    raise AssertionError(f"no {prefix!r} line")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rpartition(")")[2].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.signals
@pytest.mark.parametrize(
    "sig,code,name",
    [
        (signal.SIGINT, 130, "SIGINT"),
        (signal.SIGTERM, 143, "SIGTERM"),
        (signal.SIGHUP, 129, "SIGHUP"),
    ],
    ids=["sigint", "sigterm", "sighup"],
)
def test_signals_run_cleanups_stop_children_and_exit_128_plus_n(
    scratch: Path, tmp_path: Path, sig: int, code: int, name: str
) -> None:
    marker = tmp_path / "cleaned"
    child = start_inv(
        ["hold", "--marker", str(marker)], cwd=scratch, env={"FLOWLET_REPO": str(REPO)}
    )
    grandchild = int(_wait_for_line(child, "child ").split()[1])
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == code
    assert err == f"interrupted ({name}): hold stopped\n"
    assert marker.read_text() == "cleaned"
    assert _gone(grandchild)


@pytest.mark.signals
def test_kill_9_of_inv_takes_its_children_along(scratch: Path, tmp_path: Path) -> None:
    child = start_inv(
        ["hold", "--marker", str(tmp_path / "m"), "--group"],
        cwd=scratch,
        env={"FLOWLET_REPO": str(REPO)},
    )
    spawned = int(_wait_for_line(child, "child ").split()[1])
    via_invoke = int(_wait_for_line(child, "grandchild ").split()[1])
    assert os.getpgid(spawned) == spawned and os.getpgid(via_invoke) == via_invoke
    child.kill()
    child.communicate(timeout=30)
    assert _gone(spawned) and _gone(via_invoke), "a child outlived inv after kill -9"


def test_a_closed_stdout_ends_quietly(scratch: Path) -> None:
    """`inv ... | head`: no traceback, no message; the SIGPIPE convention (141)."""
    result = run_inv(
        'inv chatter | head -1; echo "status ${PIPESTATUS[0]}"',
        cwd=scratch,
        env={"FLOWLET_REPO": str(REPO)},
    )
    assert result.stdout == "line 0\nstatus 141\n"
    assert result.stderr == ""
