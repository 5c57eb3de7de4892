"""Run planned pipelines through the runner: every stage's exit status checked.

Stages are chained by pipes; this process reads the last stage's stdout and hands each chunk to
a sink (hash, local file, upload). Only stages marked ``secret`` inherit the in-memory password
file. Every stage dies with us, even on ``kill -9`` (the runner's parent-death signal).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from tasks.backup.plan import Stage
from tasks.backup.targets import NO_CREDENTIALS, Credentials
from tasks.core import runner

CHUNK = 1 << 20


class StageError(Exception):
    """A pipeline stage exited non-zero (or was killed)."""

    def __init__(self, stage: Stage, code: int, stderr: str) -> None:
        super().__init__(f"{stage.name} failed ({describe_code(code)})")
        self.stage = stage
        self.code = code
        self.stderr = stderr

    @property
    def exit_code(self) -> int:
        return self.code if self.code > 0 else 128 - self.code

    @property
    def last_line(self) -> str:
        """The tool's message: the last stderr line that says ERROR/FATAL/error (psql's last
        lines are the statement and a caret), else the last line."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        for line in reversed(lines):
            if re.search(r"(^|\s|:)(ERROR|FATAL|error|fatal|Unexpected EOF)\b", line):
                if not line.endswith("exiting now"):
                    return line
        return lines[-1] if lines else ""


def describe_code(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def start(
    stage: Stage,
    creds: Credentials = NO_CREDENTIALS,
    *,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
    stderr: Any = None,
) -> subprocess.Popen[bytes]:
    """Start one stage; only a ``secret`` stage gets the credentials (env names, inherited fds).

    A stage that forks workers gets SIGTERM when we die (not SIGKILL): pg_dump's and
    pg_restore's leader then stops its workers itself (a SIGKILLed leader would leave them
    running until they finish their table, under PID 1).
    """
    secret = stage.secret
    return runner.spawn(
        list(stage.argv),
        env=creds.env if secret else None,
        fds=creds.fds if secret else (),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        death_signal=signal.SIGTERM if stage.forks else signal.SIGKILL,
    )


class Pipeline:
    """Stages chained by pipes (``stdin``: what the first one reads)."""

    def __init__(
        self,
        stages: Sequence[Stage],
        creds: Credentials = NO_CREDENTIALS,
        *,
        stdin: Any = None,
        output: bool = True,
    ) -> None:
        self.stages = list(stages)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.spools: list[IO[bytes]] = []
        previous: Any = stdin if stdin is not None else subprocess.DEVNULL
        try:
            for index, stage in enumerate(self.stages):
                last = index == len(self.stages) - 1
                spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
                self.spools.append(spool)
                proc = start(
                    stage,
                    creds,
                    stdin=previous,
                    stdout=subprocess.PIPE if output or not last else subprocess.DEVNULL,
                    stderr=spool,
                )
                if index and previous is not None and hasattr(previous, "close"):
                    previous.close()  # the next stage owns its read end now
                previous = proc.stdout
                self.procs.append(proc)
        except BaseException:
            self.kill()
            raise
        self.stdout: IO[bytes] | None = previous if output else None

    def first_stdin(self) -> IO[bytes] | None:
        return self.procs[0].stdin if self.procs else None

    def drain(self, sink: Callable[[bytes], None]) -> None:
        """Hand every chunk of the last stage's stdout to ``sink`` until EOF."""
        if self.stdout is None:
            return
        fd = self.stdout.fileno()
        while chunk := os.read(fd, CHUNK):
            sink(chunk)

    def kill(self) -> None:
        for proc in self.procs:
            runner.stop_group(proc, grace=0.5)
        self.close()

    def close(self) -> None:
        for proc in self.procs:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        for spool in self.spools:
            spool.close()
        self.spools = []

    def wait(self) -> None:
        """Wait for every stage; raise :class:`StageError` for the one that failed first (a
        stage killed by SIGPIPE only counts when no other failed: it is the victim)."""
        try:
            for proc in self.procs:
                proc.wait()
            failed = [(i, p.returncode) for i, p in enumerate(self.procs) if p.returncode != 0]
            if failed:
                real = [f for f in failed if f[1] != -signal.SIGPIPE] or failed
                index, code = real[0]
                spool = self.spools[index]
                spool.seek(0)
                text = spool.read().decode("utf-8", "replace").strip()
                raise StageError(self.stages[index], code, text)
        finally:
            self.close()


def run_stages(
    stages: Sequence[Stage],
    creds: Credentials = NO_CREDENTIALS,
    *,
    sink: Callable[[bytes], None] | None = None,
    stdin: Any = None,
    feed: Callable[[IO[bytes]], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> None:
    """Run ``stages`` to the end: ``sink`` gets their output (else it is discarded); ``feed``
    (run in a thread) writes their input to the first stage's stdin, then closes it;
    ``on_start`` runs once they have all started."""
    pipeline = Pipeline(
        stages, creds, stdin=subprocess.PIPE if feed else stdin, output=sink is not None
    )
    if on_start is not None:
        try:
            on_start()
        except BaseException:
            pipeline.kill()
            raise
    feeder: threading.Thread | None = None
    errors: list[BaseException] = []
    try:
        if feed is not None:
            pipe = pipeline.first_stdin()
            assert pipe is not None  # nosec B101 - PIPE was asked for

            def run_feed() -> None:
                try:
                    feed(pipe)
                except BrokenPipeError:
                    pass  # the stage stopped reading: its exit status says why
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)
                finally:
                    try:
                        pipe.close()
                    except BrokenPipeError:
                        pass

            feeder = threading.Thread(target=run_feed, name="backup-feed", daemon=True)
            feeder.start()
        if sink is not None:
            pipeline.drain(sink)
        if feeder is not None:
            feeder.join()
    except BaseException:
        pipeline.kill()
        raise
    pipeline.wait()
    if errors:
        raise errors[0]


def capture_stages(
    stages: Sequence[Stage],
    creds: Credentials = NO_CREDENTIALS,
    *,
    stdin: Any = None,
    input: bytes | None = None,
    limit: int = 256 << 20,
) -> bytes:
    """The whole output of ``stages`` (a small stream: a query's answer, a globals file);
    ``input``: bytes written to the first stage's stdin."""
    out = bytearray()

    def keep(chunk: bytes) -> None:
        out.extend(chunk)
        if len(out) > limit:
            raise OSError(27, f"more than {limit} bytes of output")

    def feed(pipe: IO[bytes]) -> None:
        pipe.write(input or b"")

    run_stages(stages, creds, sink=keep, stdin=stdin, feed=feed if input is not None else None)
    return bytes(out)


class Progress:
    """``label: bytes, rate`` on one line of a terminal, from the first update and then twice a
    second (so a short run shows it too); silent when stderr is not a tty."""

    def __init__(self, label: str, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.label = label
        self.start = self.last = time.monotonic()
        self.bytes = 0
        self.extra: Callable[[], str] | None = None
        self.shown = False

    def add(self, count: int) -> None:
        self.update(self.bytes + count)

    def update(self, total: int) -> None:
        self.bytes = total
        now = time.monotonic()
        if self.enabled and (not self.shown or now - self.last >= 0.5):
            self.last = now
            self.show(now)

    def show(self, now: float | None = None) -> None:
        if not self.enabled:
            return
        elapsed = max((now or time.monotonic()) - self.start, 1e-6)
        extra = self.extra() if self.extra is not None else ""
        line = f"{self.label}: {human(self.bytes)}, {human(self.bytes / elapsed)}/s{extra}"
        sys.stderr.write("\r" + line[:110].ljust(self.width()))
        sys.stderr.flush()
        self.shown = True

    @staticmethod
    def width() -> int:
        return 72

    def done(self) -> None:
        if self.enabled and self.shown:
            sys.stderr.write("\r" + " " * self.width() + "\r")
            sys.stderr.flush()


def human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def tree_size(path: os.PathLike[str] | str) -> int:
    """Bytes of the files under ``path`` (a directory being written: races are ignored)."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for entry in entries:
        try:
            total += entry.stat(follow_symlinks=False).st_size if entry.is_file() else 0
        except OSError:
            continue
    return total
