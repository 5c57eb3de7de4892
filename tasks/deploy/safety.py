"""Guard rails: the git state, the production guards, and signal forwarding to helm."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from invoke import Context, Result
from tasks.core.errors import OpsError
from invoke.runners import Promise

from tasks.core.environments import Environment
from tasks.core.runner import Argv, is_dry, probe, render


@dataclass(frozen=True)
class GitState:
    sha: str
    is_repo: bool
    dirty: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        """The SHA as recorded in the release description and audit log."""
        return f"{self.sha}-dirty" if self.dirty else self.sha


def git_argvs(root: Path) -> tuple[list[str], list[str]]:
    return (
        ["git", "-C", str(root), "rev-parse", "HEAD"],
        ["git", "-C", str(root), "status", "--porcelain"],
    )


def parse_porcelain(text: str) -> tuple[str, ...]:
    """``git status --porcelain`` -> the changed paths."""
    return tuple(line[3:] for line in text.splitlines() if line.strip())


def read_git_state(c: Context, root: Path) -> GitState:
    """Read-only probes: the HEAD commit and uncommitted changes (tracked and untracked)."""
    rev_parse, status = git_argvs(root)
    head = probe(c, rev_parse)
    if head.exited != 0:
        return GitState(sha="unknown", is_repo=False)
    changes = probe(c, status)
    return GitState(sha=head.stdout.strip(), is_repo=True, dirty=parse_porcelain(changes.stdout))


def check_guards(
    environment: Environment, state: GitState, *, allow_dirty: bool, yes: bool, interactive: bool
) -> None:
    """Production needs a clean checkout; a confirmed environment needs a terminal or --yes."""
    if environment.is_production and not allow_dirty:
        if not state.is_repo:
            raise OpsError(
                "production: not a git checkout, so the deployed commit cannot be recorded; "
                "deploy from a clean checkout or pass --allow-dirty"
            )
        if state.dirty:
            shown = ", ".join(state.dirty[:3]) + (", ..." if len(state.dirty) > 3 else "")
            raise OpsError(
                f"production: the git tree has {len(state.dirty)} uncommitted change(s) "
                f"({shown}); commit or stash them, or pass --allow-dirty"
            )
    if environment.confirm and not yes and not interactive:
        raise OpsError(
            f"{environment.name}: deploying needs confirmation but there is no terminal to ask "
            "on; pass --yes to proceed"
        )


def interactive() -> bool:
    return sys.stdin.isatty()


# -- signals ------------------------------------------------------------------------------------

FORWARDED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _forwarding(pid_of: Any, received: list[int]) -> Iterator[None]:
    """While active, SIGINT/SIGTERM to us are recorded and passed on to the child (no SIGKILL)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        pid = pid_of()
        if pid:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, handler) for sig in FORWARDED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_forwarding_signals(c: Context, argv: Argv) -> tuple[Result, int | None]:
    """Run a long helm operation, forwarding SIGINT/SIGTERM to it and waiting for it to exit.

    Killing helm mid-upgrade leaves the release ``pending-upgrade``; a forwarded SIGINT/SIGTERM
    lets helm cancel cleanly (and roll back, with --atomic / --rollback-on-failure). Returns the
    result and the signal received, if any. Under ``--dry`` the command is only printed.
    """
    if is_dry(c):
        return c.run(render(argv)), None  # type: ignore[return-value]
    received: list[int] = []
    holder: dict[str, Any] = {}

    def pid() -> int | None:
        process = getattr(holder.get("runner"), "process", None)
        return process.pid if process is not None else None

    with _forwarding(pid, received):  # installed first: no window where Ctrl-C kills us alone
        started = c.run(render(argv), warn=True, asynchronous=True)
        if not isinstance(started, Promise):  # a mock context: nothing is running
            return started, None  # type: ignore[return-value]
        holder["runner"] = started.runner
        child = pid()
        if received and child:  # a signal arrived while helm was starting
            os.kill(child, received[0])
        result = started.join()
    return result, (received[0] if received else None)


def interrupted_exit(signum: int, what: str) -> OpsError:
    """OpsError 130 (SIGINT) / 143 (SIGTERM) after the child has stopped cleanly."""
    name = signal.Signals(signum).name
    return OpsError(f"interrupted ({name}): {what}", code=128 + signum)
