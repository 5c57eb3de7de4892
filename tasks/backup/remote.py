"""Backups on a remote host over SSH (Fabric): stream back to a local file, or keep remotely.

The password reaches the remote side as a 0600 file in a fresh 0700 directory uploaded over
SFTP (never on a command line) and removed afterwards (also by a shell trap if we drop off).
The remote pipeline runs under ``bash -eo pipefail``; its stream is hashed on both ends.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from invoke import Context
from tasks.core.errors import OpsError

from tasks.backup.pipeline import BackupPlan, plan_backup, probe_argvs
from tasks.backup.stream import Progress, cleanup, ensure_private_dir, finalize, interrupts
from tasks.backup.targets import DatabaseTarget, _password, mysql_option_text, pgpass_line
from tasks.core.runner import render

DIGEST_LINE = re.compile(r"^([0-9a-f]{64})  -$", re.MULTILINE)
VERSIONS_LINE = re.compile(r"^flowlet-versions\t(.*)\t(.*)$\n?", re.MULTILINE)


def _passfile_prefix(target: DatabaseTarget, secret: str | None) -> str:
    if target.engine == "postgres":
        if secret is not None:
            return f"PGPASSFILE={shlex.quote(secret)} "
        if target.passfile and target.passfile != "~/.pgpass":
            return f"PGPASSFILE={shlex.quote(target.passfile)} "
    return ""


def remote_pipeline(plan: BackupPlan, secret: str | None) -> str:
    """The pipeline as a shell line, with ``PGPASSFILE`` for pg_dump (a path, not a secret)."""
    if plan.prepare is not None:
        raise OpsError("--format: directory is not supported with --host; use plain or custom")
    prefix = _passfile_prefix(plan.target, secret)
    return prefix + " | ".join(render(stage.argv) for stage in plan.stages)


def versions_script(plan: BackupPlan, secret: str | None, extra: list[str]) -> str:
    """Print ``flowlet-versions<TAB>tool<TAB>server`` to stderr (for the manifest).

    It runs in the background while the dump streams; the scripts ``wait`` for it at the end.
    """
    prefix = _passfile_prefix(plan.target, secret)
    tool, server = probe_argvs(plan.target, extra, plan.stages[0].argv[0])
    return (
        f"(v1=$({render(tool)} 2>/dev/null || echo unknown); "
        f"v2=$({prefix}{render(server)} 2>/dev/null || echo unknown); "
        'printf \'flowlet-versions\\t%s\\t%s\\n\' "$v1" "$v2" >&2) >/dev/null & '
    )


def parse_versions(stderr: str) -> tuple[tuple[str, str], str]:
    """((tool, server) versions, the rest of stderr) from a remote script's stderr."""
    found = VERSIONS_LINE.search(stderr)
    versions = (found.group(1), found.group(2)) if found else ("unknown", "unknown")
    return versions, VERSIONS_LINE.sub("", stderr).strip()


def stream_script(pipeline: str) -> str:
    """Send the stream to stdout and its sha256 (computed remotely) to stderr."""
    return f"exec 3>&1; {pipeline} | tee /dev/fd/3 | sha256sum >&2; wait"


def keep_script(pipeline: str, remote_dir: str, partial: str) -> str:
    """Write the stream to ``partial`` (0600, dir 0700) and print its sha256.

    Killed (SIGTERM, e.g. by the hangup guard after Ctrl-C), it removes ``partial`` itself.
    """
    quoted = shlex.quote(partial)
    return (
        f"trap {shlex.quote(f'rm -f -- {quoted}; exit 143')} TERM; "
        f"umask 077; mkdir -p -m 0700 -- {shlex.quote(remote_dir)}; "
        f"{pipeline} | tee -- {quoted} | sha256sum; wait"
    )


def _secret(target: DatabaseTarget) -> bytes | None:
    if not target.password_env:
        return None
    password = _password(target)
    if target.engine == "postgres":
        return pgpass_line(target, password).encode()
    return mysql_option_text(target, password).encode()


def remote_backup(
    c: Context, host: str, target: DatabaseTarget, options: dict[str, Any], keep_remote: bool,
    remote_dir: str,
) -> tuple[BackupPlan, int, str, float, tuple[str, str]]:  # fmt: skip
    """Run the backup on ``host``; return (plan, bytes, sha256, seconds, versions)."""
    from tasks import sshremote

    secret = _secret(target)
    if keep_remote:
        options = {**options, "output_dir": Path(remote_dir)}
    conn = sshremote.connect(c, host)
    try:
        holder = sshremote.remote_secret_file(conn, secret) if secret else nullcontext(None)
        with holder as secret_path:
            extra = [f"--defaults-extra-file={secret_path}"] if secret_path else []
            if target.engine == "mysql" and not secret_path and target.option_file:
                extra = [f"--defaults-extra-file={target.option_file}"]
            plan = plan_backup(target, mysql_extra=extra, **options)
            pg_secret = secret_path if target.engine == "postgres" else None
            script = remote_pipeline(plan, pg_secret)
            script = versions_script(plan, pg_secret, extra) + script
            if secret_path:
                script = sshremote.secret_cleanup_trap(secret_path) + script
            if keep_remote:
                return plan, *_keep(conn, plan, script, remote_dir)
            return plan, *_stream(conn, plan, script)
    finally:
        sshremote.close(conn)


Outcome = tuple[int, str, float, tuple[str, str]]  # bytes, sha256, seconds, versions


def _stream(conn: Any, plan: BackupPlan, pipeline: str) -> Outcome:
    from tasks import sshremote

    final, partial = plan.final, plan.partial
    ensure_private_dir(final.parent)
    if final.exists() or partial.exists():
        raise OpsError(f"{final} already exists; refusing to replace an existing backup")
    meter = Progress(True)
    last = [0]

    def progress(total: int) -> None:
        meter.add(total - last[0])
        last[0] = total

    try:
        with interrupts():
            result = sshremote.stream_to_file(
                conn, stream_script(pipeline), partial, on_progress=progress
            )
    except KeyboardInterrupt:
        cleanup(partial, None)
        raise OpsError(f"interrupted: removed the partial backup {partial.name}", code=130) from None
    except sshremote.RemoteStreamError as error:
        cleanup(partial, None)
        raise OpsError(f"backup failed: {error}; nothing written") from None
    except OSError as error:
        cleanup(partial, None)
        raise OpsError(f"backup failed writing {partial}: {error.strerror}; nothing written") from None
    finally:
        meter.done()
    versions, stderr = parse_versions(DIGEST_LINE.sub("", result.stderr))
    if not result.ok:
        cleanup(partial, None)
        if stderr:
            sys.stderr.write(stderr + "\n")
        raise OpsError(
            f"backup failed: remote pipeline exit {result.exit_status}; nothing written",
            code=result.exit_status,
        )
    remote_digests = DIGEST_LINE.findall(result.stderr)
    if remote_digests[-1:] != [result.sha256]:
        cleanup(partial, None)
        raise OpsError(f"backup failed: remote sha256 {remote_digests} != local {result.sha256}")
    finalize(partial, final, result.sha256)
    return result.bytes_written, result.sha256, result.seconds, versions


def _keep(conn: Any, plan: BackupPlan, pipeline: str, remote_dir: str) -> Outcome:
    import tempfile
    import time

    from tasks import sshremote

    started = time.monotonic()
    partial, final = str(plan.partial), str(plan.final)
    try:
        # stream_to_file, not conn.run: its channel is closed on Ctrl-C, and its hangup guard
        # then stops the remote pipeline (Fabric's run would wait for it without a pty)
        with interrupts(), tempfile.TemporaryDirectory(prefix="flowlet-backup-") as tmp:
            script = keep_script(pipeline, remote_dir, partial)
            result = sshremote.stream_to_file(conn, script, Path(tmp) / "sha256sum")
            versions, stderr = parse_versions(result.stderr)
            if not result.ok:
                sys.stderr.write(stderr + "\n")
                raise OpsError(
                    f"backup failed on {conn.original_host}: remote pipeline exit "
                    f"{result.exit_status}; nothing written",
                    code=result.exit_status,
                )
            streamed = sshremote.parse_sha256sum((Path(tmp) / "sha256sum").read_text())
            on_disk = sshremote.sha256_remote(conn, partial)
            if on_disk != streamed:
                raise OpsError(f"backup failed: {partial} has sha256 {on_disk}, stream had {streamed}")
            size = conn.sftp().stat(partial).st_size or 0
            sshremote.commit_remote_file(conn, partial, final, streamed)
    except KeyboardInterrupt:
        _remove_quietly(conn, partial)
        raise OpsError(f"interrupted: removed the partial backup {partial}", code=130) from None
    except sshremote.RemoteStreamError as error:
        _remove_quietly(conn, partial)
        raise OpsError(f"backup failed: {error}; nothing written") from None
    except BaseException:
        _remove_quietly(conn, partial)
        raise
    return size, streamed, time.monotonic() - started, versions


def _remove_quietly(conn: Any, path: str) -> None:
    from tasks import sshremote

    # The connection may be gone; the original error is the one to report.
    with contextlib.suppress(Exception):
        sshremote.remove(conn, path)
