"""``backup.check``: is the newest backup fresh and sound? A Nagios/Icinga plugin.

Per environment and target: OK when the newest backup set is younger than ``--max-age`` and
verifies (every byte read, :mod:`.verify`); WARNING past ``--warn-age`` or when the last run
after it failed; CRITICAL when it is too old, does not verify, or there is none; UNKNOWN when it
cannot be checked (a bad flag, an unreachable destination). One summary line on stdout (with
performance data), the exit code 0/1/2/3. ``--textfile DIR`` also writes node-exporter textfile
metrics, atomically (the alert rules in kubernetes/monitoring/kube-prometheus-stack.yaml).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.backup import manifest
from tasks.backup.catalog import Source, age, catalog_of, open_source, select
from tasks.backup.source import check_trust_flag
from tasks.backup.stream import human
from tasks.backup.targets import DatabaseTarget, targets_of
from tasks.core.environments import resolve_environment
from tasks.core.errors import ConfigError, OpsError
from tasks.core.settings import Settings, flag, load

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass
class Result:
    target: DatabaseTarget
    where: str
    status: int
    text: str
    age: float | None = None
    size: int = 0
    duration: float = 0.0
    finished: float = 0.0
    verified: bool = False
    last_failed: bool = False


def check(
    c: Context,
    *,
    env: str | None,
    database: str | None,
    max_age: str | None,
    warn_age: str | None,
    source: str | None,
    textfile: str | None,
    output_dir: Any,
    identity: Any,
    trust_destination: bool = False,
) -> None:
    """The body of ``backup.check``: every failure to check at all is UNKNOWN (exit 3); with a
    textfile directory, the targets it could not check get ``check_status 3`` there too (an
    unreachable destination must not leave the last OK in place)."""
    targets: list[DatabaseTarget] = []
    directory: Any = None
    where_text = "local" if source is None else source
    try:
        settings = load(c, "backup")
        limits = (
            flag("backup.check.max_age", max_age, "--max-age") or settings.check.max_age,
            (
                settings.check.warn_age
                if warn_age is None
                else flag("backup.check.warn_age", warn_age, "--warn-age")
            ),
        )
        if limits[1] is not None and limits[1] >= limits[0]:
            name = "--warn-age" if warn_age is not None else "backup.check.warn_age"
            raise ConfigError(
                f"{name}: {duration_text(limits[1])} is not valid; valid: a duration shorter "
                f"than the --max-age ({duration_text(limits[0])}), or none"
            )
        where = flag("backup.check.textfile_dir", textfile, "--textfile") if textfile else None
        directory = where or settings.check.textfile_dir
        out = flag("backup.output_dir", output_dir, "--output-dir") if output_dir else None
        ident = flag("backup.identity", identity, "--identity") if identity else None
        if source is not None:
            from tasks.backup.settings import NAME

            flag(NAME, source, "--from")
        check_trust_flag(source, trust_destination)
        environment = resolve_environment(c, env)
        targets = targets_of(environment, database)
        opened = open_source(c, settings, source, out, trust_destination=trust_destination)
        try:
            results = [evaluate(c, settings, opened, t, limits, ident) for t in targets]
        finally:
            opened.close()
        if directory is not None:
            source = "--textfile" if where else "backup.check.textfile_dir"
            for result in results:
                write_textfile(Path(directory), result, limits[0], source=source)
    except OpsError as exc:
        print(f"BACKUP UNKNOWN - {exc.message}", flush=True)
        if directory is not None:
            for target in targets:
                unknown = Result(target, where_text, UNKNOWN, exc.message)
                write_textfile(Path(directory), unknown, limits[0], source="--textfile")
        raise OpsError(exc.message, code=UNKNOWN) from None
    status = max(r.status for r in results)
    perf = " ".join(perfdata(r, limits) for r in results)
    print(f"BACKUP {STATUS[status]} - " + "; ".join(r.text for r in results) + f" | {perf}")
    if status:
        raise OpsError("", code=status)


def evaluate(
    c: Context,
    settings: Settings,
    source: Source,
    target: DatabaseTarget,
    limits: tuple[int, int | None],
    identity: Any,
) -> Result:
    from tasks.backup.verify import verify_set

    label = target.label + ("" if source.is_local else f" at {source.where}")
    environments = sorted(load(c, "environments"))
    catalog = select(catalog_of(source), environments, target.environment, target.key)
    records = manifest.read(source.out / settings.manifest)
    events = manifest.last_events(records, target.environment, target.key)
    failed = events.get("failed")
    if not catalog.sets:
        return Result(
            target,
            source.where,
            CRITICAL,
            f"{label}: no backup at {source.where}",
            last_failed=failed is not None,
        )
    newest = catalog.sets[0]
    states = manifest.by_file(records)
    record = states.get(newest.main.name, manifest.FileState()).record
    finished = _when(record.get("finished")) or newest.parsed.when.timestamp()
    result = Result(
        target,
        source.where,
        OK,
        "",
        age=time.time() - finished,
        size=sum(f.size for f in newest.files),
        finished=finished,
        duration=float(record.get("duration") or 0.0),
    )
    result.last_failed = failed is not None and (_when(failed.get("at")) or 0) > finished
    text = f"{label}: newest {age(result.age or 0)} old ({human(result.size)})"
    try:
        verify_set(c, settings, source, newest, identity=identity)
        result.verified = True
    except OpsError as exc:
        result.status, result.text = CRITICAL, f"{text}, does NOT verify: {exc.message}"
        return result
    max_age, warn_age = limits
    if (result.age or 0) > max_age:
        result.status, result.text = CRITICAL, f"{text}, older than {duration_text(max_age)}"
    elif warn_age is not None and (result.age or 0) > warn_age:
        result.status, result.text = WARNING, f"{text}, older than {duration_text(warn_age)}"
    elif result.last_failed and failed is not None:
        result.status = WARNING
        result.text = f"{text}, verified; the last run failed: {failed.get('error', '?')}"
    elif record.get("upload_error"):  # the run kept this copy but its upload failed
        result.status, result.last_failed = WARNING, True
        result.text = f"{text}, verified; its upload failed: {record['upload_error']}"
    else:
        result.text = f"{text}, verified"
    return result


def _when(value: Any) -> float | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def duration_text(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"


def perfdata(result: Result, limits: tuple[int, int | None]) -> str:
    name = f"{result.target.label}" + ("" if result.where == "local" else f"@{result.where}")
    warn = "" if limits[1] is None else str(limits[1])
    value = f"{result.age:.0f}s" if result.age is not None else "U"
    return f"'{name} age'={value};{warn};{limits[0]};0 '{name} size'={result.size}B;;;0"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = (
    ("last_success_timestamp_seconds", "Unix time the newest backup finished", "finished"),
    ("last_size_bytes", "Bytes of the newest backup set", "size"),
    ("last_duration_seconds", "Seconds the newest backup took", "duration"),
    ("last_verified", "1 if the newest backup verified at the last check", "verified"),
    ("last_run_failed", "1 if the last backup run after the newest backup failed", "last_failed"),
    ("check_status", "Result of the last check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", "status"),
)


def textfile_text(result: Result, max_age: int, now: float | None = None) -> str:
    target = result.target
    labels = (
        f'environment="{_label(target.environment)}",database="{_label(target.key)}",'
        f'location="{_label(result.where)}"'
    )
    lines = []
    values: dict[str, float] = {
        "finished": result.finished,
        "size": result.size,
        "duration": result.duration,
        "verified": int(result.verified),
        "last_failed": int(result.last_failed),
        "status": result.status,
    }
    rows = [
        *METRICS,
        ("max_age_seconds", "The check's --max-age", "max_age"),
        ("check_timestamp_seconds", "Unix time of the last check", "now"),
    ]
    values["max_age"] = max_age
    values["now"] = time.time() if now is None else now
    if result.status == UNKNOWN and result.age is None:  # nothing was seen: claim nothing
        rows = [row for row in rows if row[2] in ("status", "max_age", "now")]
    for name, help_text, key in rows:
        metric = f"flowlet_backup_{name}"
        lines += [
            f"# HELP {metric} {help_text}.",
            f"# TYPE {metric} gauge",
            f"{metric}{{{labels}}} {_number(values[key])}",
        ]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_textfile(directory: Path, result: Result, max_age: int, *, source: str) -> Path:
    """``DIR/flowlet_backup_<env>_<target>_<location>.prom``, written atomically (a temp file in
    the same directory, fsynced, renamed; node-exporter ignores names not ending in .prom)."""
    from tasks.backup.files import write_atomic

    target = result.target
    stem = re.sub(r"[^A-Za-z0-9_]", "_", f"{target.environment}_{target.key}_{result.where}")
    path = directory / f"flowlet_backup_{stem}.prom"
    write_atomic(path, textfile_text(result, max_age), 0o644, source=source)
    return path
