"""A scratch tasks file on the project's core: drives the boundary in a real ``inv`` process
(tests/test_core_boundary.py copies it into a temp dir with an invoke.yaml)."""

import os
import time

from invoke import Collection

__path__ = [os.path.join(os.environ["FLOWLET_REPO"], "tasks")]

from tasks.core import configload  # noqa: E402

configload.install()

from tasks.core import boundary, runner  # noqa: E402
from tasks.core.errors import OpsError  # noqa: E402
from tasks.core.settings import Int  # noqa: E402
from tasks.core.task import task  # noqa: E402


@task
def refuse(c):
    """Fail with the project's error type."""
    raise OpsError("refused: the reason", code=4)


@task
def crash(c):
    """A bug."""
    raise ValueError("boom")


@task
def command(c):
    """A command that fails: its exit code is kept."""
    runner.run(c, ["sh", "-c", "echo 'the tool said no' >&2; exit 7"], hide=True)


@task(flags={"count": Int(1, minimum=1)}, help={"count": "how many"})
def count(c, count=None):
    """A flag converted by the schema."""
    print(f"count={count!r}")


@task(help={"marker": "file the cleanup writes", "group": "also run a c.run child"})
def hold(c, marker="", group=False):
    """Start a child, register a cleanup, print the pids, then wait to be signalled."""
    boundary.on_exit(lambda: open(marker, "w").write("cleaned"))
    child = runner.spawn(["sleep", "120"])
    print(f"child {child.pid}", flush=True)
    if group:
        runner.run(c, ["sh", "-c", "echo grandchild $$; exec sleep 120"])
    time.sleep(120)


@task
def chatter(c):
    """Print more than a pipe holds (for `| head`)."""
    for n in range(200000):
        print(f"line {n}")


ns = Collection(refuse, crash, command, count, hold, chatter)
ns.configure({"runners": {"local": runner.Local}})
