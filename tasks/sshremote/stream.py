"""Remote pipelines streamed, binary-safe, into a local file: pipefail, checksums, errors."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import _label
from .transport import CHUNK_SIZE, MAX_PACKET_SIZE, WINDOW_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from fabric import Connection

#: Bytes of remote stderr kept (the tail) by :func:`stream_to_file`.
STDERR_LIMIT = 64 * 2**10


class RemoteStreamError(Exception):
    """The remote stream ended without a trustworthy result (connection lost, no exit status)."""


def pipefail_argv(script: str) -> list[str]:
    """``bash -eo pipefail -c SCRIPT``: any failing stage of any pipeline fails the command."""
    return ["bash", "-eo", "pipefail", "-c", script]


def pipefail_command(script: str) -> str:
    """The remote command line for :func:`pipefail_argv` (what the remote login shell runs)."""
    return shlex.join(pipefail_argv(script))


SHA256_MARK = "flowlet-sha256:"


def sha256_tee_script(script: str) -> str:
    """``script`` whose stdout is also hashed on the remote side (digest as last stderr line).

    ``{ SCRIPT; } | tee /dev/fd/3 | sha256sum`` with fd 3 the original stdout: every stage is
    covered by pipefail, and bash waits for the hash before exiting. Read the digest back with
    :func:`split_remote_sha256`.
    """
    return (
        f"{{ {{ {script}\n}} | tee /dev/fd/3 | sha256sum | sed 's/^/{SHA256_MARK} /' >&2; }} 3>&1"
    )


HANGUP_GUARD = (
    "exec 4<&0 </dev/null; " "( { cat <&4; kill -TERM 0; } >/dev/null 2>&1 & ); " "exec 4<&-; "
)


SECRET_READ = "IFS= read -r -d '' FLOWLET_SECRET; "  # nosec B105 - reads it from stdin


def kill_on_hangup_script(script: str) -> str:
    """``script`` whose whole process group gets SIGTERM when the SSH channel closes.

    sshd does not signal a session's processes when the client closes the channel (Ctrl-C,
    crash); it only closes their pipes. A pipeline that writes then dies of SIGPIPE, but one
    that is silent (pg_dump waiting on a lock) would run on, orphaned. So a watcher, detached
    from the script's jobs (``wait`` does not wait for it), reads the channel's stdin, which
    the caller keeps open and never writes to: EOF means the channel is gone (or the session
    ended normally, when the group is empty), and it kills the group sshd made for the
    session. The script itself gets ``/dev/null`` as stdin.
    """
    return HANGUP_GUARD + script


def split_remote_sha256(stderr: str) -> tuple[str | None, str]:
    """(digest, stderr without the digest line) from :func:`sha256_tee_script`'s stderr."""
    lines = stderr.splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        match = re.fullmatch(rf"{SHA256_MARK} ([0-9a-f]{{64}})  -\n?", lines[index])
        if match:
            return match.group(1), "".join(lines[:index] + lines[index + 1 :])
    return None, stderr


@dataclass(frozen=True)
class StreamResult:
    """What :func:`stream_to_file` received: the remote exit status and the bytes' digest."""

    exit_status: int
    bytes_written: int
    sha256: str
    stderr: str
    seconds: float
    remote_sha256: str | None = None  # with check_remote_sha256: the sender's digest (== sha256)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


#: A stderr line starting with this is a progress report (``on_stderr_mark``), not kept.
PROGRESS_MARK = b"flowlet-progress "


class _StderrTail(threading.Thread):
    """Drains a channel's stderr (so it never stalls the window), keeping the last bytes.

    Lines starting with :data:`PROGRESS_MARK` go to ``on_mark`` (the rest of the line) instead.
    """

    def __init__(
        self,
        channel: Any,
        limit: int = STDERR_LIMIT,
        on_mark: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(daemon=True, name="ssh-stderr")
        self.channel = channel
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0
        self.on_mark = on_mark
        self.pending = b""

    def run(self) -> None:
        while True:
            try:
                chunk = self.channel.recv_stderr(65536)
            except TimeoutError:  # the channel's idle_timeout: quiet stderr is normal
                continue
            except (OSError, EOFError):  # the main loop reports a broken channel
                return
            if not chunk:
                if self.pending:
                    self.data += self.pending
                return
            if self.on_mark is not None:
                chunk = self._marks(self.pending + chunk)
            self.data += chunk
            excess = len(self.data) - self.limit
            if excess > 0:
                del self.data[:excess]
                self.dropped += excess

    def _marks(self, data: bytes) -> bytes:
        """Hand complete progress lines to ``on_mark``; return the rest (an incomplete last line
        is held back until the next chunk)."""
        lines = data.split(b"\n")
        self.pending = lines.pop()
        kept = []
        for line in lines:
            if line.startswith(PROGRESS_MARK) and self.on_mark is not None:
                try:
                    self.on_mark(line[len(PROGRESS_MARK) :].decode("utf-8", "replace"))
                except Exception:  # nosec B110 - a progress display must not break the stream
                    pass
            else:
                kept.append(line + b"\n")
        return b"".join(kept)

    def text(self) -> str:
        prefix = f"[... {self.dropped} bytes of stderr dropped ...]\n" if self.dropped else ""
        return prefix + self.data.decode("utf-8", errors="replace")


def stream_to_file(
    conn: Connection,
    command: str,
    dest: Path,
    *,
    on_progress: Callable[[int], None] | None = None,
    stdin: bytes | None = None,
    pipefail: bool = True,
    idle_timeout: float | None = None,
    check_remote_sha256: bool = False,
) -> StreamResult:
    """Run shell ``command`` remotely and write its stdout, as bytes, to the local file ``dest``.

    ``dest`` is created 0600 (truncated; give it your ``.partial`` path), flushed and fsynced;
    it exists afterwards only if the exit status is 0 (on a non-zero status it is removed and the
    result returned with ``.ok`` False; on any exception it is removed and the exception
    re-raised). Everything else is :func:`stream_to`.
    """
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    completed = False
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(os.dup(fd), "wb", buffering=CHUNK_SIZE) as out:
            result = stream_to(
                conn,
                command,
                out.write,
                on_progress=on_progress,
                stdin=stdin,
                pipefail=pipefail,
                idle_timeout=idle_timeout,
                check_remote_sha256=check_remote_sha256,
            )
            out.flush()
        os.fsync(fd)
        completed = result.ok
        return result
    finally:
        os.close(fd)
        if not completed:
            try:
                os.unlink(dest)
            except FileNotFoundError:
                pass


def stream_to(
    conn: Connection,
    command: str,
    write: Callable[[bytes], Any],
    *,
    on_progress: Callable[[int], None] | None = None,
    stdin: bytes | None = None,
    secret: bytes | None = None,
    on_mark: Callable[[str], None] | None = None,
    pipefail: bool = True,
    idle_timeout: float | None = None,
    check_remote_sha256: bool = False,
) -> StreamResult:
    """Run shell ``command`` remotely and hand its stdout, as bytes, to ``write``.

    ``command`` is a shell script; it runs as ``bash -eo pipefail -c COMMAND`` (``pipefail=False``
    sends it as is), so a failing stage anywhere in a pipeline makes the exit status non-zero.
    stdout is read from a raw Paramiko channel (binary-safe) and sha256-hashed as it arrives.
    stderr is drained concurrently and its last 64 KiB kept (lines starting with
    :data:`PROGRESS_MARK` go to ``on_mark`` instead).

    stdin: ``stdin`` bytes (not a secret) are sent, then EOF. Otherwise stdin stays open and the
    remote process group is killed when the channel closes (:func:`kill_on_hangup_script`), so
    an interrupted or orphaned command stops even if it is not writing; ``secret`` (no NUL
    byte) is sent first, NUL-terminated, and the script finds it in the unexported shell
    variable ``$FLOWLET_SECRET`` (never on a command line, never on the remote disk).

    ``on_progress(bytes_so_far)`` is called at most 4 times a second and once at the end.
    ``check_remote_sha256`` also hashes the bytes on the remote side (:func:`sha256_tee_script`,
    needs ``sha256sum`` there) and compares: a mismatch or a missing remote digest after exit 0
    is a :class:`RemoteStreamError`. A lost connection, a remote end without exit status (killed
    by a signal) or ``idle_timeout`` seconds without data raise :class:`RemoteStreamError`; a
    local error in ``write`` (disk full) or Ctrl-C closes the channel (the guard then kills the
    remote process group) and is re-raised.
    """
    from paramiko import SSHException

    transport = conn.client.get_transport() if conn.client is not None else None
    if transport is None or not transport.is_active():
        raise RemoteStreamError(f"{_label(conn)}: not connected")
    if secret is not None and b"\0" in secret:
        raise ValueError("a secret sent on stdin cannot contain a NUL byte")
    if check_remote_sha256:
        command = sha256_tee_script(command)
    if stdin is None:
        command = kill_on_hangup_script(command)
        if secret is not None:
            command = SECRET_READ + command
    remote = pipefail_command(command) if pipefail else command
    started = time.monotonic()
    digest = hashlib.sha256()
    written = 0
    channel = None
    try:
        try:
            channel = transport.open_session(
                window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
            )
            channel.settimeout(idle_timeout)
            # running the caller's shell script is the point of this function
            channel.exec_command(remote)  # nosec B601
            if stdin:
                channel.sendall(stdin)
            if stdin is not None:  # else stdin stays open: its EOF tells the guard we are gone
                channel.shutdown_write()
            elif secret is not None:
                channel.sendall(secret + b"\0")
        except TimeoutError:
            raise RemoteStreamError(f"{_label(conn)}: stdin not accepted") from None
        except (EOFError, OSError, SSHException) as exc:
            raise RemoteStreamError(
                f"{_label(conn)}: connection lost before the stream started ({exc or type(exc)})"
            ) from None
        stderr = _StderrTail(channel, on_mark=on_mark)
        stderr.start()
        last_report = started
        while True:
            try:
                chunk = channel.recv(CHUNK_SIZE)
            except TimeoutError:
                raise RemoteStreamError(
                    f"{_label(conn)}: no data for {idle_timeout}s after {written} bytes"
                ) from None
            except (EOFError, OSError, SSHException) as exc:
                # recv may send a window adjustment; on a dead transport that write fails
                raise RemoteStreamError(
                    f"{_label(conn)}: connection lost mid-stream after {written} bytes "
                    f"({type(exc).__name__})"
                ) from None
            if not chunk:
                break
            write(chunk)
            digest.update(chunk)
            written += len(chunk)
            if on_progress is not None:
                now = time.monotonic()
                if now - last_report >= 0.25:
                    on_progress(written)
                    last_report = now
        if not channel.status_event.wait(idle_timeout):
            raise RemoteStreamError(
                f"{_label(conn)}: no exit status within {idle_timeout}s after end of output"
            )
        stderr.join(timeout=5)
        status = channel.exit_status if channel.exit_status_ready() else -1
        if status == -1:
            # Paramiko closes the channels of a dead transport just before marking it inactive
            deadline = time.monotonic() + 1
            while transport.is_active() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not transport.is_active():
                why = f"connection lost mid-stream after {written} bytes"
            else:
                why = f"remote command ended without an exit status after {written} bytes"
            tail = stderr.text().strip().splitlines()
            raise RemoteStreamError(f"{_label(conn)}: {why}" + (f": {tail[-1]}" if tail else ""))
        if on_progress is not None:
            on_progress(written)
        remote_sha256, stderr_text = None, stderr.text()
        if check_remote_sha256:
            remote_sha256, stderr_text = split_remote_sha256(stderr_text)
            if status == 0 and remote_sha256 != digest.hexdigest():
                raise RemoteStreamError(
                    f"{_label(conn)}: checksum mismatch after {written} bytes: received "
                    f"{digest.hexdigest()}, remote sent {remote_sha256 or 'no digest'}"
                )
        return StreamResult(
            exit_status=status,
            bytes_written=written,
            sha256=digest.hexdigest(),
            stderr=stderr_text,
            seconds=time.monotonic() - started,
            remote_sha256=remote_sha256,
        )
    except BaseException:
        if channel is not None:
            try:
                channel.close()
            except (EOFError, OSError, SSHException):
                pass  # the transport is already gone: the error being raised says so
        raise
