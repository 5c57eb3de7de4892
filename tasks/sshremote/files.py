"""Remote commands and files: run_remote, sha256, atomic commit, secrets over SFTP."""

from __future__ import annotations

import os
import re
import secrets
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke import Result

from tasks.core.errors import OpsError

from .client import _label
from .stream import pipefail_argv

if TYPE_CHECKING:  # pragma: no cover
    from fabric import Connection


def env_argv(argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
    """``argv`` prefixed with ``env K=V ...`` (quoted with the rest; not for secrets)."""
    if not env:
        return list(argv)
    return ["env", *(f"{key}={value}" for key, value in sorted(env.items())), *argv]


def parse_sha256sum(output: str) -> str:
    """The digest from ``sha256sum`` output (``<64 hex>  <name>``)."""
    match = re.match(r"\\?([0-9a-f]{64})\s", output)
    if match is None:
        raise ValueError(f"not sha256sum output: {output[:80]!r}")
    return match.group(1)


COMMIT_SCRIPT = r"""
partial=$1 final=$2 expected=$3 sidecar=$4
actual=$(sha256sum -- "$partial" | cut -d' ' -f1)
if [ "$actual" != "$expected" ]; then
    rm -f -- "$partial"
    echo "checksum mismatch on $partial: $actual, expected $expected (removed)" >&2
    exit 3
fi
sync -- "$partial"
if [ "$sidecar" = yes ]; then
    (umask 077 && printf '%s  %s\n' "$expected" "${final##*/}" > "$final.sha256.partial")
    sync -- "$final.sha256.partial"
fi
mv -fT -- "$partial" "$final"
if [ "$sidecar" = yes ]; then mv -fT -- "$final.sha256.partial" "$final.sha256"; fi
sync -- "$(dirname -- "$final")"
""".strip()


def commit_argv(partial: str, final: str, sha256: str, *, sidecar: bool = True) -> list[str]:
    """Remote argv: check ``partial``'s sha256, fsync, rename onto ``final``, write a sidecar.

    Order: the data file is renamed into place first, then ``FINAL.sha256`` (so a crash leaves
    at worst a file without a sidecar, never a sidecar without its file); the directory is
    fsynced last. A checksum mismatch removes ``partial`` and exits 3.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    flag = "yes" if sidecar else "no"
    return [*pipefail_argv(COMMIT_SCRIPT), "commit", partial, final, sha256, flag]


def secret_cleanup_trap(path: str) -> str:
    """Shell prefix that removes :func:`upload_secret`'s directory when the remote shell exits.

    Prepend it to a remote script so the secret goes away even if our connection drops.
    """
    return f"trap {shlex.quote(shlex.join(['rm', '-rf', '--', os.path.dirname(path)]))} EXIT; "


def run_remote(
    conn: Connection,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    hide: bool = True,
    warn: bool = False,
    dry: bool | None = None,
) -> Result:
    """Run ``argv`` (``shlex.join``-ed, ``env`` prefixed via ``env K=V``) with ``conn.run``.

    ``env`` values appear on the remote command line: paths, never secrets (use
    :func:`remote_secret_file`). Follows Invoke's ``--dry`` unless ``dry`` is given; stdin is
    not forwarded.
    """
    kwargs: dict[str, Any] = {"hide": hide, "warn": warn, "in_stream": False}
    if dry is not None:
        kwargs["dry"] = dry
    return conn.run(shlex.join(env_argv(argv, env)), **kwargs)  # type: ignore[no-any-return]


def _check(conn: Connection, result: Result, what: str) -> Result:
    if result.exited != 0:
        lines = (result.stderr or result.stdout or "").strip().splitlines()
        detail = lines[-1] if lines else f"exit {result.exited}"
        raise OpsError(f"{_label(conn)}: {what} failed: {detail}", code=result.exited or 1)
    return result


def sha256_remote(conn: Connection, path: str) -> str:
    """sha256 of the remote file ``path`` (``sha256sum``; read-only, runs even under ``--dry``)."""
    result = run_remote(conn, ["sha256sum", "--", path], warn=True, dry=False)
    return parse_sha256sum(_check(conn, result, f"sha256sum {path}").stdout)


def ensure_remote_dir(conn: Connection, path: str) -> None:
    """``mkdir -p`` a remote directory; a new last component is created 0700."""
    _check(conn, run_remote(conn, ["mkdir", "-p", "-m", "0700", "--", path], warn=True), "mkdir")


def commit_remote_file(
    conn: Connection, partial: str, final: str, sha256: str, *, sidecar: bool = True
) -> None:
    """Check, fsync and rename remote ``partial`` onto ``final`` (+ sidecar): :func:`commit_argv`.

    On a checksum mismatch the partial file is removed and ``OpsError`` raised.
    """
    result = run_remote(conn, commit_argv(partial, final, sha256, sidecar=sidecar), warn=True)
    _check(conn, result, f"commit {final}")


def remove(conn: Connection, path: str, *, missing_ok: bool = True) -> None:
    """Remove the remote file ``path`` over SFTP."""
    try:
        conn.sftp().remove(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


def upload_secret(
    conn: Connection, content: bytes, remote_dir: str | None = None, *, name: str = "secret"
) -> str:
    """Write ``content`` to a new remote file readable only by the login user; return its path.

    Over SFTP (never on a command line): a fresh directory ``REMOTE_DIR/flowlet-<random>``
    created 0700 (verified after creation), then ``NAME`` in it created exclusively and chmod
    0600 before the first byte is written. ``remote_dir`` defaults to ``/tmp``. Remove both
    with :func:`remove_secret`, or use :func:`remote_secret_file`.
    """
    import stat

    sftp = conn.sftp()
    # /tmp is fine: the secret goes into a fresh directory, created 0700 and checked below
    parent = (remote_dir or "/tmp").rstrip("/")  # nosec B108
    directory = f"{parent}/flowlet-{secrets.token_hex(8)}"
    sftp.mkdir(directory, mode=0o700)
    attrs = sftp.lstat(directory)
    mode = attrs.st_mode or 0
    if not stat.S_ISDIR(mode) or mode & 0o077:
        sftp.rmdir(directory)
        raise OpsError(f"{_label(conn)}: {directory} is not a private directory (mode {mode:o})")
    path = f"{directory}/{name}"
    try:
        with sftp.open(path, "wx") as handle:
            handle.chmod(0o600)
            handle.write(content)
    except BaseException:
        remove_secret(conn, path)
        raise
    return path


def remove_secret(conn: Connection, path: str) -> None:
    """Remove a file written by :func:`upload_secret` and its private directory."""
    sftp = conn.sftp()
    try:
        sftp.remove(path)
    except FileNotFoundError:
        pass
    try:
        sftp.rmdir(os.path.dirname(path))
    except FileNotFoundError:
        pass


@contextmanager
def remote_secret_file(
    conn: Connection, content: bytes, remote_dir: str | None = None, *, name: str = "secret"
) -> Iterator[str]:
    """``with remote_secret_file(conn, b"...") as path:`` -- :func:`upload_secret`, always removed.

    If removal fails while another exception is propagating (e.g. the connection dropped), the
    original exception wins; the file then stays in its 0700 directory (see
    :func:`secret_cleanup_trap` to have the remote shell remove it).
    """
    path = upload_secret(conn, content, remote_dir, name=name)
    failed = False
    try:
        yield path
    except BaseException:
        failed = True
        raise
    finally:
        try:
            remove_secret(conn, path)
        except Exception:
            if not failed:
                raise
