"""``backup.verify``: every byte of every file of a backup set read, locally or on a destination.

One pass per file: the bytes are hashed (against the ``.sha256`` sidecar) while they are
decrypted, decompressed and read in full -- a plain dump must end with its tool's completion
trailer, a custom archive is read by ``pg_restore -f /dev/null`` (every data block), a
directory archive is extracted, checked against its ``flowlet.sha256sums`` and read as a restore
reads it, against pg_restore's table of contents (:mod:`.dirtoc`).
``--restore-test`` also restores the dump into a scratch database and compares row counts and
object counts (tables, views, routines, triggers, events) with the live source.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from invoke import Context

from tasks.backup import manifest
from tasks.backup.catalog import BackupSet, Source, catalog_of, check_env, open_source, select
from tasks.backup.files import WorkDir, check_dir_sums
from tasks.backup.names import dump_kind, parse_name
from tasks.backup.plan import Stage
from tasks.backup.readback import (
    MYSQL_TRAILER,
    PG_GLOBALS_TRAILER,
    PG_TRAILER,
    read_all_stage,
    read_stages,
    untar_stage,
)
from tasks.backup.stream import StageError, run_stages
from tasks.core.errors import ConfigError, OpsError
from tasks.core.settings import Settings, load

CHUNK = 1 << 20
CAT = Stage("cat", ("cat",))


def identity_for(settings: Settings, name: str, identity: Any) -> str | None:
    """The age identity file for an encrypted backup (``--identity`` or backup.identity)."""
    if not name.endswith(".age"):
        return None
    value = settings.identity if identity is None else identity
    if not value:
        raise ConfigError(
            f"--identity: {name} is encrypted; give the age identity file (or backup.identity)"
        )
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"--identity: age identity file {str(value)!r} not found (needed to decrypt {name})"
        )
    return str(path)


def feeder(handle: IO[bytes], digest: Any) -> Any:
    """A ``feed`` for :func:`run_stages`: copies ``handle`` into the pipeline, hashing it all
    (the rest is still read and hashed if the pipeline stops reading early)."""

    def feed(pipe: IO[bytes]) -> None:
        writing = True
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if writing:
                try:
                    pipe.write(chunk)
                except BrokenPipeError:
                    writing = False

    return feed


def check_file(source: Source, name: str, identity: str | None, workroot: Path) -> str:
    """Read every byte of ``name`` at ``source``; return what was checked, or raise."""
    expected = source.expected_sha256(name)
    if expected is None:
        raise OpsError(f"{name}: checksum missing (no sidecar {name}.sha256 at {source.where})")
    stages = read_stages(name, identity)
    kind = dump_kind(name)
    digest = hashlib.sha256()
    tail = [b""]

    def keep_tail(chunk: bytes) -> None:
        tail[0] = (tail[0] + chunk)[-4096:]

    workdir = None
    error: StageError | None = None
    try:
        with source.open(name) as handle:
            feed = feeder(handle, digest)
            try:
                if kind in ("plain", "globals"):
                    run_stages(stages or [CAT], sink=keep_tail, feed=feed)
                elif kind == "custom":
                    run_stages([*stages, read_all_stage(kind)], feed=feed)
                else:
                    workdir = WorkDir(workroot / f"{name}.verify-{secrets.token_hex(3)}.partial.d")
                    run_stages([*stages, untar_stage(workdir.path)], feed=feed)
            except StageError as exc:
                error = exc
        if digest.hexdigest() != expected:
            raise OpsError(f"{name}: checksum MISMATCH at {source.where} (sidecar {name}.sha256)")
        if error is not None:
            detail = f": {error.last_line}" if error.last_line else ""
            raise OpsError(f"{name}: {error}{detail}", code=error.exit_code)
        if kind in ("plain", "globals"):
            trailers = (PG_GLOBALS_TRAILER,) if kind == "globals" else (PG_TRAILER, MYSQL_TRAILER)
            if not any(t in tail[0] for t in trailers):
                raise OpsError(f"{name}: the dump's completion trailer is missing (truncated)")
            return "sha256 ok, stream intact, completion trailer present"
        if workdir is not None:
            damaged = check_dir_sums(workdir.path)
            if damaged:
                raise OpsError(
                    f"{name}: {', '.join(damaged[:3])} inside the archive do not match "
                    "their sha256 (flowlet.sha256sums)"
                )
            check_against_toc(name, workdir.path)
            return (
                "sha256 ok, every file of the directory archive read by pg_restore and "
                "checked against its table of contents"
            )
        return "sha256 ok, every block read by pg_restore"
    finally:
        if workdir is not None:
            workdir.remove()


def check_against_toc(name: str, workdir: Path) -> None:
    """Every data file of an extracted directory archive read as a restore reads it, each
    ``TABLE DATA`` entry of ``pg_restore -l`` giving one complete COPY block (:mod:`.dirtoc`)."""
    from tasks.backup.dirtoc import CopyChecker, problems, sql_stage, table_data_entries, toc_stage
    from tasks.backup.stream import capture_stages

    checker = CopyChecker()
    try:
        toc = capture_stages([toc_stage(workdir)]).decode("utf-8", "replace")
        run_stages([sql_stage(workdir)], sink=checker)
    except StageError as exc:
        detail = f": {exc.last_line}" if exc.last_line else ""
        raise OpsError(f"{name}: {exc}{detail}", code=exc.exit_code) from None
    checker.finish()
    bad = problems(checker, table_data_entries(toc))
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise OpsError(
            f"{name}: {'; '.join(bad[:3])}{more}: the data inside the archive does not match "
            "its table of contents (pg_restore -l)"
        )


def pick(
    c: Context,
    settings: Settings,
    source: Source,
    *,
    file: str | None,
    latest: bool,
    env: str | None,
    database: str | None,
) -> BackupSet:
    """The backup set ``--file`` names, or the newest (``--latest``)."""
    environments = check_env(c, env)
    if file is None and not latest:
        raise ConfigError("verify: give --file FILE or --latest")
    if file is not None:
        name = Path(file).name if source.is_local else file
        if source.is_local:
            path = Path(file).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"--file: {file!r} is not valid; valid: an existing backup file")
            source.out = path.parent
        if parse_name(name) is None:
            raise ConfigError(f"--file: {name!r} is not a backup file name (ENV-TARGET-STAMP.ext)")
        catalog = catalog_of(source)
        for backup_set in catalog.sets:
            for item in backup_set.files:
                if item.name == name:
                    return backup_set
        raise ConfigError(f"--file: {name!r} is not valid; valid: a backup at {source.where}")
    catalog = select(catalog_of(source), environments, env, database)
    if not catalog.sets:
        raise OpsError(f"--latest: no backups at {source.label('')}")
    return catalog.sets[0]


def verify(
    c: Context,
    *,
    file: str | None,
    latest: bool,
    restore_test: bool,
    env: str | None,
    database: str | None,
    identity: Any,
    output_dir: Any,
    source: str | None,
    trust_destination: bool = False,
) -> None:
    settings = load(c, "backup")
    opened = open_source(c, settings, source, output_dir, trust_destination=trust_destination)
    try:
        backup_set = pick(c, settings, opened, file=file, latest=latest, env=env, database=database)
        results = verify_set(
            c, settings, opened, backup_set, identity=identity, restore_test=restore_test, env=env
        )
        for line in results:
            print(line)
    finally:
        opened.close()


def verify_set(
    c: Context,
    settings: Settings,
    source: Source,
    backup_set: BackupSet,
    *,
    identity: Any,
    restore_test: bool = False,
    env: str | None = None,
    record: bool = True,
) -> list[str]:
    """Verify every file of the set (and restore-test the dump); record each result."""
    lines = []
    for item in backup_set.files:
        key = identity_for(settings, item.name, identity)
        try:
            detail = check_file(source, item.name, key, source.out)
        except OpsError:
            if record:
                _record(settings, source, item.name, ok=False)
            raise
        lines.append(f"{item.name}: {detail}")
        if record:
            _record(settings, source, item.name, ok=True)
    if restore_test:
        from tasks.backup.restore import restore_test as run_restore_test

        main = backup_set.main
        lines.append(
            run_restore_test(c, source, main.name, identity_for(settings, main.name, identity), env)
        )
    return lines


def _record(settings: Settings, source: Source, name: str, *, ok: bool) -> None:
    manifest.append(
        source.out / settings.manifest,
        {
            "event": "verify",
            "file": name,
            "ok": ok,
            "where": source.where,
            "at": datetime.now(timezone.utc).isoformat(),
        },
    )
