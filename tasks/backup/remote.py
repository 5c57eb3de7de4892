"""Backups run on a remote host over SSH (``--host``): streamed back, or kept there.

The password never touches the remote disk or a command line: it is sent on the channel's
stdin (NUL-terminated), read into an unexported shell variable, and given to the database
tools only (``PGPASSWORD=... pg_dump``; ``--defaults-extra-file=<(printf ...)`` for mysql).
The channel's stdin then stays open: when it closes (Ctrl-C, ``kill -9`` of inv, a dropped
connection) a watcher kills the remote process group (:func:`sshremote.kill_on_hangup_script`).
Compression (and encryption) run on the remote side, so only compressed bytes cross the link.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.backup.outputs import FileResult, Outputs
from tasks.backup.plan import (
    PG_SERVER_QUERY,
    BackupPlan,
    Stage,
    pg_connection_args,
    plan_backup,
    plan_globals,
    probe_argvs,
)
from tasks.backup.stream import Progress
from tasks.backup.targets import DatabaseTarget, remote_secret
from tasks.backup.tls import pg_tls_prefix
from tasks.core.errors import OpsError

VERSIONS_LINE = re.compile(r"^flowlet-versions\t(.*)\t(.*)$\n?", re.MULTILINE)
# shell text that refers to the secret (an unexported variable), never the secret itself
MYSQL_SECRET_TOKEN = "--defaults-extra-file=/@FLOWLET_SECRET@"  # nosec B105
MYSQL_SECRET_ARG = '--defaults-extra-file=<(printf %s "$FLOWLET_SECRET")'  # nosec B105
PG_SECRET_ENV = 'PGPASSWORD="$FLOWLET_SECRET" '  # nosec B105
WORK = '"$work/d"'


def _env_prefix(target: DatabaseTarget, has_secret: bool) -> str:
    """What a secret stage gets before its argv (postgres): the TLS policy (``PGSSLMODE``),
    then the password or the passfile."""
    if target.engine != "postgres":
        return ""
    return pg_tls_prefix(target) + _password_prefix(target, has_secret)


def _password_prefix(target: DatabaseTarget, has_secret: bool) -> str:
    if has_secret:
        return PG_SECRET_ENV
    if target.passfile and target.passfile != "~/.pgpass":
        if target.passfile.startswith("~/"):
            return f'PGPASSFILE="$HOME"/{shlex.quote(target.passfile[2:])} '
        return f"PGPASSFILE={shlex.quote(target.passfile)} "
    return ""


def _render(stage: Stage, prefix: str, subs: dict[str, str]) -> str:
    words = [subs.get(arg, shlex.quote(arg)) for arg in stage.argv]
    return (prefix if stage.secret else "") + " ".join(words)


def mysql_extra(target: DatabaseTarget, has_secret: bool) -> list[str]:
    if target.engine != "mysql":
        return []
    if has_secret:
        return [MYSQL_SECRET_TOKEN]
    return [f"--defaults-extra-file={target.option_file}"] if target.option_file else []


def remote_command(plan: BackupPlan, job: Any, *, has_secret: bool) -> str:
    """The remote shell line of one file of the set (what ``--dry`` prints, too)."""
    target = plan.target
    prefix = _env_prefix(target, has_secret)
    subs = {MYSQL_SECRET_TOKEN: MYSQL_SECRET_ARG}
    if plan.workdir is not None:
        subs[str(plan.workdir)] = WORK
    pipeline = " | ".join(_render(stage, prefix, subs) for stage in plan.stages)
    if plan.prepare is None:
        return pipeline
    meter = (
        '(while sleep 1; do printf \'flowlet-progress %s\\n\' "$(du -sb -- "$work" 2>/dev/null '
        '| cut -f1)" >&2; done) & meter=$!; '
    )
    return (
        "work=$(mktemp -d); trap 'rm -rf -- \"$work\"' EXIT; trap 'exit 143' TERM HUP INT; "
        f'{meter}{_render(plan.prepare, prefix, subs)}; kill "$meter"; '
        '(cd "$work/d" && sha256sum -- * > ../sums && mv ../sums flowlet.sha256sums); '
        f"{pipeline}"
    )


def versions_script(target: DatabaseTarget, has_secret: bool) -> str:
    """Print ``flowlet-versions<TAB>tool<TAB>server`` on stderr, in the background."""
    prefix = _env_prefix(target, has_secret)
    subs = {MYSQL_SECRET_TOKEN: MYSQL_SECRET_ARG}
    tool, server = probe_argvs(target, mysql_extra(target, has_secret))
    return (
        f"(v1=$({_render(tool, prefix, subs)} 2>/dev/null || echo unknown); "
        f"v2=$({_render(server, prefix, subs)} 2>/dev/null || echo unknown); "
        'printf \'flowlet-versions\\t%s\\t%s\\n\' "$v1" "$v2" >&2) >/dev/null & '
    )


def parse_versions(stderr: str) -> tuple[tuple[str, str], str]:
    """((tool, server) versions, the rest of stderr) from a remote script's stderr."""
    found = VERSIONS_LINE.search(stderr)
    versions = (found.group(1), found.group(2).split("|")[0]) if found else ("unknown", "unknown")
    return versions, VERSIONS_LINE.sub("", stderr).strip()


def keep_script(pipeline: str, remote_dir: str, partial: str) -> str:
    """Write the stream to ``partial`` (0600, dir 0700) and print its sha256.

    Killed (SIGTERM, by the hangup guard when the channel closes), it removes ``partial``.
    """
    quoted = shlex.quote(partial)
    return (
        f"trap {shlex.quote(f'rm -f -- {quoted}; exit 143')} TERM; "
        f"umask 077; mkdir -p -m 0700 -- {shlex.quote(remote_dir)}; "
        f"{pipeline} | tee -- {quoted} | sha256sum; wait"
    )


def remote_backup(c: Context, job: Any) -> tuple[list[FileResult], tuple[str, str]]:
    """Run the backup set on ``job.host``; return its files and the (tool, server) versions."""
    from tasks import sshremote

    target = job.target
    secret = remote_secret(target)
    has_secret = secret is not None
    out = Path(job.settings.remote_dir) if job.keep_remote else job.out
    rclone = None
    if job.destination is not None:
        from tasks.backup.offsite import Rclone

        rclone = Rclone(job.destination).start()
    conn = sshremote.connect(c, job.host)
    try:
        files: list[FileResult] = []
        if job.options.with_globals:
            superuser = _remote_superuser(conn, target, secret)
            plan = plan_globals(target, job.options, out, role_passwords=superuser)
            files.append(
                _stream_back(
                    conn,
                    job,
                    plan,
                    remote_command(plan, job, has_secret=has_secret),
                    secret,
                    rclone,
                )[0]
            )
        plan = plan_backup(target, job.options, out, mysql_extra=mysql_extra(target, has_secret))
        script = versions_script(target, has_secret) + remote_command(
            plan, job, has_secret=has_secret
        )
        if job.keep_remote:
            result, versions = _keep(conn, job, plan, script, secret)
        else:
            result, versions = _stream_back(conn, job, plan, script + "; wait", secret, rclone)
        files.append(result)
        return files, versions
    finally:
        sshremote.close(conn)
        if rclone is not None:
            rclone.close()


def _remote_superuser(conn: Any, target: DatabaseTarget, secret: bytes | None) -> bool:
    from tasks import sshremote

    argv = ["psql", "-XAtq", *pg_connection_args(target), "-c", PG_SERVER_QUERY]
    script = _env_prefix(target, secret is not None) + shlex.join(argv)
    answer = bytearray()
    result = sshremote.stream_to(conn, script, answer.extend, secret=secret)
    if not result.ok:
        tail = result.stderr.strip().splitlines()
        raise OpsError(
            f"backup failed on {job_host(conn)}: psql exit {result.exit_status}"
            + (f": {tail[-1]}" if tail else "")
            + "; nothing written",
            code=result.exit_status,
        )
    return answer.decode("utf-8", "replace").strip().endswith("|t")


def job_host(conn: Any) -> str:
    return str(getattr(conn, "original_host", "host"))


def _stream_back(
    conn: Any, job: Any, plan: BackupPlan, script: str, secret: bytes | None, rclone: Any
) -> tuple[FileResult, tuple[str, str]]:
    from tasks import sshremote

    meter = Progress(plan.final.name)
    outputs = Outputs(plan.final, local=job.local, rclone=rclone, progress=meter)
    dumped = Progress(f"pg_dump -Fd on {job.host}")

    def on_mark(text: str) -> None:
        if text.strip().isdigit():
            dumped.update(int(text.strip()))

    with outputs.failing():
        try:
            result = sshremote.stream_to(
                conn,
                script,
                outputs.write,
                secret=secret,
                on_mark=on_mark if plan.prepare is not None else None,
            )
        except sshremote.RemoteStreamError as error:
            raise OpsError(f"backup failed: {error}; nothing written") from None
        finally:
            dumped.done()
        versions, stderr = parse_versions(result.stderr)
        if not result.ok:
            raise remote_failed(job, result.exit_status, stderr)
    return outputs.commit(result.sha256), versions


def remote_failed(job: Any, status: int, stderr: str) -> OpsError:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    tail = f": {lines[-1]}" if lines else ""
    return OpsError(
        f"backup failed on {job.host}: remote pipeline exit {status}{tail}; nothing written",
        code=status,
    )


def _keep(
    conn: Any, job: Any, plan: BackupPlan, pipeline: str, secret: bytes | None
) -> tuple[FileResult, tuple[str, str]]:
    import time

    from tasks import sshremote

    started = time.monotonic()
    partial, final = str(plan.partial), str(plan.final)
    answer = bytearray()
    try:
        script = keep_script(pipeline, job.settings.remote_dir, partial)
        result = sshremote.stream_to(conn, script, answer.extend, secret=secret)
        versions, stderr = parse_versions(result.stderr)
        if not result.ok:
            raise remote_failed(job, result.exit_status, stderr)
        streamed = sshremote.parse_sha256sum(answer.decode("utf-8", "replace"))
        on_disk = sshremote.sha256_remote(conn, partial)
        if on_disk != streamed:
            raise OpsError(f"backup failed: {partial} has sha256 {on_disk}, stream had {streamed}")
        size = conn.sftp().stat(partial).st_size or 0
        sshremote.commit_remote_file(conn, partial, final, streamed)
    except sshremote.RemoteStreamError as error:
        _remove_quietly(conn, partial)
        raise OpsError(f"backup failed: {error}; nothing written") from None
    except BaseException:
        _remove_quietly(conn, partial)
        raise
    return FileResult(plan.final.name, size, streamed, time.monotonic() - started, final), versions


def _remove_quietly(conn: Any, path: str) -> None:
    from tasks import sshremote

    # The connection may be gone; the original error is the one to report.
    with contextlib.suppress(Exception):
        sshremote.remove(conn, path)
