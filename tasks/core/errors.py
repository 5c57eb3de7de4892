"""The project's error types. Planners and helpers raise them; :mod:`tasks.core.boundary`
turns them into one stderr line and an exit code (:attr:`OpsError.code`).

Exit codes (README "Exit codes"): 1 bad input or refused; a failed command keeps its own code;
130 SIGINT, 143 SIGTERM, 129 SIGHUP; 3 an internal error (a bug).
"""

from __future__ import annotations

from collections.abc import Sequence


class OpsError(Exception):
    """Something the user must hear about in one line; ``code`` is the exit code."""

    code = 1

    def __init__(self, message: str | None = "", *, code: int | None = None) -> None:
        super().__init__(message or "")
        self.message = message or ""
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(OpsError):
    """A bad config key, ``INVOKE_*`` variable, ``-f`` file or flag value (names it)."""


class Refused(OpsError):
    """A guard said no (production without confirmation, a lock held by someone else ...)."""


class CommandFailed(OpsError):
    """A child process failed: the exit code is the command's own."""

    def __init__(self, argv: Sequence[str], code: int, stderr: str = "", *, what: str = "") -> None:
        self.argv = tuple(argv)
        self.stderr = stderr
        label = what or (self.argv[0] if self.argv else "command")
        tail = last_line(stderr)
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        message = f"{label} failed ({how})" + (f": {tail}" if tail else "")
        super().__init__(message, code=code if code > 0 else 128 - code if code < 0 else 1)


class Interrupted(OpsError):
    """A signal stopped the run (after cleanups): exit 128 + signal number."""

    def __init__(self, signum: int, what: str = "") -> None:
        import signal

        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"interrupted ({name})" + (f": {what}" if what else ""), code=128 + signum)


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (a tool's error message, usually), stripped."""
    for line in reversed((text or "").splitlines()):
        if line.strip():
            return line.strip()
    return ""
