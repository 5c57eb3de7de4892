"""Bodies of ``backup.postgres``/``mysql``/``backup``: resolve, plan, stream, record.

Imported by the tasks in ``tasks/backup/__init__.py`` only when they run, so that ``inv --list``
does not load the backup machinery.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from invoke import Context
from tasks.core.errors import OpsError

from tasks.backup import manifest
from tasks.backup.pipeline import BackupPlan, plan_backup, probe_argvs
from tasks.backup.stream import ensure_private_dir, human, stream_to_file
from tasks.backup.targets import DatabaseTarget, credentials, resolve_settings, resolve_target
from tasks.core.environments import resolve_environment
from tasks.core.settings import project_root
from tasks.core.runner import is_dry, require_tools

TOOLS = {
    "postgres": {
        "pg_dump": "apt-get install postgresql-client",
        "psql": "apt-get install postgresql-client",
    },
    "mysql": {"mariadb-dump": "apt-get install mariadb-client"},
}


def _start_probes(
    target: DatabaseTarget, env: dict[str, str], extra: list[str], dumper: str
) -> list[subprocess.Popen[str]]:
    """Start the version probes for the manifest; they run while the dump streams."""
    return [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        for argv in probe_argvs(target, extra, dumper)
    ]  # fmt: skip


def _collect_probes(probes: list[subprocess.Popen[str]]) -> tuple[str, str]:
    """(dump tool version, server version); "unknown" for a probe that failed."""
    answers = []
    for probe in probes:
        try:
            out, _ = probe.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            probe.kill()
            out, _ = probe.communicate()
        answers.append(out.strip() if probe.returncode == 0 else "unknown")
    return answers[0], answers[1]


def run_backup(
    c: Context,
    engine: str,
    env: str | None,
    database: str | None,
    fmt: str | None,
    compress: str | None,
    level: int,
    jobs: int,
    output_dir: str | None,
    encrypt: bool,
    host: str | None = None,
    keep_remote: bool = False,
) -> Path | None:
    """Resolve config and flags, plan, then stream the backup (or print the plan under --dry)."""
    environment = resolve_environment(c, env)
    target = resolve_target(environment, database, engine)
    settings = resolve_settings(c.config.get("backup") or {}, project_root(c))
    out = settings.output_dir if output_dir is None else Path(output_dir).resolve()
    encrypted = encrypt or settings.encrypt or environment.backup_encrypt
    options = {
        "output_dir": out,
        "fmt": (settings.format if fmt is None else fmt) if engine == "postgres" else "plain",
        "compress": settings.compress if compress is None else compress,
        "level": settings.level if level == 0 else level,
        "jobs": settings.jobs if jobs == 0 else jobs,
        "recipients": settings.recipients if encrypted else None,
        "now": datetime.now(timezone.utc),
    }
    remote_host = target.backup_host if host is None else host
    if keep_remote and not remote_host:
        raise OpsError("--keep-remote: needs --host (or backup_host in the target's config)")
    if is_dry(c):
        _print_plan(target, options, remote_host, keep_remote, settings.remote_dir)
        return None
    if remote_host:
        from tasks.backup.remote import remote_backup

        started = time.time()
        plan, size, digest, duration, versions = remote_backup(
            c, remote_host, target, options, keep_remote, str(settings.remote_dir)
        )
        manifest_path = out / settings.manifest
        _record(plan, size, digest, duration, started, versions, manifest_path, remote_host)
        where = f"{remote_host}:{plan.final}" if keep_remote else str(plan.final)
        print(f"{where}  {human(size)}  sha256 {digest}")
        return plan.final
    require_tools(TOOLS[engine] if engine == "postgres" else {})
    if encrypted:
        require_tools({"age": "apt-get install age"})
    with (
        tempfile.TemporaryDirectory(prefix="flowlet-backup-") as tmp,
        credentials(target, Path(tmp)) as (child_env, extra),
    ):
        plan = plan_backup(target, mysql_extra=extra, **options)  # type: ignore[arg-type]
        started = time.time()
        dumper = plan.stages[0].argv[0] if plan.prepare is None else plan.prepare.argv[0]
        probes = _start_probes(target, child_env, extra, dumper)
        try:
            result = stream_to_file(
                plan.stages, plan.final, child_env, prepare=plan.prepare, workdir=plan.workdir
            )
        finally:
            versions = _collect_probes(probes)
    manifest_path = plan.final.parent / settings.manifest
    _record(plan, result.bytes, result.sha256, result.duration, started, versions, manifest_path)
    print(f"{plan.final}  {human(result.bytes)}  sha256 {result.sha256}")
    return plan.final


def _print_plan(
    target: DatabaseTarget, options: dict[str, Any], remote_host: str, keep: bool, remote_dir: str
) -> None:
    """What ``--dry`` shows: the pipeline with placeholders where secrets' files would be."""
    holder = "<0600 temp option file>" if not remote_host else "<0600 remote file, via SFTP>"
    extra = [f"--defaults-extra-file={holder}"] if target.engine == "mysql" else []
    if keep:
        options = {**options, "output_dir": Path(remote_dir)}
    plan = plan_backup(target, mysql_extra=extra, **options)
    if remote_host:
        from tasks.backup.remote import remote_pipeline

        secret = "<0600 remote passfile, via SFTP>" if target.password_env else None
        print(f"on {remote_host} (ssh, bash -eo pipefail): {remote_pipeline(plan, secret)}")
        print(f"{'kept there as' if keep else 'streamed back to'} {plan.final} (+ .sha256)")
        return
    if target.engine == "postgres" and target.password_env:
        print(f"PGPASSFILE=<0600 temp passfile written from ${target.password_env}>")
    print("\n".join(plan.describe()))


def _record(
    plan: BackupPlan, size: int, digest: str, duration: float, started: float,
    versions: tuple[str, str], manifest_path: Path, host: str | None = None,
) -> None:  # fmt: skip
    target = plan.target
    ensure_private_dir(manifest_path.parent)
    manifest.append(
        manifest_path,
        {
            "event": "backup",
            "file": plan.final.name,
            "environment": target.environment,
            "database": target.key,
            "dbname": target.name,
            "engine": target.engine,
            "bytes": size,
            "sha256": digest,
            "duration": round(duration, 3),
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "dump_version": versions[0],
            "server_version": versions[1],
            "host": host or socket.gethostname(),
            "encrypted": plan.final.name.endswith(".age"),
            "location": f"{host}:{plan.final}" if host else str(plan.final),
            **plan.options,
        },
    )
