"""The git pre-push hook: its script, where it goes, and installing it."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from tasks.core import runner
from tasks.core.errors import OpsError
from tasks.core.files import make_dirs, write_atomic

HOOK_MARKER = "# flowlet-ops-lint-hook: installed by `inv lint.install-hook`"


def hook_script(python: str, project_dir: str) -> str:
    """A POSIX sh hook: git passes the refs on stdin, which ``--pre-push`` reads.

    ``project_dir`` is the project root relative to the repository top level (where git runs
    hooks); ``python`` is the interpreter with invoke (the one that installed the hook).
    """
    subdir = "" if project_dir in ("", ".") else "/" + shlex.quote(project_dir)
    return f"""#!/bin/sh
{HOOK_MARKER}; reinstall with it, do not edit.
# git runs this with "<remote name> <url>" as arguments and one line per pushed ref on stdin:
# "<local ref> <local sha> <remote ref> <remote sha>"; `inv lint --pre-push` reads them and
# lints the pushed commits' content (never the working tree). SKIP=tool,tool skips tools.
cd "$(git rev-parse --show-toplevel)"{subdir} || exit 1
PYTHON={shlex.quote(python)}
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" -m invoke lint --pre-push "$1"
"""


def is_ours(path: Path) -> bool:
    """True if the hook at ``path`` carries :data:`HOOK_MARKER` (or does not exist)."""
    if not path.exists():
        return True
    try:
        return HOOK_MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def install_hook(c: Any, root: Path, force: bool) -> None:
    """Write the hook into the repository holding ``root`` (honours ``core.hooksPath``)."""
    from tasks.lint import git

    top = git.top_level(root, "lint.install-hook")
    hooks = git.lines(root, ["rev-parse", "--git-path", "hooks"], "lint.install-hook")[0]
    hooks_dir = Path(hooks) if os.path.isabs(hooks) else root / hooks
    target = hooks_dir / "pre-push"
    if not is_ours(target) and not force:
        raise OpsError(
            f"lint.install-hook: {target} exists and was not written by "
            "lint.install-hook; pass --force to replace it"
        )
    script = hook_script(sys.executable, os.path.relpath(root.resolve(), top.resolve()))
    if runner.is_dry(c):
        print(f"would write {target}:\n{script}")
        return
    make_dirs(hooks_dir, 0o755)
    if not is_ours(target):
        backup = target.with_name("pre-push.replaced")
        target.replace(backup)
        print(f"lint: kept the replaced hook as {backup}")
    write_atomic(target, script, 0o755)
    print(f"lint: installed {target} (lints the content of the commits each push brings)")
