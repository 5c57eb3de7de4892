"""Asking the user: confirmation on a terminal, ``--yes`` for scripts, never under ``--dry``."""

from __future__ import annotations

import sys

from tasks.core.errors import Refused


def confirm(question: str, *, yes: bool, dry: bool = False) -> None:
    """Ask ``question`` on a terminal; ``--yes`` (or ``--dry``, which changes nothing) skips it;
    no terminal and no ``--yes`` refuses with one line."""
    if yes or dry:
        return
    if not sys.stdin.isatty():
        raise Refused(f"{question} -- refusing: no terminal to confirm on; pass --yes to proceed")
    try:
        answer = input(f"{question} [y/N] ").strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        raise Refused("aborted: not confirmed")


def choice(value: str, valid: tuple[str, ...] | list[str], *, flag: str) -> str:
    """``value`` if it is one of ``valid``, else one line naming ``flag``."""
    if value not in valid:
        from tasks.core.errors import ConfigError

        raise ConfigError(f"{flag}: {value!r} is not valid; valid: {', '.join(valid)}")
    return value
