"""Local backup files: written as ``NAME.partial`` (0600, locked), placed atomically, sidecars.

A run holds an ``flock`` on each partial file and work directory it writes: the kernel drops it
when the run ends however it ends (``kill -9`` too), so ``backup.list`` and ``backup.prune`` can
tell a partial file of a running backup from one left behind (:func:`is_live`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

from tasks.core import files
from tasks.core.errors import ConfigError, OpsError

CHUNK = 1 << 20


def ensure_private_dir(path: Path, *, source: str) -> None:
    """Create ``path`` (0700) or fail naming ``source`` (the flag or key that chose it); a
    directory another user owns or may write is refused (:func:`tasks.core.files.private_dir`)."""
    files.private_dir(path, source=source)


class Partial:
    """``NAME.partial`` opened exclusively (0600) and locked for as long as this run writes it."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = final.with_name(final.name + ".partial")
        if final.exists():
            raise OpsError(f"{final} already exists; refusing to replace an existing backup")
        try:
            self.fd = files.create_new(self.path, 0o600)
        except FileExistsError:
            raise OpsError(f"{self.path} exists: another backup is writing it") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]

    def commit(self, digest: str) -> None:
        """fsync, link to the final name (never replacing a file), write the sidecar."""
        os.fsync(self.fd)
        try:
            os.link(self.path, self.final)
        except FileExistsError:
            raise OpsError(
                f"{self.final} already exists; refusing to replace an existing backup"
            ) from None
        try:
            os.unlink(self.path)
            write_sidecar(self.final, digest)
            fsync_dir(self.final.parent)
        except BaseException:
            remove_set_file(self.final)
            raise
        self.close()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class WorkDir:
    """A work directory (``NAME.partial.d``, 0700) locked while in use, removed afterwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(mode=0o700)
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def is_live(path: Path) -> bool:
    """True if a running process holds the lock of this partial file or work directory."""
    try:
        flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if path.is_dir() else 0)
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_atomic(path: Path, text: str, mode: int, *, source: str) -> None:
    """Replace ``path`` with ``text`` atomically: a temp file in the same directory (mode
    ``mode``), fsynced, renamed over it; parents created (0700 for a 0600 file). A failure is
    one line naming ``source`` (the flag or key that chose the directory)."""
    try:
        files.make_dirs(path.parent, 0o700 if mode == 0o600 else 0o755)
        files.write_atomic(path, text, mode)
    except OSError as exc:
        raise ConfigError(
            f"{source}: {str(path.parent)!r} is not valid: cannot write there "
            f"({exc.strerror or exc}); valid: a writable directory"
        ) from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def sidecar_text(name: str, digest: str) -> str:
    return f"{digest}  {name}\n"


def parse_sidecar(text: str) -> str | None:
    """The digest of a ``sha256sum``-format sidecar, or None if it is not one."""
    words = text.split()
    if words and len(words[0]) == 64 and all(ch in "0123456789abcdef" for ch in words[0]):
        return words[0]
    return None


def write_sidecar(final: Path, digest: str) -> Path:
    sidecar = sidecar_of(final)
    files.write_atomic(sidecar, sidecar_text(final.name, digest), 0o600)
    return sidecar


def read_sidecar(path: Path) -> str | None:
    try:
        return parse_sidecar(sidecar_of(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def remove_set_file(path: Path) -> None:
    """Remove a backup file and its sidecar."""
    path.unlink(missing_ok=True)
    sidecar_of(path).unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


DIR_SUMS = "flowlet.sha256sums"


def write_dir_sums(directory: Path) -> None:
    """``flowlet.sha256sums`` (``sha256sum`` format) of every file of a directory dump, written
    into it before it is archived: verify then checks each file, compressed or not."""
    lines = [f"{sha256_file(p)}  {p.name}\n" for p in sorted(directory.iterdir()) if p.is_file()]
    fd = files.create_new(directory / DIR_SUMS, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("".join(lines))


def check_dir_sums(directory: Path) -> list[str]:
    """Names of the files whose sha256 differs from ``flowlet.sha256sums`` (or are missing);
    an archive without the file (older backups) checks nothing."""
    try:
        text = (directory / DIR_SUMS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    bad = []
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        path = directory / name
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(name)
    return bad
