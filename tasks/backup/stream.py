"""Execute a planned pipeline: every stage's exit status checked, output written atomically.

The stages are chained by pipes; this process reads the last stage's stdout, hashes it and
writes it to ``NAME.partial`` (0600). Only when every stage exited 0 and the data is fsynced is
the file linked to its final name (never replacing an existing file) with a ``.sha256`` sidecar.
Any failure, Ctrl-C or SIGTERM removes the partial file: nothing ever appears at the final path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tasks.core.errors import OpsError

from tasks.backup.pipeline import Stage

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


def describe_code(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


@contextmanager
def interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (like Ctrl-C) for the duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _kill(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait()


def run_pipeline(
    stages: Sequence[Stage],
    env: Mapping[str, str],
    *,
    sink: Callable[[bytes], None] | None = None,
    stdin: IO[bytes] | None = None,
) -> None:
    """Run ``stages`` chained by pipes; feed the last one's stdout to ``sink``.

    Raises :class:`StageError` for the first failing stage (a stage killed by SIGPIPE only
    counts when no other stage failed: it is the victim, not the cause).
    """
    procs: list[subprocess.Popen[bytes]] = []
    errors: list[IO[bytes]] = []
    previous: IO[bytes] | None = stdin
    try:
        for index, stage in enumerate(stages):
            last = index == len(stages) - 1
            spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
            errors.append(spool)
            if shutil.which(stage.argv[0]) is None:
                raise OpsError(
                    f"{stage.argv[0]!r} not found on PATH (needed for the {stage.name} stage)"
                )
            proc = subprocess.Popen(
                stage.argv,
                stdin=previous if previous is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE if (sink is not None or not last) else subprocess.DEVNULL,
                stderr=spool,
                env=dict(env),
                start_new_session=True,  # Ctrl-C reaches us; we stop the stages ourselves
            )
            if previous is not None and previous is not stdin:
                previous.close()
            previous = proc.stdout
            procs.append(proc)
        if sink is not None and previous is not None:
            fd = previous.fileno()
            while chunk := os.read(fd, CHUNK):
                sink(chunk)
            previous.close()
        for proc in procs:
            proc.wait()
    except BaseException:
        _kill(procs)
        for proc in procs:
            if proc.stdout is not None:
                proc.stdout.close()
        for spool in errors:
            spool.close()
        raise
    failed = [(s, p.returncode) for s, p in zip(stages, procs) if p.returncode != 0]
    try:
        if failed:
            real = [f for f in failed if f[1] != -signal.SIGPIPE] or failed
            stage, code = real[0]
            spool = errors[stages.index(stage)]
            spool.seek(0)
            raise StageError(stage, code, spool.read().decode("utf-8", "replace").strip())
    finally:
        for spool in errors:
            spool.close()


class Progress:
    """``bytes written, rate`` on one line of a terminal; silent when stderr is not a tty."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.start = self.last = time.monotonic()
        self.bytes = 0

    def add(self, count: int) -> None:
        self.bytes += count
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.5:
            self.last = now
            rate = self.bytes / max(now - self.start, 1e-6)
            sys.stderr.write(f"\r{human(self.bytes)} written, {human(rate)}/s   ")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


@dataclass(frozen=True)
class StreamResult:
    bytes: int
    sha256: str
    duration: float


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_sidecar(final: Path, digest: str) -> Path:
    sidecar = final.with_name(final.name + ".sha256")
    tmp = sidecar.with_name(sidecar.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{digest}  {final.name}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, sidecar)
    return sidecar


def _place(partial: Path, final: Path) -> None:
    """Move ``partial`` to ``final`` atomically without ever replacing an existing file."""
    try:
        os.link(partial, final)
    except FileExistsError:
        raise OpsError(f"{final} already exists; refusing to replace an existing backup") from None
    os.unlink(partial)


def finalize(partial: Path, final: Path, digest: str) -> None:
    """Link the fsynced ``partial`` to ``final`` (never replacing), write the sidecar, fsync."""
    _place(partial, final)
    try:
        write_sidecar(final, digest)
        fsync_dir(final.parent)
    except BaseException:
        cleanup(partial, final)  # ours: linked a moment ago
        raise


def stream_to_file(
    stages: Sequence[Stage],
    final: Path,
    env: Mapping[str, str],
    *,
    prepare: Stage | None = None,
    workdir: Path | None = None,
    progress: bool = True,
) -> StreamResult:
    """Run the pipeline into ``final`` with every guarantee; raise OpsError on any failure."""
    ensure_private_dir(final.parent)
    partial = final.with_name(final.name + ".partial")
    if final.exists():
        raise OpsError(f"{final} already exists; refusing to replace an existing backup")
    started = time.monotonic()
    digest = hashlib.sha256()
    meter = Progress(progress)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OpsError(f"{partial} exists: another backup is writing it (or remove it)") from None

    def write(chunk: bytes) -> None:
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        meter.add(len(chunk))

    try:
        with interrupts():
            if prepare is not None and workdir is not None:
                workdir.mkdir(mode=0o700)
                run_pipeline([prepare], env)
            run_pipeline(stages, env, sink=write)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            finalize(partial, final, digest.hexdigest())
    except KeyboardInterrupt:
        cleanup(partial, None)
        raise OpsError(f"interrupted: removed the partial backup {partial.name}", code=130) from None
    except StageError as error:
        cleanup(partial, None)
        if error.stderr:
            sys.stderr.write(error.stderr + "\n")
        raise OpsError(f"backup failed: {error}; nothing written", code=error.exit_code) from None
    except OSError as error:
        cleanup(partial, None)
        raise OpsError(f"backup failed writing {partial}: {error.strerror}; nothing written") from None
    except BaseException:
        cleanup(partial, None)
        raise
    finally:
        if fd >= 0:
            os.close(fd)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        meter.done()
    return StreamResult(meter.bytes, digest.hexdigest(), time.monotonic() - started)


def cleanup(partial: Path, final: Path | None) -> None:
    partial.unlink(missing_ok=True)
    partial.with_name(partial.name.replace(".partial", ".sha256.partial")).unlink(missing_ok=True)
    if final is not None:
        final.unlink(missing_ok=True)
        final.with_name(final.name + ".sha256").unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
