"""``backup.drill``: restore the newest backup set into a scratch database, prove it, time it.

Auditors (SOC 2, PCI) ask for evidence that backups restore and how long that takes (the RTO).
A drill takes the newest set of one target, locally or at a destination (``--from``), and runs
three timed phases: **fetch** (the dump's bytes checked against its sha256: the local sidecar,
or fetched from the destination into ``NAME.partial`` and checked against the manifest, as
``backup.restore --from`` does), **restore** (into a scratch database beside the source, as
``backup.verify --restore-test`` does) and **verify** (PostgreSQL: the rows of every table
against the dump's own COPY blocks, so rows written to the source since the backup do not fail
it, and the objects against the live source; MariaDB: row and object counts against the live
source, as ``--restore-test``); the scratch database is dropped whatever happens. Every
drill, passed or failed, appends one evidence record to ``backup.drill.evidence`` in the output
directory (JSON lines: which backup, where from, sizes, durations per phase, checks, result)
and, with a textfile directory, writes ``flowlet_backup_drill_*`` metrics for node-exporter
atomically (the ``FlowletBackupDrillFailed`` and ``FlowletBackupDrillStale`` alerts). A failed
drill ends in one line and a non-zero exit.

resolve (flags over config) -> plan_drill (what ``--dry`` prints) -> execute.
"""

from __future__ import annotations

import re
import secrets
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.backup.targets import DatabaseTarget
from tasks.core.errors import OpsError

PHASES = ("fetch", "restore", "verify")


@dataclass(frozen=True)
class DrillOptions:
    target: DatabaseTarget
    source: str | None  # a destination name; None: the local directory
    output_dir: Path
    evidence: Path
    textfile: Path | None
    textfile_source: str
    identity: Any
    trust_destination: bool
    max_age: int
    jobs: int

    @property
    def where(self) -> str:
        return self.source or "local"


@dataclass
class Drill:
    """What one drill did: the evidence record is built from it."""

    options: DrillOptions
    started: float
    file: str | None = None
    files: list[str] = field(default_factory=list)
    size: int = 0
    set_size: int = 0
    scratch: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    objects: int = 0
    failed_phase: str | None = None
    error: str | None = None
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rto(self) -> float:
        return self.phases.get("fetch", 0.0) + self.phases.get("restore", 0.0)

    def record(self) -> dict[str, Any]:
        target = self.options.target
        return {
            "event": "drill",
            "environment": target.environment,
            "database": target.key,
            "engine": target.engine,
            "server": f"{target.host}:{target.port}",
            "source_database": target.name,
            "where": self.options.where,
            "file": self.file,
            "files": self.files,
            "bytes": self.size,
            "set_bytes": self.set_size,
            "scratch_database": self.scratch,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "rto_seconds": round(self.rto, 3),
            "checks": self.checks,
            "tables": self.tables,
            "rows": self.rows,
            "objects": self.objects,
            "result": "ok" if self.ok else "failed",
            "failed_phase": self.failed_phase,
            "error": self.error,
            "at": _iso(self.started),
            "finished": _iso(self.finished),
        }


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat()


def resolve(
    c: Context,
    *,
    env: str | None,
    database: str | None,
    source: str | None,
    output_dir: Path | None,
    textfile: Path | None,
    identity: Any,
    trust_destination: bool,
) -> DrillOptions:
    """Flags over config (flags arrive converted by their schema kinds); one line if bad."""
    from tasks.backup.offsite import resolve_destination
    from tasks.backup.source import check_trust_flag
    from tasks.backup.targets import resolve_target
    from tasks.core.environments import resolve_environment
    from tasks.core.settings import load

    settings = load(c, "backup")
    check_trust_flag(source, trust_destination)
    if source is not None:
        from tasks.backup.settings import NAME
        from tasks.core.settings import flag

        resolve_destination(settings, flag(NAME, source, "--from"), flag="--from")
    environment = resolve_environment(c, env)
    target = resolve_target(environment, database, None)
    out = output_dir if output_dir is not None else settings.output_dir
    return DrillOptions(
        target=target,
        source=source,
        output_dir=out,
        evidence=out / settings.drill.evidence,
        textfile=textfile if textfile is not None else settings.check.textfile_dir,
        textfile_source="--textfile" if textfile is not None else "backup.check.textfile_dir",
        identity=identity,
        trust_destination=trust_destination,
        max_age=settings.drill.max_age,
        jobs=settings.jobs,
    )


def textfile_path(options: DrillOptions) -> Path | None:
    if options.textfile is None:
        return None
    target = options.target
    stem = re.sub(r"[^A-Za-z0-9_]", "_", f"{target.environment}_{target.key}_{options.where}")
    return options.textfile / f"flowlet_backup_drill_{stem}.prom"


def plan_drill(options: DrillOptions) -> list[str]:
    """The drill's steps in order, as ``--dry`` prints them (pure)."""
    target = options.target
    where = options.source or str(options.output_dir)
    fetch = f"fetch: the newest backup set of {target.label} at {where}, its sha256 checked " + (
        "against its sidecar"
        if options.source is None
        else f"while fetched into {options.output_dir} (NAME.partial, removed afterwards)"
    )
    steps = [
        fetch,
        f"restore: into a scratch database {target.name}_drill_XXXXXXXX on "
        f"{target.host}:{target.port} (dropped afterwards)",
        "verify: "
        + (
            f"row counts compared with the dump's own, objects with {target.name}"
            if target.engine == "postgres"
            else f"row counts and objects compared with {target.name}"
        ),
        f"evidence: append one record to {options.evidence}",
    ]
    prom = textfile_path(options)
    if prom is not None:
        steps.append(f"metrics: write {prom} (flowlet_backup_drill_*)")
    return steps


def execute(c: Context, options: DrillOptions, clock: Any = time.monotonic) -> Drill:
    """Run the drill; record its evidence and metrics whatever the result."""
    from tasks.core.settings import load

    settings = load(c, "backup")
    drill = Drill(options, started=time.time())
    try:
        _run(c, settings, options, drill, clock)
    except OpsError as exc:
        drill.error = exc.message or type(exc).__name__
        drill.failed_phase = drill.failed_phase or "fetch"  # e.g. the destination is down
        drill.finished = time.time()
        _record(drill)
        raise OpsError(
            f"drill FAILED: {options.target.label} at {options.where}"
            + (f" ({drill.failed_phase})" if drill.failed_phase else "")
            + f": {drill.error}",
            code=exc.code,
        ) from None
    except BaseException as exc:  # interrupted: evidence of the attempt, then the signal's exit
        signum = getattr(exc, "signum", None)
        how = signal.Signals(signum).name if signum else type(exc).__name__
        drill.error = f"interrupted ({how})"
        drill.finished = time.time()
        _record(drill)
        raise
    drill.finished = time.time()
    _record(drill)
    return drill


def _run(c: Context, settings: Any, options: DrillOptions, drill: Drill, clock: Any) -> None:
    from tasks.backup.catalog import catalog_of, check_env, select
    from tasks.backup.database import Session
    from tasks.backup.files import Partial, ensure_private_dir, read_sidecar, sha256_file
    from tasks.backup.restore import compare_restored, local_opener, restore_into, stage_locally
    from tasks.backup.source import open_source
    from tasks.backup.targets import credentials
    from tasks.backup.verify import identity_for

    target = options.target
    environments = check_env(c, None)
    opened = open_source(
        c, settings, options.source, options.output_dir, trust_destination=options.trust_destination
    )
    staged: Partial | None = None
    phase = "fetch"
    started = clock()
    try:
        catalog = select(catalog_of(opened), environments, target.environment, target.key)
        if not catalog.sets:
            raise OpsError(f"no backup of {target.label} at {opened.where}")
        newest = catalog.sets[0]
        main = newest.main
        drill.file, drill.files = main.name, [f.name for f in newest.files]
        drill.size, drill.set_size = main.size, sum(f.size for f in newest.files)
        key = identity_for(settings, main.name, options.identity)
        if opened.is_local:
            path = opened.out / main.name
            expected = read_sidecar(path)
            if expected is None:
                raise OpsError(f"{main.name}: checksum missing (no sidecar {main.name}.sha256)")
            if sha256_file(path) != expected:
                raise OpsError(f"{main.name}: checksum MISMATCH (sidecar {main.name}.sha256)")
        else:
            ensure_private_dir(opened.out, source="backup.output_dir")
            staged = stage_locally(opened, main.name, opened.out)
            path = staged.path
        drill.phases["fetch"] = clock() - started
        drill.checks.append("sha256")
        with credentials(target) as creds:
            session = Session(target, creds)
            scratch = f"{target.name}_drill_{secrets.token_hex(4)}"[:63]
            phase, started = "restore", clock()
            drill.scratch = scratch
            try:  # created inside: a signal during "create database" still drops it
                session.create(scratch)
                restore_into(
                    session,
                    local_opener(path),
                    main.name,
                    scratch,
                    key,
                    jobs=options.jobs,
                    no_owner=False,
                    workroot=opened.out,
                )
                drill.phases["restore"] = clock() - started
                drill.checks.append("restore")
                phase, started = "verify", clock()
                if target.engine == "postgres":
                    rows, objects = compare_with_dump(
                        session, scratch, main.name, path, key, opened.out
                    )
                else:
                    rows, objects = compare_restored(session, scratch, main.name)
                drill.phases["verify"] = clock() - started
                against = "dump" if target.engine == "postgres" else "source"
                drill.checks += [f"row_counts_vs_{against}", "objects_vs_source"]
                drill.tables, drill.rows = len(rows), sum(rows.values())
                drill.objects = sum(objects.values())
            finally:
                session.drop(scratch)
    except BaseException:
        drill.phases.setdefault(phase, clock() - started)
        drill.failed_phase = phase
        raise
    finally:
        if staged is not None:
            staged.discard()
        opened.close()


def compare_with_dump(
    session: Any, scratch: str, name: str, path: Path, identity: str | None, workroot: Path
) -> tuple[dict[str, int], dict[str, int]]:
    """PostgreSQL: the restored rows of every table against the dump's own COPY blocks (rows
    written after the backup do not count), the objects against the live source (as
    ``--restore-test``). Returns the restored row and object counts."""
    restored = session.row_counts(scratch)
    dumped = dump_row_counts(name, path, identity, workroot)
    differ = sorted(t for t, n in dumped.items() if restored.get(t) != n)
    if differ:
        raise OpsError(f"{name}: restored row counts differ from the dump's: {differ}")
    objects, live = session.objects(scratch), session.objects(session.target.name)
    if objects != live:
        differ = sorted(k for k in set(objects) | set(live) if objects.get(k) != live.get(k))
        raise OpsError(f"{name}: restore test objects differ from {session.target.name}: {differ}")
    return restored, objects


def dump_row_counts(name: str, path: Path, identity: str | None, workroot: Path) -> dict[str, int]:
    """Rows per table as the dump holds them: its COPY blocks, read as a restore reads them
    (plain: the SQL itself; custom and directory: ``pg_restore -f -``)."""
    from tasks.backup.dirtoc import CopyChecker, sql_stage
    from tasks.backup.files import WorkDir
    from tasks.backup.names import dump_kind
    from tasks.backup.plan import Stage
    from tasks.backup.readback import read_stages, untar_stage
    from tasks.backup.stream import StageError, run_stages
    from tasks.backup.verify import CAT

    kind, stages, checker = dump_kind(name), read_stages(name, identity), CopyChecker()
    try:
        with open(path, "rb") as handle:
            if kind == "plain":
                run_stages(stages or [CAT], stdin=handle, sink=checker)
            elif kind == "custom":
                sql = Stage("pg_restore", ("pg_restore", "-f", "-"))
                run_stages([*stages, sql], stdin=handle, sink=checker)
            else:
                work = WorkDir(workroot / f"{name}.verify-{secrets.token_hex(3)}.partial.d")
                try:
                    run_stages([*stages, untar_stage(work.path)], stdin=handle)
                    run_stages([sql_stage(work.path)], sink=checker)
                finally:
                    work.remove()
    except StageError as exc:
        detail = f": {exc.last_line}" if exc.last_line else ""
        raise OpsError(f"{name}: {exc}{detail}", code=exc.exit_code) from None
    checker.finish()
    if checker.problems:
        raise OpsError(f"{name}: {checker.problems[0]}")
    return checker.rows


def _record(drill: Drill) -> None:
    """The evidence line, then the metrics (their last success comes from the evidence)."""
    from tasks.core import jsonl

    options = drill.options
    jsonl.append(options.evidence, drill.record())
    prom = textfile_path(options)
    if prom is not None:
        from tasks.backup.files import write_atomic

        last = last_success(options.evidence, options.target, options.where)
        write_atomic(prom, metrics_text(drill, last), 0o644, source=options.textfile_source)


def last_success(evidence: Path, target: DatabaseTarget, where: str) -> float:
    """Unix time the newest passed drill of ``target`` at ``where`` finished (0: never)."""
    from tasks.core import jsonl

    newest = 0.0
    for record in jsonl.read(evidence):
        if (
            record.get("event") == "drill"
            and record.get("result") == "ok"
            and record.get("environment") == target.environment
            and record.get("database") == target.key
            and record.get("where") == where
        ):
            try:
                stamp = datetime.fromisoformat(str(record.get("finished"))).timestamp()
            except ValueError:
                continue
            newest = max(newest, stamp)
    return newest


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(round(float(value), 3))


METRICS = (
    ("last_success_timestamp_seconds", "Unix time the last passed drill finished (0: never)"),
    ("timestamp_seconds", "Unix time the last drill finished"),
    ("last_failed", "1 if the last drill failed"),
    ("duration_seconds", "Seconds each phase of the last drill took (fetch, restore, verify)"),
    ("rto_seconds", "Seconds the last drill took to fetch and restore the backup"),
    ("size_bytes", "Bytes of the backup the last drill restored"),
    ("max_age_seconds", "backup.drill.max_age: a drill older than this is stale"),
)


def metrics_text(drill: Drill, last_success: float) -> str:
    """The ``flowlet_backup_drill_*`` gauges of one target at one location (pure)."""
    target = drill.options.target
    labels = (
        f'environment="{_label(target.environment)}",database="{_label(target.key)}",'
        f'location="{_label(drill.options.where)}"'
    )
    values: dict[str, list[tuple[str, float]]] = {
        "last_success_timestamp_seconds": [("", last_success)],
        "timestamp_seconds": [("", drill.finished)],
        "last_failed": [("", 0 if drill.ok else 1)],
        "duration_seconds": [
            (f',phase="{p}"', drill.phases[p]) for p in PHASES if p in drill.phases
        ],
        "rto_seconds": [("", drill.rto)] if drill.ok else [],
        "size_bytes": [("", drill.size)] if drill.file else [],
        "max_age_seconds": [("", drill.options.max_age)],
    }
    lines = []
    for name, help_text in METRICS:
        if not values[name]:
            continue
        metric = f"flowlet_backup_drill_{name}"
        lines += [f"# HELP {metric} {help_text}.", f"# TYPE {metric} gauge"]
        lines += [f"{metric}{{{labels}{extra}}} {_number(v)}" for extra, v in values[name]]
    return "\n".join(lines) + "\n"


def summary(drill: Drill) -> str:
    """The one line a passed drill prints."""
    phases = ", ".join(f"{p} {drill.phases[p]:.1f}s" for p in PHASES if p in drill.phases)
    return (
        f"drill ok: {drill.options.target.label} {drill.file} from {drill.options.where} "
        f"restored in {drill.rto:.1f}s ({phases}; {drill.tables} tables, row counts and "
        f"{drill.objects} objects match); evidence: {drill.options.evidence}"
    )


def drill(
    c: Context,
    *,
    env: str | None,
    database: str | None,
    source: str | None,
    output_dir: Path | None,
    textfile: Path | None,
    identity: Any,
    trust_destination: bool,
) -> None:
    from tasks.core.runner import is_dry

    options = resolve(
        c,
        env=env,
        database=database,
        source=source,
        output_dir=output_dir,
        textfile=textfile,
        identity=identity,
        trust_destination=trust_destination,
    )
    if is_dry(c):
        for step in plan_drill(options):
            print(f"would {step}")
        return
    print(summary(execute(c, options)))
