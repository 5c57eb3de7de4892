"""``backup.postgres`` / ``backup.mysql`` / ``backup``: resolve, plan, stream, upload, record.

The order of a backup set: (postgres ``--globals``: the companion file first, then) the dump,
each streamed through dump -> compress -> (encrypt) into its sink (:mod:`.outputs`): the local
partial file, linked to its final name with a sidecar, and/or an upload confirmed on the
destination; then one manifest line recording where every copy really is. A failed run records
a ``failed`` line (``backup.check`` reports it) and ends in one stderr line.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Context

from tasks.backup import manifest
from tasks.backup.files import WorkDir, ensure_private_dir, write_dir_sums
from tasks.backup.names import taken
from tasks.backup.outputs import FileResult, Outputs
from tasks.backup.plan import (
    BackupOptions,
    BackupPlan,
    check_options,
    local_parallel,
    plan_backup,
    plan_globals,
    probe_argvs,
)
from tasks.backup.stream import Pipeline, Progress, StageError, human, run_stages, tree_size
from tasks.backup.targets import Credentials, DatabaseTarget, credentials, resolve_target
from tasks.core.environments import Environment, resolve_environment
from tasks.core.errors import ConfigError, OpsError
from tasks.core.runner import is_dry, require_tools
from tasks.core.settings import Settings, load

if TYPE_CHECKING:  # pragma: no cover
    from tasks.backup.offsite import Destination, Rclone

TOOLS = {
    "postgres": {"pg_dump": "apt-get install postgresql-client"},
    "mysql": {},
}


@dataclass(frozen=True)
class Job:
    """Everything one backup run needs, resolved from config and flags."""

    settings: Settings
    environment: Environment
    target: DatabaseTarget
    options: BackupOptions
    out: Path
    out_source: str
    destination: Destination | None
    local: bool
    host: str
    keep_remote: bool

    @property
    def manifest_path(self) -> Path:
        return self.out / self.settings.manifest


def clock() -> datetime:
    """Now, in UTC: a backup's stamp (tests replace it)."""
    return datetime.now(timezone.utc)


def known_names(out: Path, manifest_name: str) -> list[str]:
    """The backup names in ``out`` and in its manifest (sets kept only at a destination)."""
    names = [p.name for p in out.iterdir()] if out.is_dir() else []
    records = manifest.read(out / manifest_name) if out.is_dir() else []
    return names + [str(r.get("file")) for r in records if r.get("file")]


def resolve_job(c: Context, engine: str | None, flags: dict[str, Any]) -> Job:
    settings = load(c, "backup")
    environment = resolve_environment(c, flags.get("env"))
    target = resolve_target(environment, flags.get("database"), engine)
    out = flags.get("output_dir") or settings.output_dir
    out_source = "--output-dir" if flags.get("output_dir") else "backup.output_dir"
    encrypted = bool(flags.get("encrypt")) or settings.encrypt or environment.backup_encrypt
    fmt = flags.get("format") or settings.format
    options = BackupOptions(
        fmt=fmt if target.engine == "postgres" else "plain",
        compress=flags.get("compress") or settings.compress,
        level=settings.level if flags.get("level") is None else flags["level"],
        jobs=(flags.get("jobs") or settings.jobs) if fmt == "directory" else 1,
        recipients=tuple(settings.recipients) if encrypted else None,
        now=clock(),
        with_globals=bool(flags.get("globals"))
        or (settings.globals and target.engine == "postgres"),
    )
    if taken(
        known_names(Path(out), settings.manifest), target.environment, target.key, options.now
    ):
        options = replace(options, precise=True)  # a set of this second exists: milliseconds
    if flags.get("jobs") and fmt != "directory" and flags["jobs"] > 1:
        raise ConfigError(
            f"--jobs: {flags['jobs']} needs --format directory (only -Fd dumps in parallel)"
        )
    check_options(target, options)  # every bad combination fails before anything runs
    from tasks.backup.offsite import resolve_destination

    to = flags.get("to") or environment.backup_to
    source = "--to" if flags.get("to") else environment.key("backup_to")
    destination = resolve_destination(settings, to, flag=source) if to else None
    local = not flags.get("no_local")
    if not local and destination is None:
        raise ConfigError(
            "--no-local: needs a destination (--to NAME or environments."
            f"{environment.name}.backup_to): the backup would go nowhere"
        )
    host = flags.get("host") or target.backup_host
    keep_remote = bool(flags.get("keep_remote"))
    if keep_remote and not host:
        raise ConfigError("--keep-remote: needs --host (or backup_host in the target's config)")
    if keep_remote and (destination is not None or not local):
        raise ConfigError("--keep-remote: the copy stays on the host; not with --to / --no-local")
    if keep_remote and settings.signing_key is not None:
        raise ConfigError(
            "--keep-remote: the copy stays on the host, where backup.signing_key cannot sign it"
        )
    if keep_remote and options.with_globals:
        raise ConfigError("--globals: not with --keep-remote (the companion would stay local)")
    return Job(
        settings,
        environment,
        target,
        options,
        out,
        out_source,
        destination,
        local,
        host,
        keep_remote,
    )


def backup(c: Context, engine: str | None, flags: dict[str, Any]) -> None:
    """The body of every backup task (``engine`` None: ``--db-type`` decides)."""
    job = resolve_job(c, engine, flags)
    if is_dry(c):
        from tasks.backup.describe import print_plan

        print_plan(job)
        return
    ensure_private_dir(job.out, source=job.out_source)
    if job.settings.signing_key is not None:  # a key that cannot sign fails before the dump
        from tasks.backup.signing import sign

        sign(job.settings.signing_key, b"flowlet-backup: can this key sign?\n")
    started = time.time()
    try:
        if job.host:
            from tasks.backup.remote import remote_backup

            files, versions = remote_backup(c, job)
        else:
            files, versions = local_backup(job)
        if job.settings.signing_key is not None:
            sign_files(job, files)
    except (OpsError, KeyboardInterrupt) as exc:
        error = exc.message if isinstance(exc, OpsError) else "interrupted"
        manifest.append(
            job.manifest_path,
            {
                "event": "failed",
                "environment": job.target.environment,
                "database": job.target.key,
                "at": datetime.now(timezone.utc).isoformat(),
                "error": error,
            },
        )
        raise
    record(job, files, versions, started)
    main = files[-1]
    where = main.local or next(iter(main.destinations.values()), main.name)
    print(f"{where}  {human(main.bytes)}  sha256 {main.sha256}")
    for name, url in main.destinations.items():
        print(f"  {name}: {url} (size and sha256 confirmed there)")
    failed = [f for f in files if f.upload_error]
    if failed:
        kept = f"; the local copy {failed[0].local} is kept" if failed[0].local else ""
        raise OpsError(failed[0].upload_error + kept)


def record(job: Job, files: list[FileResult], versions: tuple[str, str], started: float) -> None:
    target = job.target
    main = files[-1]
    line: dict[str, Any] = {
        "event": "backup",
        "environment": target.environment,
        "database": target.key,
        "dbname": target.name,
        "engine": target.engine,
        "duration": round(sum(f.seconds for f in files), 3),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "dump_version": versions[0],
        "server_version": versions[1],
        "ran_on": job.host or socket.gethostname(),
        "encrypted": job.options.recipients is not None,
        "format": job.options.fmt,
        "compress": job.options.compress,
        **main.record(),
    }
    if job.keep_remote and main.local:
        line["locations"] = {"remote": f"{job.host}:{main.local}"}
    if len(files) > 1:
        line["globals"] = files[0].record()
    if main.upload_error:
        line["upload_error"] = main.upload_error
    manifest.append(job.manifest_path, line)


def sign_files(job: Job, files: list[FileResult]) -> None:
    """``NAME.sha256.sig`` beside every copy of every file (:mod:`tasks.backup.signing`)."""
    from tasks.backup.files import sidecar_text, write_atomic
    from tasks.backup.signing import SIG_SUFFIX, sign

    assert job.settings.signing_key is not None  # nosec B101 - only called when configured
    signatures = {
        f.name: sign(job.settings.signing_key, sidecar_text(f.name, f.sha256).encode())
        for f in files
    }
    for f in files:
        if f.local:
            path = Path(f.local).with_name(f.name + SIG_SUFFIX)
            write_atomic(path, signatures[f.name].decode(), 0o600, source=job.out_source)
    uploaded = [f for f in files if f.destinations]
    if uploaded and job.destination is not None:
        from tasks.backup.offsite import Rclone

        rclone = Rclone(job.destination).start()
        try:
            for f in uploaded:
                rclone.put_small(f.name + SIG_SUFFIX, signatures[f.name])
        finally:
            rclone.close()


def stage_failed(error: StageError, what: str = "backup") -> OpsError:
    detail = f": {error.last_line}" if error.last_line else ""
    return OpsError(f"{what} failed: {error}{detail}; nothing written", code=error.exit_code)


def local_backup(job: Job) -> tuple[list[FileResult], tuple[str, str]]:
    require_tools(TOOLS[job.target.engine])
    if job.options.recipients is not None:
        require_tools({"age": "apt-get install age"})
    rclone = None
    if job.destination is not None:
        from tasks.backup.offsite import Rclone

        rclone = Rclone(job.destination).start()
    try:
        with credentials(job.target) as creds:
            probes: list[subprocess.Popen[bytes]] = []
            files: list[FileResult] = []
            versions = ("unknown", "unknown")
            try:
                if job.options.with_globals:  # the probe says whether role passwords are ours
                    versions = collect_probes(start_probes(job.target, creds))
                    superuser = versions[1].endswith("|t")
                    plan = plan_globals(
                        job.target,
                        job.options,
                        job.out,
                        role_passwords=superuser,
                        parallel=local_parallel(),
                    )
                    files.append(stream_file(plan, creds, job, rclone))
                plan = plan_backup(
                    job.target,
                    job.options,
                    job.out,
                    mysql_extra=creds.argv,
                    parallel=local_parallel(),
                )

                def probe() -> None:  # while the dump streams, started right after it
                    if not job.options.with_globals:
                        probes.extend(start_probes(job.target, creds))

                files.append(stream_file(plan, creds, job, rclone, on_start=probe))
            finally:
                if probes:
                    versions = collect_probes(probes)
    finally:
        if rclone is not None:
            rclone.close()
    return files, (versions[0], versions[1].split("|")[0])


def stream_file(
    plan: BackupPlan,
    creds: Credentials,
    job: Job,
    rclone: Rclone | None,
    on_start: Callable[[], None] | None = None,
) -> FileResult:
    """One file of the set through its pipeline into its outputs; nothing left on failure.
    ``on_start`` runs once the dump has started."""
    meter = Progress(plan.final.name)
    outputs = Outputs(plan.final, local=job.local, rclone=rclone, progress=meter)
    workdir = None
    try:
        with outputs.failing():
            try:
                if plan.prepare is not None and plan.workdir is not None:
                    workdir = WorkDir(plan.workdir)
                    dump_directory(plan, creds, on_start)
                    outputs.started = outputs.meter.start = time.monotonic()
                    on_start = None
                run_stages(plan.stages, creds, sink=outputs.write, on_start=on_start)
            except StageError as error:
                raise stage_failed(error) from None
            return outputs.commit()
    finally:
        if workdir is not None:
            workdir.remove()


def dump_directory(
    plan: BackupPlan, creds: Credentials, on_start: Callable[[], None] | None = None
) -> None:
    """``pg_dump -Fd`` into the work directory (its size as progress), then its checksums."""
    assert plan.prepare is not None and plan.workdir is not None  # nosec B101 - directory plans
    meter = Progress(f"pg_dump -Fd {plan.workdir.name}")
    pipeline = Pipeline([plan.prepare], creds, output=False)
    if on_start is not None:
        on_start()
    try:
        while True:
            meter.update(tree_size(plan.workdir) if meter.enabled else 0)
            if pipeline.procs[0].poll() is not None:
                break
            time.sleep(0.2)
    finally:
        meter.done()
    pipeline.wait()
    write_dir_sums(plan.workdir)


def start_probes(target: DatabaseTarget, creds: Credentials) -> list[subprocess.Popen[bytes]]:
    """The version probes for the manifest: they run while the dump streams."""
    from tasks.backup.stream import start

    return [
        start(stage, creds, stderr=subprocess.DEVNULL) for stage in probe_argvs(target, creds.argv)
    ]


def collect_probes(probes: list[subprocess.Popen[bytes]]) -> tuple[str, str]:
    """(dump tool version, server version); "unknown" for a probe that failed."""
    from tasks.core.runner import stop_group

    answers = []
    for probe in probes:
        try:
            out, _ = probe.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            stop_group(probe)
            out = b""
        text = out.decode("utf-8", "replace").strip()
        answers.append(text if probe.returncode == 0 and text else "unknown")
    return (answers + ["unknown", "unknown"])[0], (answers + ["unknown", "unknown"])[1]
