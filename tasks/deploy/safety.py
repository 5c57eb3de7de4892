"""Guard rails before a deploy changes anything: the git state and the production guards.

Signals need nothing here: the runner's ``Local`` forwards Ctrl-C / SIGTERM to helm's process
group (never SIGKILL, which would leave the release ``pending-upgrade``), waits for helm to
finish its own rollback, then raises the interrupt again (see :mod:`tasks.deploy.run`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from invoke import Context

from tasks.core.environments import Environment
from tasks.core.errors import Refused
from tasks.core.runner import probe


@dataclass(frozen=True)
class GitState:
    sha: str
    is_repo: bool
    dirty: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        """The SHA as recorded in the release description, the audit log and the lock."""
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
    environment: Environment,
    state: GitState,
    *,
    allow_dirty: bool,
    yes: bool,
    interactive: bool,
    dry: bool = False,
) -> None:
    """Production needs a clean checkout; a confirmed environment needs a terminal or --yes
    (not under --dry, which never asks and changes nothing)."""
    if environment.is_production and not allow_dirty:
        if not state.is_repo:
            raise Refused(
                "production: not a git checkout, so the deployed commit cannot be recorded; "
                "deploy from a clean checkout or pass --allow-dirty"
            )
        if state.dirty:
            shown = ", ".join(state.dirty[:3]) + (", ..." if len(state.dirty) > 3 else "")
            raise Refused(
                f"production: the git tree has {len(state.dirty)} uncommitted change(s) "
                f"({shown}); commit or stash them, or pass --allow-dirty"
            )
    if environment.confirm and not yes and not interactive and not dry:
        raise Refused(
            f"{environment.name}: deploying needs confirmation but there is no terminal to ask "
            "on; pass --yes to proceed"
        )


def interactive() -> bool:
    return sys.stdin.isatty()
