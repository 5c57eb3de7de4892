"""Bodies of the tasks over existing backups: backup.list, verify, restore, prune.

The @task definitions (flags, help) live in ``tasks/backup/__init__.py``; this
module is imported only when one of them runs.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from invoke import Context
from tasks.core.errors import OpsError

from tasks.backup import checks, manifest
from tasks.backup.pipeline import backup_time, parse_name
from tasks.backup.retention import plan_retention
from tasks.backup.stream import human, sha256_file
from tasks.backup.targets import BackupSettings, credentials, resolve_settings, resolve_target
from tasks.core.environments import resolve_environment
from tasks.core.settings import project_root
from tasks.core.prompt import confirm
from tasks.core.runner import is_dry


def _settings(c: Context) -> BackupSettings:
    return resolve_settings(c.config.get("backup") or {}, project_root(c))


def find_backups(out: Path, env: str | None, database: str | None) -> list[tuple[Path, datetime]]:
    """Backups in ``out`` (optionally one environment / target), newest first."""
    found = []
    for path in out.iterdir() if out.is_dir() else []:
        parts = parse_name(path.name)
        when = backup_time(path.name)
        if parts is None or when is None or not path.is_file():
            continue
        if env is not None and parts["env"] != env:
            continue
        if database is not None and parts["key"] != database:
            continue
        found.append((path, when))
    return sorted(found, key=lambda item: item[1], reverse=True)


def sidecar_state(path: Path) -> str:
    """ok, MISMATCH or missing: the file's sha256 against its ``.sha256`` sidecar."""
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.exists():
        return "missing"
    expected = sidecar.read_text(encoding="utf-8").split()[0]
    return "ok" if sha256_file(path) == expected else "MISMATCH"


def _identity(c: Context, path: Path, identity: str | None) -> str | None:
    if not path.name.endswith(".age"):
        return None
    value = _settings(c).identity if identity is None else identity
    if not value:
        raise OpsError(
            f"--identity: {path.name} is encrypted; give the age identity file (or backup.identity)"
        )
    resolved = Path(value).expanduser()
    if not resolved.is_file():
        raise OpsError(
            f"--identity: age identity file {value!r} not found (needed to decrypt {path.name})"
        )
    return str(resolved)


def _target_for(c: Context, path: Path, env: str | None):  # type: ignore[no-untyped-def]
    parts = parse_name(path.name)
    if parts is None:
        raise OpsError(f"FILE: {path.name!r} is not a backup file name (ENV-TARGET-STAMP.ext)")
    environment = resolve_environment(c, parts["env"] if env is None else env)
    return environment, resolve_target(environment, parts["key"], None)


def verify(
    c: Context,
    file: str | None = None,
    latest: bool = False,
    restore_test: bool = False,
    env: str | None = None,
    database: str | None = None,
    identity: str | None = None,
    output_dir: str | None = None,
) -> None:
    """Verify a backup: checksum, stream, archive readable; --restore-test restores it."""
    if file is None and not latest:
        raise OpsError("verify: give --file FILE or --latest")
    if file is not None:
        path = Path(file).resolve()
        if not path.is_file():
            raise OpsError(f"--file: {file!r} does not exist")
    else:
        out = _settings(c).output_dir if output_dir is None else Path(output_dir)
        backups = find_backups(out, env, database)
        if not backups:
            raise OpsError(f"--latest: no backups in {out}")
        path = backups[0][0]
    state = sidecar_state(path)
    if state != "ok":
        raise OpsError(f"{path.name}: checksum {state} (sidecar {path.name}.sha256)")
    key = _identity(c, path, identity)
    detail = checks.check_readable(path, key)
    print(f"{path.name}: sha256 ok, {detail}")
    if restore_test:
        _environment, target = _target_for(c, path, env)
        scratch = f"{target.name}_verify_{secrets.token_hex(4)}"[:63]
        with (
            tempfile.TemporaryDirectory(prefix="flowlet-backup-") as tmp,
            credentials(target, Path(tmp)) as (child_env, extra),
        ):
            session = checks.Session(target, child_env, extra)
            session.create(scratch)
            try:
                checks.restore_into(session, path, scratch, key, 2)
                restored, source = session.row_counts(scratch), session.row_counts(target.name)
            finally:
                session.drop(scratch)
        if restored != source:
            diff = sorted(
                t for t in set(restored) | set(source) if restored.get(t) != source.get(t)
            )
            raise OpsError(f"{path.name}: restore test row counts differ from {target.name}: {diff}")
        print(f"{path.name}: restore test ok ({len(restored)} tables, row counts match)")
    manifest.append(
        path.parent / _settings(c).manifest,
        {"event": "verify", "file": path.name, "ok": True, "restore_test": restore_test,
         "at": datetime.now(timezone.utc).isoformat()},
    )  # fmt: skip


def restore(
    c: Context,
    file: str,
    database: str | None = None,
    force: bool = False,
    yes: bool = False,
    env: str | None = None,
    identity: str | None = None,
    jobs: int = 2,
) -> None:
    """Restore a backup into a named database; stops at the first SQL error."""
    path = Path(file).resolve()
    if not path.is_file():
        raise OpsError(f"FILE: {file!r} does not exist")
    if database is None:
        raise OpsError("--database: name the database to restore into")
    dbname = checks.check_dbname(database, flag="--database")
    environment, target = _target_for(c, path, env)
    state = sidecar_state(path)
    if state != "ok":
        raise OpsError(f"{path.name}: checksum {state}; refusing to restore an unverified file")
    key = _identity(c, path, identity)
    if environment.confirm:
        confirm(f"Restore {path.name} into {dbname} on {environment.name}?", yes=yes)
    if is_dry(c):
        print(f"would restore {path.name} into {dbname} on {target.host}:{target.port}")
        return
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="flowlet-backup-") as tmp,
        credentials(target, Path(tmp)) as (child_env, extra),
    ):
        session = checks.Session(target, child_env, extra)
        if session.exists(dbname):
            count = session.relations(dbname)
            if count and not force:
                raise OpsError(
                    f"--database: {dbname} is not empty ({count} relations); " "--force replaces it"
                )
            if count:
                session.drop(dbname)
                session.create(dbname)
        else:
            session.create(dbname)
        checks.restore_into(session, path, dbname, key, jobs)
        tables = len(session.row_counts(dbname))
    print(
        f"restored {path.name} into {dbname}: {tables} tables in {time.monotonic() - started:.1f}s"
    )


def list_backups(
    c: Context,
    env: str | None = None,
    database: str | None = None,
    output_dir: str | None = None,
    check: bool = False,
) -> None:
    """List backups newest first: size, age, checksum state."""
    settings = _settings(c)
    out = settings.output_dir if output_dir is None else Path(output_dir)
    records = manifest.by_file(manifest.read(out / settings.manifest))
    now = datetime.now(timezone.utc)
    for path, when in find_backups(out, env, database):
        if check:
            state = sidecar_state(path)
        else:
            has_sidecar = path.with_name(path.name + ".sha256").exists()
            verified = records.get(path.name, {}).get("verified")
            state = (
                "verified" if verified and has_sidecar else "sidecar" if has_sidecar else "missing"
            )
        age = now - when
        print(f"{path.name}\t{human(path.stat().st_size)}\t{_age(age.total_seconds())}\t{state}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def prune(
    c: Context, env: str | None = None, database: str | None = None, output_dir: str | None = None
) -> None:
    """Delete backups outside the retention (backup.retention); never the newest verified."""
    settings = _settings(c)
    out = settings.output_dir if output_dir is None else Path(output_dir)
    groups: dict[tuple[str, str], list[tuple[Path, datetime]]] = {}
    for path, when in find_backups(out, env, database):
        parts = parse_name(path.name) or {}
        groups.setdefault((parts["env"], parts["key"]), []).append((path, when))
    rules = settings.retention
    for (group_env, key), backups in sorted(groups.items()):
        protect = next((p.name for p, _ in backups if sidecar_state(p) == "ok"), None)
        keep, delete = plan_retention(
            [(p.name, w) for p, w in backups],
            keep_last=rules["keep_last"],
            daily=rules["daily"],
            weekly=rules["weekly"],
            now=datetime.now(timezone.utc),
            protect=protect,
        )
        for name in delete:
            if is_dry(c):
                print(f"would delete {out / name}")
                continue
            (out / name).unlink(missing_ok=True)
            (out / f"{name}.sha256").unlink(missing_ok=True)
            print(f"deleted {out / name}")
        print(
            f"{group_env}/{key}: keeping {len(keep)}, "
            f"{'would delete' if is_dry(c) else 'deleted'} {len(delete)}"
        )
