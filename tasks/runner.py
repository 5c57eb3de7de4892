"""The one place commands are run, and the small helpers every collection shares.

Commands are built as argv lists by pure functions and rendered with :func:`shlex.join` here,
never assembled as shell strings by hand. Anything that changes the world goes through
:func:`run` (so Invoke's global ``--dry`` prints it instead); read-only probes go through
:func:`probe`, which runs even under ``--dry``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from invoke import Context, Result
from invoke.exceptions import Exit

Argv = Sequence[str]


def render(argv: Argv) -> str:
    """The shell-safe rendering of ``argv`` (what ``c.run`` receives and ``--dry`` prints)."""
    return shlex.join(list(argv))


def is_dry(c: Context) -> bool:
    """True under Invoke's global ``--dry``."""
    return bool(c.config.run.dry)


def run(c: Context, argv: Argv, **kwargs: object) -> Result:
    """Run a command that may change things. Under ``--dry`` it is only printed."""
    return c.run(render(argv), **kwargs)  # type: ignore[return-value]


def probe(c: Context, argv: Argv, *, warn: bool = True, hide: bool = True) -> Result:
    """Run a read-only command, even under ``--dry`` (its answer decides the plan).

    It never reads the user's stdin (``in_stream=False``): a probe is not interactive.
    """
    return c.run(  # type: ignore[return-value]
        render(argv), dry=False, warn=warn, hide=hide, echo=False, in_stream=False
    )


@contextmanager
def private_temp_file(content: str, *, prefix: str, suffix: str = "") -> Iterator[str]:
    """A temp file holding ``content`` (a secret), mode 0600 from creation, always removed.

    Commands read secrets from such a file (``--from-env-file``, ``--from-file``) so that they
    never appear on any argv; the path itself is safe to show.
    """
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix)  # O_EXCL, mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        yield path
    finally:
        os.unlink(path)


def require_tools(tools: Mapping[str, str]) -> None:
    """Fail with one line per the first missing tool: ``{binary: how to install it}``."""
    for binary, hint in tools.items():
        if shutil.which(binary) is None:
            raise Exit(f"{binary!r} not found on PATH: {hint}")


def confirm(question: str, *, yes: bool) -> None:
    """Ask ``question`` on a terminal; ``--yes`` skips it; no terminal and no ``--yes`` refuses."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Exit(f"{question} -- refusing: no terminal to confirm on; pass --yes to proceed")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise Exit("aborted: not confirmed")


def choice(value: str, valid: Sequence[str], *, flag: str) -> str:
    """Return ``value`` if it is one of ``valid``, else fail naming ``flag``."""
    if value not in valid:
        raise Exit(f"{flag}: {value!r} is not valid; valid: {', '.join(valid)}")
    return value
