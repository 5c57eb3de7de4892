"""``backup.restore`` (and the restore test of ``backup.verify``).

A backup is restored only once its checksum matches its sidecar: a local file is hashed first;
one on a destination (``--from``) is fetched into ``NAME.partial`` beside the local backups,
hashed on the way against the sha256 the local manifest recorded at upload (not the sidecar
there, which whoever writes the object writes too; ``--trust-destination`` takes it), and
removed afterwards; the restore test of ``verify --from`` restores that fetched copy too.
``--globals`` loads the set's roles first (roles that exist already are left alone). A
database the restore created is dropped again when the restore fails (or is interrupted):
nothing half-restored is left behind.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from invoke import Context

from tasks.backup.catalog import Source, catalog_of, check_env, open_source
from tasks.backup.database import Session, check_dbname
from tasks.backup.files import Partial, WorkDir, read_sidecar, sha256_file
from tasks.backup.names import GLOBALS_EXT, BackupName, dump_kind, parse_name
from tasks.backup.plan import Stage
from tasks.backup.readback import (
    globals_for_existing,
    globals_restore_stage,
    read_stages,
    restore_stage,
    untar_stage,
)
from tasks.backup.sqlguard import PsqlGuard, guard_script, psql_restricts
from tasks.backup.stream import CHUNK, Pipeline, StageError, capture_stages, run_stages
from tasks.backup.targets import Credentials, DatabaseTarget, credentials, resolve_target
from tasks.backup.verify import CAT, identity_for
from tasks.core import runner
from tasks.core.environments import Environment, resolve_environment
from tasks.core.errors import ConfigError, OpsError
from tasks.core.prompt import confirm
from tasks.core.runner import is_dry
from tasks.core.settings import load

Opener = Callable[[], AbstractContextManager[IO[bytes]]]


def target_for(
    c: Context, parsed: BackupName, env: str | None
) -> tuple[Environment, DatabaseTarget]:
    environments = check_env(c, env)
    file_env, key = parsed.split(environments)
    environment = resolve_environment(c, file_env if env is None else env)
    return environment, resolve_target(environment, key, None)


def restore_into(
    session: Session,
    opener: Opener,
    name: str,
    dbname: str,
    identity: str | None,
    *,
    jobs: int,
    no_owner: bool,
    workroot: Path,
) -> None:
    """Stream backup ``name`` into the (existing, empty) database ``dbname``; stop at the
    first error; fail if the database is still empty afterwards."""
    target = session.target
    stages = read_stages(name, identity)
    kind = dump_kind(name)
    try:
        with opener() as handle:
            if kind != "directory" or target.engine == "mysql":
                restore = restore_stage(
                    target, kind, dbname, no_owner=no_owner, client_extra=session.creds.argv
                )
                if target.engine == "postgres" and kind == "plain":
                    # psql reads the dump through the guard (no meta-commands); see sqlguard.
                    *filters, psql = restore
                    guarded_load([*stages, *filters], psql, session.creds, handle, name)
                else:
                    run_stages([*stages, *restore], session.creds, stdin=handle)
            else:
                work = WorkDir(workroot / f"{name}.restore-{secrets.token_hex(3)}.partial.d")
                try:
                    run_stages([*stages, untar_stage(work.path)], stdin=handle)
                    restore = restore_stage(
                        target, kind, dbname, jobs=jobs, no_owner=no_owner, workdir=work.path
                    )
                    run_stages(restore, session.creds)
                finally:
                    work.remove()
    except StageError as error:
        detail = f": {error.last_line}" if error.last_line else ""
        raise OpsError(
            f"restore into {dbname} failed: {error}{detail}", code=error.exit_code
        ) from None
    if session.relations(dbname) == 0:
        raise OpsError(f"restore into {dbname} restored nothing: the database is still empty")


class _PsqlStopped(Exception):
    """psql closed its input (it failed: its exit status says why)."""


def guarded_load(
    read: list[Stage], psql: Stage, creds: Credentials, handle: IO[bytes], name: str
) -> None:
    """``read`` (decrypt, decompress) -> :class:`PsqlGuard` -> ``psql``. At the first refused
    line psql is killed before it sees the end of its input: its single transaction rolls
    back."""
    version = runner.capture(["psql", "--version"]).stdout
    guard = PsqlGuard(name, restrict=psql_restricts(version))
    loader = Pipeline([psql], creds, stdin=subprocess.PIPE, output=False)
    pipe = loader.first_stdin()
    assert pipe is not None  # nosec B101 - PIPE was asked for

    def send(data: bytes) -> None:
        try:
            pipe.write(data)
        except BrokenPipeError:
            raise _PsqlStopped() from None

    try:
        try:
            if read:
                run_stages(read, sink=lambda chunk: send(guard.feed(chunk)), stdin=handle)
            else:
                while chunk := handle.read(CHUNK):
                    send(guard.feed(chunk))
            send(guard.finish())
            try:
                pipe.close()
            except BrokenPipeError:
                pass
        except _PsqlStopped:
            pass
    except BaseException:
        loader.kill()
        raise
    loader.wait()


def restore_globals(session: Session, opener: Opener, name: str, identity: str | None) -> int:
    """Load a globals companion: the roles that do not exist yet (returns how many statements
    were kept). Needs a role that may create roles and set their attributes (a superuser)."""
    with opener() as handle:
        script = capture_stages(read_stages(name, identity) or [CAT], stdin=handle)
    text = globals_for_existing(script.decode("utf-8"), session.roles())
    checked = guard_script(name, text.encode())
    try:
        capture_stages([globals_restore_stage(session.target)], session.creds, input=checked)
    except StageError as error:
        raise OpsError(
            f"restoring the globals {name} failed: {error.last_line or error}", code=error.exit_code
        ) from None
    return text.count(";")


def local_opener(path: Path) -> Opener:
    @contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with open(path, "rb") as handle:
            yield handle

    return opener


def stage_locally(source: Source, name: str, staging: Path) -> Partial:
    """Fetch ``name`` from a destination into ``staging/NAME.partial``, hashing it; refuse it
    unless the hash matches the destination's sidecar."""
    expected = source.expected_sha256(name)
    if expected is None:
        raise OpsError(f"{name}: checksum missing at {source.where}; refusing to restore it")
    partial = Partial(staging / f"{name}.from-{source.where}")  # beside a local copy, if any
    digest = hashlib.sha256()
    try:
        with source.open(name) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                partial.write(chunk)
    except BaseException:
        partial.discard()
        raise
    if digest.hexdigest() != expected:
        partial.discard()
        raise OpsError(f"{name}: checksum MISMATCH at {source.where}; refusing to restore it")
    return partial


def restore(
    c: Context,
    *,
    file: str,
    database: str | None,
    force: bool,
    yes: bool,
    env: str | None,
    identity: Any,
    jobs: int | None,
    source: str | None,
    no_owner: bool,
    with_globals: bool,
    output_dir: Any,
    trust_destination: bool = False,
) -> None:
    settings = load(c, "backup")
    if database is None:
        raise ConfigError("--database: name the database to restore into")
    dbname = check_dbname(database, flag="--database")
    opened = open_source(c, settings, source, output_dir, trust_destination=trust_destination)
    staged: list[Partial] = []
    try:
        name = Path(file).name
        if opened.is_local:
            path = Path(file).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"FILE: {file!r} is not valid; valid: an existing backup file")
            opened.out = path.parent
        parsed = parse_name(name)
        if parsed is None or parsed.is_globals:
            raise ConfigError(f"FILE: {name!r} is not a backup file name (ENV-TARGET-STAMP.ext)")
        environment, target = target_for(c, parsed, env)
        if target.engine != "postgres" and (no_owner or with_globals):
            flag = "--no-owner" if no_owner else "--globals"
            raise ConfigError(f"{flag}: only for postgres backups ({name} is {target.engine})")
        companion = companion_of(opened, parsed) if with_globals else None
        keys = {n: identity_for(settings, n, identity) for n in (name, companion) if n}
        if opened.is_local:
            for each in (name, companion):
                if each and read_sidecar(opened.out / each) != sha256_file(opened.out / each):
                    raise OpsError(
                        f"{each}: checksum does not match its sidecar; refusing to "
                        "restore an unverified file"
                    )
        if environment.confirm:
            confirm(f"Restore {name} into {dbname} on {environment.name}?", yes=yes, dry=is_dry(c))
        if is_dry(c):
            extra = f" (roles from {companion} first)" if companion else ""
            print(f"would restore {name} into {dbname} on {target.host}:{target.port}{extra}")
            return
        staging = output_dir or settings.output_dir
        openers: dict[str, Opener] = {}
        for each in (name, companion):
            if not each:
                continue
            if opened.is_local:
                openers[each] = local_opener(opened.out / each)
            else:
                from tasks.backup.files import ensure_private_dir

                ensure_private_dir(
                    staging, source="--output-dir" if output_dir else "backup.output_dir"
                )
                staged.append(stage_locally(opened, each, staging))
                openers[each] = local_opener(staged[-1].path)
        started = time.monotonic()
        with credentials(target) as creds:
            session = Session(target, creds)
            if companion:
                restore_globals(session, openers[companion], companion, keys[companion])
            created = prepare_database(session, dbname, force)
            try:
                restore_into(
                    session,
                    openers[name],
                    name,
                    dbname,
                    keys[name],
                    jobs=jobs or settings.jobs,
                    no_owner=no_owner,
                    workroot=staging if not opened.is_local else opened.out,
                )
            except BaseException:
                if created:
                    session.drop(dbname)
                raise
            tables = len(session.row_counts(dbname))
        print(
            f"restored {name} into {dbname}: {tables} tables in "
            f"{time.monotonic() - started:.1f}s"
        )
    finally:
        for partial in staged:
            partial.discard()
        opened.close()


def companion_of(source: Source, parsed: BackupName) -> str:
    for backup_set in catalog_of(source).sets:
        if backup_set.parsed.set_key == parsed.set_key:
            for item in backup_set.companions:
                return item.name
    raise ConfigError(
        f"--globals: {parsed.name} has no globals companion ({parsed.set_key}"
        f"{GLOBALS_EXT}...) at {source.where}; it was made without --globals"
    )


def prepare_database(session: Session, dbname: str, force: bool) -> bool:
    """Make ``dbname`` an empty database; True if this restore created it."""
    if session.exists(dbname):
        count = session.relations(dbname)
        if count and not force:
            raise OpsError(
                f"--database: {dbname} is not empty ({count} relations); --force " "replaces it"
            )
        if not count:
            return False
        session.drop(dbname)
    session.create(dbname)
    return True


def restore_test(
    c: Context, source: Source, name: str, identity: str | None, env: str | None
) -> str:
    """Restore ``name`` into a scratch database beside its source, compare, drop it."""
    parsed = parse_name(name)
    assert parsed is not None  # nosec B101 - verified names only
    _environment, target = target_for(c, parsed, env)
    scratch = f"{target.name}_verify_{secrets.token_hex(4)}"[:63]
    staged: Partial | None = None
    if source.is_local:
        opener = local_opener(source.out / name)
    else:  # the bytes restored are the bytes checked: fetched once, hashed, then restored
        from tasks.backup.files import ensure_private_dir

        ensure_private_dir(source.out, source="backup.output_dir")
        staged = stage_locally(source, name, source.out)
        opener = local_opener(staged.path)
    try:
        with credentials(target) as creds:
            session = Session(target, creds)
            session.create(scratch)
            try:
                restore_into(
                    session,
                    opener,
                    name,
                    scratch,
                    identity,
                    jobs=2,
                    no_owner=False,
                    workroot=source.out,
                )
                restored = compare_restored(session, scratch, name)
            finally:
                session.drop(scratch)
    finally:
        if staged is not None:
            staged.discard()
    return (
        f"{name}: restore test ok ({len(restored[0])} tables, row counts and "
        f"{sum(restored[1].values())} objects match)"
    )


def compare_restored(
    session: Session, scratch: str, name: str
) -> tuple[dict[str, int], dict[str, int]]:
    """Row counts and object counts of ``scratch`` (``name`` restored) against the live
    source database; raise naming what differs. Returns the restored counts."""
    target = session.target
    restored = (session.row_counts(scratch), session.objects(scratch))
    live = (session.row_counts(target.name), session.objects(target.name))
    for what, got, want in (
        ("row counts", restored[0], live[0]),
        ("objects", restored[1], live[1]),
    ):
        if got != want:
            diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            raise OpsError(f"{name}: restore test {what} differ from {target.name}: {diff}")
    return restored
