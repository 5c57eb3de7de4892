"""Secrets never touch the disk; other private temp files live in one directory per run.

- :class:`SecretFile` holds a secret in memory (``memfd_create``, mode 0600): a child reads it
  as ``/dev/fd/N`` (pass ``secret.fd`` in :func:`tasks.core.runner.spawn`'s ``fds``). It exists
  only as long as a process holds it open, so ``kill -9`` at any moment leaves nothing on disk.
  libpq's ``PGPASSFILE`` and MariaDB's ``--defaults-extra-file`` accept it (a regular file,
  mode 0600, owned by us).
- :func:`run_dir` is this run's private directory (0700) under
  ``$TMPDIR/flowlet-ops-<uid>/<pid>-<start time>``, created on first use and removed by the
  boundary on every exit path; :func:`sweep` (run when a task starts) removes the directories of
  runs whose process is gone (``kill -9``), and the ``flowlet-backup-*`` directories that older
  versions left behind with a password file in them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

_RUN_DIR: list[Path] = []


class SecretFile:
    """A secret held in an anonymous in-memory file; ``path`` is how a child opens it."""

    def __init__(self, content: str | bytes, *, name: str = "flowlet-secret") -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.fchmod(self.fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            os.lseek(self.fd, 0, os.SEEK_SET)
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def path(self) -> str:
        """The path a child (given ``fd`` in ``pass_fds``) opens; ours too."""
        return f"/dev/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SecretFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:  # never the content
        return f"SecretFile({self.path})"


def base_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"flowlet-ops-{os.geteuid()}"


def _start_ticks(pid: int) -> str:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or "" if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def run_dir() -> Path:
    """This run's private directory (0700), created on first use, removed when the run ends."""
    if _RUN_DIR:
        return _RUN_DIR[0]
    base = base_dir()
    base.mkdir(mode=0o700, exist_ok=True)
    info = base.lstat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o077 or not base.is_dir():
        from tasks.core.errors import OpsError

        raise OpsError(f"{base}: not a private directory of this user (mode 0700); remove it")
    pid = os.getpid()
    path = base / f"{pid}-{_start_ticks(pid)}"
    path.mkdir(mode=0o700, exist_ok=True)
    _RUN_DIR.append(path)
    from tasks.core import boundary

    boundary.on_exit(remove_run_dir)
    return path


def remove_run_dir() -> None:
    while _RUN_DIR:
        shutil.rmtree(_RUN_DIR.pop(), ignore_errors=True)


def sweep() -> list[Path]:
    """Remove the run directories of processes that are gone; returns what was removed."""
    removed: list[Path] = []
    base = base_dir()
    try:
        entries = list(os.scandir(base))
    except OSError:
        entries = []
    for entry in entries:
        pid, _, ticks = entry.name.partition("-")
        if not pid.isdigit() or _start_ticks(int(pid)) != ticks:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    try:  # left by versions before the per-run directory (they held pgpass / my.cnf)
        legacy = [
            e for e in os.scandir(tempfile.gettempdir()) if e.name.startswith("flowlet-backup-")
        ]
    except OSError:
        legacy = []
    for entry in legacy:
        try:
            if entry.is_dir(follow_symlinks=False) and entry.stat().st_uid == os.geteuid():
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


@contextmanager
def private_temp_file(content: str, *, prefix: str, suffix: str = "") -> Iterator[str]:
    """A file holding ``content`` in this run's private directory (0600), always removed.

    For commands that need a real path and run through ``c.run`` (no inherited descriptors).
    Prefer :class:`SecretFile` or the command's stdin for secrets: after ``kill -9`` this file
    stays until the next run's :func:`sweep`.
    """
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=run_dir())  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        yield path
    finally:
        os.unlink(path)


_PR_SET_DUMPABLE = 4


def no_core_dumps() -> None:
    """Keep the secrets in this process's memory (and its children's) out of core files and
    other users' reach: ``RLIMIT_CORE`` 0 (inherited by every child: a crashing ``pg_dump``
    with a password in memory writes no core) and ``PR_SET_DUMPABLE`` 0 for ``inv`` itself
    (its ``/proc/PID/environ``, ``mem`` and ``fd`` become root's; no ptrace by the same user).
    Called once when a task starts; a platform without them keeps its defaults."""
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):  # pragma: no cover - a container may forbid it
        pass
    from tasks.core.runner import _load_libc

    try:
        _load_libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        pass
