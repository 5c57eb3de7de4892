"""Real `inv lint` processes at once: the --fix lock, and Ctrl-C / SIGTERM stopping the tools."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tasks.core import locks
from tests.conftest import start_inv
from tests.fixtures_lint import INVOKE_YAML, LintProject, summary_rows

pytestmark = pytest.mark.slow
UNSORTED = "import sys\nimport os\nx = 'a'\nprint(os, sys, x)\n"
SORTED = 'import os\nimport sys\n\nx = "a"\nprint(os, sys, x)\n'
LOCK = Path(".git") / "flowlet-lint-fix.lock"


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_fix_runs_wait_for_each_other(lint_repo: LintProject, tmp_path: Path) -> None:
    """While a --fix holds the tree (here: the test), two more wait, then run one by one."""
    for n in range(4):
        lint_repo.write(f"app/mod{n}.py", UNSORTED)
        lint_repo.write(f"web/src/mod{n}.js", "export const a = {b:1};\n")
    outputs = [tmp_path / f"out{n}.txt" for n in range(2)]
    handles = [out.open("w") for out in outputs]
    with locks.hold(lint_repo.root / LOCK, "lint --fix (the test)"):
        runs = [start_inv(["lint", "--fix"], cwd=lint_repo.root, stdout=h) for h in handles]
        for out in outputs:
            wait_for(lambda: "waiting up to 120s" in out.read_text(), f"{out.name} to wait")
        assert all(run.poll() is None for run in runs)
    for run, handle in zip(runs, handles):
        _, err = run.communicate(timeout=120)
        handle.close()
        assert run.returncode == 0, err
    for n in range(4):
        assert (lint_repo.root / f"app/mod{n}.py").read_text() == SORTED
        assert (lint_repo.root / f"web/src/mod{n}.js").read_text() == "export const a = { b: 1 };\n"
    text = outputs[0].read_text()
    assert "lint --fix: already running: " in text and f"pid {os.getpid()} " in text


def test_two_fix_runs_started_together_both_succeed(lint_repo: LintProject) -> None:
    for n in range(6):
        lint_repo.write(
            f"web/src/mod{n}.js", "".join(f"export const a{i} = {{b:1}};\n" for i in range(20))
        )
        lint_repo.write(f"app/mod{n}.py", UNSORTED)
    for _ in range(2):
        runs = [start_inv(["lint", "--fix"], cwd=lint_repo.root) for _ in range(2)]
        for run in runs:
            out, err = run.communicate(timeout=180)
            assert run.returncode == 0, out + err
            assert set(r for _, r in summary_rows(out).values()) <= {"ok", "ran"}


def test_fix_refuses_at_once_when_fix_wait_is_zero(lint_repo: LintProject) -> None:
    lint_repo.write("invoke.yaml", INVOKE_YAML + "  fix_wait: 0s\n")
    with locks.hold(lint_repo.root / LOCK, "lint --fix (the test)"):
        run = start_inv(["lint", "--fix"], cwd=lint_repo.root)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lint --fix: already running: ")
    assert f"pid {os.getpid()} " in lines[0]
    assert lines[0].endswith("; it rewrites the same files; set lint.fix_wait to wait longer")
    assert "──" not in out  # no tool ran


SLOW_TOOL = f"""#!{sys.executable}
import os, signal, sys, time
marks = os.environ["LINT_SIGNAL_MARKS"]
open(os.path.join(marks, "started-%d" % os.getpid()), "w").close()
def stop(signum, frame):
    with open(os.path.join(marks, "signal-%d" % os.getpid()), "a") as handle:
        handle.write("%d\\n" % signum)
    time.sleep(0.2)  # a second signal would arrive now
    sys.exit(128 + signum)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
time.sleep(120)
"""


def slow_tools(tmp_path: Path) -> tuple[Path, Path]:
    """A virtualenv whose four Python tools sleep until a signal, recording what they get."""
    venv, marks = tmp_path / "venv", tmp_path / "marks"
    (venv / "bin").mkdir(parents=True)
    marks.mkdir()
    for name in ("flake8", "black", "isort", "bandit"):
        (venv / "bin" / name).write_text(SLOW_TOOL)
        (venv / "bin" / name).chmod(0o755)
    return venv, marks


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.signals
@pytest.mark.parametrize(
    "signum,code,name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_signal_stops_every_running_tool_once(
    lint_project: LintProject, tmp_path: Path, signum: int, code: int, name: str
) -> None:
    venv, marks = slow_tools(tmp_path)
    env = {"VIRTUAL_ENV": str(venv), "LINT_SIGNAL_MARKS": str(marks), "SKIP": "detect-secrets"}
    run = start_inv(["lint.python", "--jobs", "4"], cwd=lint_project.root, env=env)
    started = lambda: sorted(marks.glob("started-*"))  # noqa: E731
    wait_for(lambda: len(started()) == 4, "the four tools to start")
    pids = [int(p.name.split("-")[1]) for p in started()]
    run.send_signal(signum)
    out, err = run.communicate(timeout=60)
    assert run.returncode == code, out + err
    assert err.splitlines() == [f"interrupted ({name}): python stopped"]
    for pid in pids:
        assert (marks / f"signal-{pid}").read_text() == f"{signum}\n"  # once, that signal
        assert not alive(pid)
    assert "tool      files" not in out  # no summary: the run did not finish
