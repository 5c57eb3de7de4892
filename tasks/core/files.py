"""Files the toolkit creates, created safely: another user's symlinks are never followed, and a
file's mode never depends on the umask (README: backup, dev, lint; the deploy audit log).

- :func:`private_dir`: a directory secrets, backups or state are written into: created 0700 if
  missing (never under another user's directory), then refused, in one line naming the flag or
  key that chose it, unless it is owned by the effective user (or root) and not writable by
  group or others, its ancestors likewise (a sticky ancestor such as ``/tmp`` may be
  world-writable).
- :func:`write_atomic`: a new file from ``mkstemp`` beside the target (``O_EXCL|O_NOFOLLOW``),
  ``fchmod`` to its mode, fsynced, renamed over the target (a planted symlink is replaced, not
  followed).
- :func:`create_new`: a file that must not exist yet (``O_EXCL|O_NOFOLLOW``).
- :func:`open_append`: an append-only file (manifest, audit log, dev logs) opened with
  ``O_NOFOLLOW``; a symlink, FIFO, directory or hard-linked file is refused.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from tasks.core.errors import ConfigError, Refused

CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
VALID_DIR = "valid: a directory owned by you (or root), not writable by group or others"


def make_dirs(path: Path, mode: int = 0o700) -> None:
    """``mkdir -p``: ``path``, if created, gets ``mode`` whatever the umask; missing parents get
    0755 less the umask (pathlib's ``parents=True`` gives them 0777 less the umask: under umask
    000, a world-writable parent)."""
    missing = []
    for each in (path, *path.parents):
        if os.path.lexists(each):
            break
        missing.append(each)
    for each in reversed(missing):
        try:
            os.mkdir(each, mode if each == path else 0o755)
        except FileExistsError:
            continue
        if each == path:
            fd = os.open(each, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)


def _owner(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def dir_problem(path: Path) -> str | None:
    """Why ``path`` (an existing directory) is unsafe to write into, or None."""
    euid = os.geteuid()
    trusted = {0, euid}
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid not in trusted:
        you = "root" if euid == 0 else f"you ({_owner(euid)}) or root"
        return f"owned by {_owner(st.st_uid)}, not by {you}"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    absolute = Path(os.path.abspath(path))
    for prefix in (absolute, *absolute.parents):  # a symlink on the way: whose?
        lst = os.lstat(prefix)
        if stat.S_ISLNK(lst.st_mode) and lst.st_uid not in trusted:
            return f"{prefix} is a symlink owned by {_owner(lst.st_uid)}"
        if stat.S_ISLNK(lst.st_mode) and (why := ancestor_problem(prefix.parent, trusted)):
            return why
    for parent in path.resolve().parents:
        if why := ancestor_problem(parent, trusted):
            return why
    return None


def ancestor_problem(parent: Path, trusted: set[int]) -> str | None:
    """A directory above: its owner could rename what is below it, and so could anyone who can
    write it (unless it is sticky, as ``/tmp``)."""
    st = os.stat(parent)
    if st.st_uid not in trusted:
        return f"its parent {parent} is owned by {_owner(st.st_uid)}"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return f"its parent {parent} is writable by group or others and not sticky"
    return None


def parent_problem(path: Path) -> str | None:
    """Why the nearest existing directory above a missing ``path`` is unsafe to create it in."""
    existing = next((p for p in (path, *path.parents) if os.path.lexists(p)), path)
    if existing == path or not os.path.isdir(existing):
        return None
    trusted = {0, os.geteuid()}
    real = Path(os.path.realpath(existing))
    for each in (real, *real.parents):
        if why := ancestor_problem(each, trusted):
            return why
    return None


def private_dir(path: Path, *, source: str, tighten: bool = True) -> None:
    """Create ``path`` (0700, parents too) unless it exists; refuse it, in one line naming
    ``source`` (the flag or key that chose it), unless it is safe to write into. A directory of
    ours that others may read or traverse is tightened to 0700 (``tighten``)."""
    try:
        why = parent_problem(path)  # nothing is created under another user's directory
        if why is None:
            make_dirs(path)
            why = dir_problem(path)
        if why is None:
            st = os.stat(path)
            if tighten and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(path, 0o700)
            # a read-only file system, a root-owned directory of a non-root run:
            fd, probe = tempfile.mkstemp(prefix=".flowlet-write-test-", dir=path)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"{source}: {str(path)!r} is not valid: cannot write there "
            f"({exc.strerror or exc}); valid: a writable directory"
        ) from None
    if why is not None:
        raise ConfigError(f"{source}: {str(path)!r} is not valid: {why}; {VALID_DIR}")


def create_new(path: Path, mode: int = 0o600) -> int:
    """A new file at ``path`` opened for writing (never an existing file, never through a
    symlink), with ``mode`` whatever the umask. Returns the fd."""
    fd = os.open(path, CREATE, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_atomic(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically: a ``mkstemp`` file in its directory (so never
    a planted name), ``fchmod`` to ``mode``, fsynced, renamed over ``path``. The directory must
    exist. Raises OSError."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def open_append(path: Path, mode: int = 0o600) -> tuple[int, bool]:
    """``path`` opened to append (created with ``mode`` whatever the umask): ``(fd, created)``.
    A symlink, a FIFO or any other non-regular file, or a file with other hard links is refused
    (:class:`~tasks.core.errors.Refused`)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd, created = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode), True
    except FileExistsError:
        try:
            fd, created = os.open(path, flags), False
        except OSError as exc:
            raise Refused(f"{path}: refusing to append to it: {not_regular(path, exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            kind = "not a regular file" if not stat.S_ISREG(st.st_mode) else "it has hard links"
            raise Refused(f"{path}: refusing to append to it: {kind}")
        os.set_blocking(fd, True)
        if created:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, created


def not_regular(path: Path, exc: OSError) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return str(exc.strerror or exc)
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file" if not stat.S_ISREG(mode) else str(exc.strerror or exc)
