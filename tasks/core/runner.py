"""The one process runner: every child process of the toolkit starts here.

Commands are argv lists built by pure functions (never shell strings assembled by hand).

- :func:`run` -- a command that may change things, through Invoke's ``c.run`` (so ``--dry``
  prints it instead, and tests can record it with a mock context).
- :func:`probe` -- a read-only command whose answer decides the plan: runs under ``--dry`` too,
  never reads the user's stdin.
- :func:`spawn` -- a :class:`subprocess.Popen` for pipelines, parallel tools and long-lived
  process groups (the caller owns ``--dry``: it executes a plan that ``--dry`` printed).
- :func:`capture` -- a quick read-only command without Invoke's machinery (``git`` in a hook).

Every child gets an explicit environment (:func:`child_env`: the toolkit's secret variables
removed unless that child needs one), its own process group (so a Ctrl-C reaches it once, from
us), default signal dispositions (whatever ``inv`` inherited), and dies with ``inv`` even on
``kill -9`` (``PR_SET_PDEATHSIG``) unless it is detached by design.

A command that must finish its own cleanup when stopped (``helm upgrade``: its rollback) runs
with :data:`GRACEFUL` (:class:`Stopping`): whatever ends ``inv`` -- Ctrl-C, SIGTERM, SIGHUP, or
``kill -9`` -- it gets SIGTERM only, in its own session (a closing terminal's SIGHUP never
reaches it), and it may outlive the reader of its output.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from invoke import Context, Result
from invoke.runners import Local as InvokeLocal

from tasks.core.errors import OpsError

Argv = Sequence[str]

# Variables never passed to a child unless it asks for them by name (``pass_secrets``): the
# standard ones plus those the config names (password_env, secret.env_vars, ...), registered by
# the boundary when a task starts.
STANDARD_SECRETS = frozenset({"PGPASSWORD", "MYSQL_PWD"})
_secret_names: set[str] = set(STANDARD_SECRETS)
# Children started by spawn() that are not detached: the boundary stops any still running.
_children: list[subprocess.Popen[Any]] = []
_PR_SET_PDEATHSIG = 1
_libc: Any = None


@dataclass(frozen=True)
class Stopping:
    """How a child of :func:`run` is stopped when ``inv`` is.

    ``forward``: the signal an interrupt of ``inv`` sends to the child's group (None: the
    interrupt's own, SIGINT/SIGTERM/SIGHUP); ``death_signal``: what the child gets when ``inv``
    dies (``kill -9``, the OOM killer); ``own_session``: a new session, so that a closing
    terminal's SIGHUP reaches only ``inv``; ``outlive_reader``: the child may still write after
    ``inv`` died (it holds a read end of its own output pipes, so its writes do not fail: helm,
    a Go program, would die of SIGPIPE there), and ``inv`` waits for it even when copying its
    output failed (a closed terminal).
    """

    forward: int | None = None
    death_signal: int = signal.SIGKILL
    own_session: bool = False
    outlive_reader: bool = False


DEFAULT_STOPPING = Stopping()
# helm upgrade/install/rollback: SIGTERM (its rollback with --rollback-on-failure/--atomic),
# never SIGHUP (it would die outright) nor SIGKILL (the release left pending-*)
GRACEFUL = Stopping(
    forward=signal.SIGTERM, death_signal=signal.SIGTERM, own_session=True, outlive_reader=True
)
# the Stopping of the command run() is about to start (c.run takes no options of ours)
_next = threading.local()


def render(argv: Argv) -> str:
    """The shell-safe rendering of ``argv`` (what ``c.run`` receives and ``--dry`` prints)."""
    return shlex.join([str(a) for a in argv])


def is_dry(c: Context) -> bool:
    """True under Invoke's global ``--dry``."""
    return bool(c.config.run.dry)


def register_secret_names(names: Iterable[str]) -> None:
    """Add environment variable names that hold secrets (never passed on unasked)."""
    _secret_names.update(n for n in names if n)


def secret_names() -> frozenset[str]:
    return frozenset(_secret_names)


def child_env(
    extra: Mapping[str, str] | None = None, *, pass_secrets: Iterable[str] = ()
) -> dict[str, str]:
    """The environment of a child: ours without the secret variables, plus ``extra``.

    ``pass_secrets`` names secret variables this child needs (e.g. the one rclone reads its
    credentials from); everything else secret is removed.
    """
    keep = set(pass_secrets)
    env = {k: v for k, v in os.environ.items() if k not in _secret_names or k in keep}
    env.update(extra or {})
    return env


def _load_libc() -> Any:
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def child_setup(*, death_signal: int | None, new_group: bool = True) -> Callable[[], None]:
    """The ``preexec_fn`` of every child: own process group, default signals, dies with us
    (``death_signal``: SIGKILL, or SIGTERM for a child that cleans up; None: outlives us)."""
    parent = os.getpid()
    # looked up here, not in the child: a symbol lookup there (dlsym) takes the loader's lock,
    # which another thread of ours may have held when we forked
    prctl = _load_libc().prctl if death_signal else None
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

    def setup() -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_DFL)
        if new_group:
            os.setpgid(0, 0)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(death_signal or 0), 0, 0, 0)
            if os.getppid() != parent:  # we died before prctl took effect
                os.kill(os.getpid(), int(death_signal or signal.SIGKILL))

    return setup


class Local(InvokeLocal):
    """Invoke's local runner with the toolkit's process rules (registered as ``runners.local``).

    The child runs in its own process group with default signal dispositions and dies with us;
    a Ctrl-C (or a SIGTERM/SIGHUP the boundary turned into an interrupt) is forwarded to that
    group (as the command's :class:`Stopping` says), we wait for it to exit, and the interrupt
    is raised again afterwards, so that a stopped command never looks like an ordinary failure.
    Its pipes are closed when it ends.
    """

    def start(self, command: str, shell: str, env: dict[str, Any]) -> None:
        self._stopping: Stopping = getattr(_next, "stopping", DEFAULT_STOPPING)
        _next.stopping = DEFAULT_STOPPING  # this command's only
        if self.using_pty:
            super().start(command, shell, env)
            return
        self._interrupt: KeyboardInterrupt | None = None
        stopping = self._stopping
        # A child that may outlive us keeps a read end of its own output pipes: after we died
        # its writes still succeed (a few lines of helm's rollback fit the pipe's 64 kB), where
        # a Go program would die of SIGPIPE whatever its inherited disposition.
        out: Any = subprocess.PIPE
        err: Any = subprocess.PIPE
        kept: tuple[int, ...] = ()
        if stopping.outlive_reader:
            (out_r, out), (err_r, err) = os.pipe(), os.pipe()
            kept = (out_r, err_r)
        try:
            # Invoke's shell runs a command that run()/probe() rendered from argv (shlex.join).
            self.process = subprocess.Popen(
                command,
                shell=True,  # nosec B602
                executable=shell,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.PIPE,
                pass_fds=kept,
                start_new_session=stopping.own_session,
                preexec_fn=child_setup(
                    death_signal=stopping.death_signal,
                    new_group=not stopping.own_session,
                ),
            )
        except BaseException:
            for fd in (*kept, out, err) if kept else ():
                os.close(fd)
            raise
        if kept:
            os.close(out)
            os.close(err)
            self.process.stdout = os.fdopen(kept[0], "rb")
            self.process.stderr = os.fdopen(kept[1], "rb")

    @property
    def process_is_finished(self) -> bool:
        """Whether the child has exited (reaping it), without ``Popen.poll()``: an interrupt
        (Ctrl-C, or a SIGTERM the boundary raises) landing between poll()'s lock acquire and
        its ``try`` leaves that lock held, and poll() then answers "running" for ever (a
        SIGTERMed deploy once waited so on a helm long gone)."""
        if self.using_pty:
            return bool(super().process_is_finished)
        process = self.process
        if process.returncode is None:
            try:
                pid, status = os.waitpid(process.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by Popen already (as Popen does: exit 0 if unset)
                pid, status = process.pid, 0
            if pid == process.pid:
                process.returncode = os.waitstatus_to_exitcode(status)
        return process.returncode is not None

    @property
    def has_dead_threads(self) -> bool:
        """A child that must finish its cleanup is waited for even when a thread copying its
        output died (``inv``'s terminal closed: writing there fails with EIO)."""
        if not self.using_pty and getattr(self, "_stopping", DEFAULT_STOPPING).outlive_reader:
            return False
        return bool(super().has_dead_threads)

    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        if self.using_pty:
            super().send_interrupt(interrupt)
            return
        self._interrupt = interrupt
        signum = self._stopping.forward or int(getattr(interrupt, "signum", signal.SIGINT))
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self) -> Result:
        try:
            result = super()._finish()
        except BaseException:
            if getattr(self, "_interrupt", None) is not None:
                raise self._interrupt from None  # type: ignore[misc]
            raise
        if getattr(self, "_interrupt", None) is not None:
            raise self._interrupt  # type: ignore[misc]
        return result

    def stop(self) -> None:
        super().stop()
        process = getattr(self, "process", None)
        for stream in (process.stdin, process.stdout, process.stderr) if process else ():
            if stream is not None:
                stream.close()


class Feed(io.StringIO):
    """Text for a child's stdin through ``c.run`` (``in_stream``), handed over 64 kB at a time.

    Invoke reads a non-terminal ``in_stream`` one character per loop, with a 10 ms nap in
    between (``terminals.bytes_to_read`` answers 1): 2 kB took 20 s, and a chart's CRDs
    (megabytes) hours.
    """

    def read(self, size: int | None = -1) -> str:
        return super().read(65536 if size is not None and 0 <= size < 65536 else size)


def run(
    c: Context,
    argv: Argv,
    *,
    env: Mapping[str, str] | None = None,
    pass_secrets: Iterable[str] = (),
    stdin: str | None = None,
    stopping: Stopping = DEFAULT_STOPPING,
    **kwargs: Any,
) -> Result:
    """Run a command that may change things; under ``--dry`` it is only printed.

    ``stdin`` is text fed to the command (a manifest; a secret only when the command needs it:
    it is never printed); ``stopping``: how it is stopped when ``inv`` is (:data:`GRACEFUL` for
    a command that must finish its own cleanup). Other keyword arguments go to ``c.run``
    (``hide``, ``warn`` ...).
    """
    if stdin is not None:
        kwargs["in_stream"] = Feed(stdin)
    _next.stopping = stopping
    try:
        return c.run(  # type: ignore[no-any-return, return-value]
            render(argv),
            env=child_env(env, pass_secrets=pass_secrets),
            replace_env=True,
            **kwargs,
        )
    finally:
        _next.stopping = DEFAULT_STOPPING


def probe(
    c: Context,
    argv: Argv,
    *,
    warn: bool = True,
    hide: bool = True,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> Result:
    """Run a read-only command, even under ``--dry`` (its answer decides the plan).

    It never reads the user's stdin: a probe is not interactive (``stdin`` text may be fed).
    """
    return c.run(  # type: ignore[no-any-return, return-value]
        render(argv),
        dry=False,
        warn=warn,
        hide=hide,
        echo=False,
        in_stream=Feed(stdin) if stdin is not None else False,
        env=child_env(env),
        replace_env=True,
    )


def spawn(
    argv: Argv,
    *,
    env: Mapping[str, str] | None = None,
    pass_secrets: Iterable[str] = (),
    replace_env: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    fds: Sequence[int] = (),
    user: str | None = None,
    detach: bool = False,
    death_signal: int = signal.SIGKILL,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """Start ``argv`` under the toolkit's rules (see the module docstring).

    ``env``: extra variables (or, with ``replace_env``, the whole environment); ``fds``: file
    descriptors the child inherits (secrets as ``/dev/fd/N``); ``user``: run as that system user
    (when we are root); ``detach``: a new session that outlives us (the dev stack's
    ``--detach``); ``death_signal``: what the child gets when we die (SIGINT for PostgreSQL:
    its fast shutdown).
    """
    extra: dict[str, Any] = {}
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    try:
        child = subprocess.Popen(  # nosec B603
            [str(a) for a in argv],
            env=dict(env or {}) if replace_env else child_env(env, pass_secrets=pass_secrets),
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=tuple(fds),
            start_new_session=detach,
            preexec_fn=child_setup(
                death_signal=None if detach else death_signal, new_group=not detach
            ),
            text=text,
            **extra,
        )
    except FileNotFoundError as exc:
        if os.sep not in str(argv[0]) and shutil.which(str(argv[0])) is None:
            raise OpsError(f"{argv[0]!r} not found on PATH") from None
        raise OpsError(f"cannot start {argv[0]}: {exc.strerror} ({exc.filename})") from None
    if not detach:
        _children[:] = [p for p in _children if p.returncode is None]
        _children.append(child)
    return child


class Captured:
    """What :func:`capture` returns."""

    __slots__ = ("argv", "returncode", "stdout", "stderr")

    def __init__(self, argv: Argv, returncode: int, stdout: str, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def capture(
    argv: Argv,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = False,
    what: str = "",
) -> Captured:
    """Run a quick read-only command and collect its output (``check``: fail on non-zero)."""
    try:
        child = spawn(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        raise OpsError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        out, err = child.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(child)
        raise OpsError(f"{what or argv[0]}: no answer within {timeout:g}s") from None
    except BaseException:
        stop_group(child)
        raise
    result = Captured(argv, child.returncode, out, err)
    if check and not result.ok:
        from tasks.core.errors import CommandFailed

        raise CommandFailed(argv, child.returncode, err, what=what)
    return result


def stop_group(child: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, SIGKILL after ``grace`` seconds; reap it."""
    if child.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                child.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            child.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_children() -> None:
    """Stop every non-detached child that :func:`spawn` started and that still runs."""
    while _children:
        child = _children.pop()
        stop_group(child, grace=2.0)


def require_tools(tools: Mapping[str, str]) -> None:
    """Fail with one line for the first missing tool: ``{binary: how to install it}``."""
    for binary, hint in tools.items():
        if shutil.which(binary) is None:
            raise OpsError(f"{binary!r} not found on PATH: {hint}")


def python() -> str:
    """The Python running ``inv`` (for tools run as ``python -m``)."""
    return sys.executable
