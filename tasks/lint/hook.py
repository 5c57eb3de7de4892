"""The git pre-push hook: its script, where it goes, and whether an existing one is ours."""

from __future__ import annotations

import shlex
from pathlib import Path

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
# "<local ref> <local sha> <remote ref> <remote sha>"; `inv lint --pre-push` reads them.
cd "$(git rev-parse --show-toplevel)"{subdir} || exit 1
PYTHON={shlex.quote(python)}
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" -m invoke lint --changed --pre-push "$1"
"""


def is_ours(path: Path) -> bool:
    """True if the hook at ``path`` carries :data:`HOOK_MARKER` (or does not exist)."""
    if not path.exists():
        return True
    try:
        return HOOK_MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
