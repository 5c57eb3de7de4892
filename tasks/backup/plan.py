"""Pure planning: file names, and the argv of every stage of a backup, verify or restore.

Nothing here runs anything: :mod:`tasks.backup.run` executes what these functions return, and
``--dry`` prints it. Passwords never appear here: the tools get them through ``PGPASSFILE`` /
``--defaults-extra-file`` naming an in-memory file (:func:`tasks.backup.targets.credentials`).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tasks.backup.names import backup_filename, globals_filename
from tasks.backup.settings import COMPRESSORS, FORMATS
from tasks.backup.targets import DatabaseTarget
from tasks.backup.tls import mysql_tls_args
from tasks.core.errors import ConfigError

DEFAULT_LEVELS = {"gzip": 6, "zstd": 3, "none": 0}
LEVEL_RANGES = {"gzip": (1, 9), "zstd": (1, 19), "none": (0, 0)}


@dataclass(frozen=True)
class Stage:
    """One process of a pipeline. ``secret``: it gets the database credentials; ``forks``: it
    starts workers of its own (it gets SIGTERM when we die, to stop them)."""

    name: str
    argv: tuple[str, ...]
    secret: bool = False
    forks: bool = False


@dataclass(frozen=True)
class BackupOptions:
    """The resolved flags of one backup."""

    fmt: str
    compress: str
    level: int
    jobs: int
    recipients: tuple[str, ...] | None  # None: not encrypted
    now: datetime
    with_globals: bool = False
    precise: bool = False  # milliseconds in the stamp: this second's is taken (names.taken)


@dataclass(frozen=True)
class BackupPlan:
    """One file of a backup set: an optional preparing stage (directory format), then the
    streamed stages whose output is ``final``."""

    target: DatabaseTarget
    final: Path
    stages: tuple[Stage, ...]
    prepare: Stage | None = None
    workdir: Path | None = None
    options: dict[str, object] = field(default_factory=dict)

    @property
    def partial(self) -> Path:
        return self.final.with_name(self.final.name + ".partial")

    def describe(self) -> list[str]:
        """Human-readable plan (what ``--dry`` prints); contains no secrets."""
        from tasks.core.runner import render

        lines = [render(self.prepare.argv)] if self.prepare is not None else []
        lines.append(" | ".join(render(s.argv) for s in self.stages) + f" > {self.partial}")
        lines.append(f"fsync + link {self.partial.name} -> {self.final}; sidecar .sha256")
        return lines


def resolve_level(compress: str, level: int) -> int:
    """``level`` 0 means the compressor's default; otherwise it must be in range."""
    if compress == "none":
        return 0
    if level == 0:
        return DEFAULT_LEVELS[compress]
    low, high = LEVEL_RANGES[compress]
    if not low <= level <= high:
        raise ConfigError(f"--level: {level} is not valid for {compress}; valid: {low}-{high}")
    return level


def mysql_dump_binary() -> str:
    return "mariadb-dump" if shutil.which("mariadb-dump") else "mysqldump"


def mysql_client_binary() -> str:
    return "mariadb" if shutil.which("mariadb") else "mysql"


def pg_server_args(target: DatabaseTarget) -> list[str]:
    port = str(target.port)
    return ["--host", target.host, "--port", port, "--username", target.user, "--no-password"]


def pg_dbname(name: str) -> str:
    """``name`` as a libpq ``dbname='...'`` keyword value (``'`` and ``\\`` escaped): the tools
    expand a ``--dbname`` holding ``=`` or a URI as a connection string, this never is one."""
    return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pg_connection_args(target: DatabaseTarget, dbname: str | None = None) -> list[str]:
    return [
        *pg_server_args(target),
        "--dbname",
        pg_dbname(target.name if dbname is None else dbname),
    ]


def mysql_connection_args(target: DatabaseTarget, extra: Sequence[str] = ()) -> list[str]:
    # --defaults-extra-file must come first on the command line.
    return [
        *extra,
        "--protocol=TCP",
        "--host",
        target.host,
        "--port",
        str(target.port),
        "--user",
        target.user,
        *mysql_tls_args(target),
    ]


PG_SERVER_QUERY = (
    "select current_setting('server_version'), "
    "(select rolsuper from pg_roles where rolname = current_user)"
)


def probe_argvs(target: DatabaseTarget, extra: Sequence[str] = ()) -> tuple[Stage, Stage]:
    """The probes recorded in the manifest: the dump tool's version, then the server's (for
    postgres ``VERSION|t`` when the user is a superuser: it may read role passwords)."""
    if target.engine == "postgres":
        server = ["psql", "-XAtq", *pg_connection_args(target), "-c", PG_SERVER_QUERY]
        return Stage("pg_dump", ("pg_dump", "--version")), Stage("psql", tuple(server), True)
    client = [
        mysql_client_binary(),
        *mysql_connection_args(target, extra),
        "-N",
        "-B",
        "-e",
        "select version()",
    ]
    dumper = mysql_dump_binary()
    return Stage(dumper, (dumper, "--version")), Stage(client[0], tuple(client), True)


def compress_stage(compress: str, level: int, parallel: bool = False) -> Stage | None:
    """The compressor. ``parallel`` (a local run with ``pigz`` installed): gzip through
    ``pigz`` (gzip-compatible output, every core) and zstd with worker threads (``-T0``, the
    same zstd format); on a ``--host`` the remote's plain gzip/zstd."""
    if compress == "gzip":
        return Stage("gzip", ("pigz" if parallel else "gzip", "-c", f"-{level}"))
    if compress == "zstd":
        return Stage("zstd", ("zstd", "-q", "-c", f"-{level}", *(["-T0"] if parallel else [])))
    return None


def local_parallel() -> bool:
    """Whether this machine compresses in parallel: ``pigz`` on PATH (Debian's ``pigz``)."""
    import shutil

    return shutil.which("pigz") is not None


def encrypt_stage(recipients: tuple[str, ...]) -> Stage:
    if not recipients:
        raise ConfigError(
            "backup.recipients: --encrypt needs at least one age recipient (public key)"
        )
    argv = ["age"]
    for recipient in recipients:
        argv += ["-r", recipient]
    return Stage("age", tuple(argv))


def check_options(target: DatabaseTarget, options: BackupOptions) -> int:
    """Validate the flag combination; return the resolved compression level."""
    if options.fmt not in FORMATS:
        raise ConfigError(f"--format: {options.fmt!r} is not valid; valid: {', '.join(FORMATS)}")
    if options.compress not in COMPRESSORS:
        valid = ", ".join(COMPRESSORS)
        raise ConfigError(f"--compress: {options.compress!r} is not valid; valid: {valid}")
    if target.engine == "mysql" and options.fmt != "plain":
        raise ConfigError(f"--format: {options.fmt!r} is not valid for mysql; valid: plain")
    if target.engine == "mysql" and options.with_globals:
        raise ConfigError("--globals: only for postgres targets (mysql dumps carry no roles)")
    if options.jobs > 1 and options.fmt != "directory":
        raise ConfigError(
            f"--jobs: {options.jobs} needs --format directory (only -Fd dumps in parallel)"
        )
    if options.fmt == "directory" and options.compress == "zstd":
        raise ConfigError(
            "--compress: zstd is not valid with --format directory; valid: gzip, none"
        )
    return resolve_level(options.compress, options.level)


def plan_backup(
    target: DatabaseTarget,
    options: BackupOptions,
    output_dir: Path,
    *,
    mysql_extra: Sequence[str] = (),
    parallel: bool = False,
) -> BackupPlan:
    """The stages of a target's backup pipeline into ``output_dir`` (``parallel``: see
    :func:`compress_stage`).

    Directory format (``-Fd``) dumps into a work directory beside the output (pg_dump
    compresses each file itself, gzip or none), which is then streamed as one tar file.
    """
    level = check_options(target, options)
    final = output_dir / backup_filename(target, options)
    recorded: dict[str, object] = {
        "format": options.fmt,
        "compress": options.compress,
        "level": level,
    }
    tail = [] if options.recipients is None else [encrypt_stage(options.recipients)]
    if target.engine == "mysql":
        recorded["format"] = "plain"
        dumper = mysql_dump_binary()
        dump = Stage(
            dumper,
            (
                dumper,
                *mysql_connection_args(target, mysql_extra),
                "--single-transaction",
                "--quick",
                "--routines",
                "--triggers",
                "--events",
                "--",
                target.name,
            ),
            secret=True,
        )
        stages = [dump, compress_stage(options.compress, level, parallel), *tail]
        return BackupPlan(target, final, tuple(s for s in stages if s), options=recorded)
    if options.fmt == "directory":
        workdir = final.with_name(final.name + ".partial.d")
        prepare = Stage(
            "pg_dump",
            (
                "pg_dump",
                *pg_connection_args(target),
                "--format=directory",
                f"--jobs={options.jobs}",
                f"--compress={level}",
                "--file",
                str(workdir),
            ),
            secret=True,
            forks=options.jobs > 1,
        )
        tar = Stage("tar", ("tar", "-c", "-f", "-", "-C", str(workdir), "--", "."))
        recorded["jobs"] = options.jobs
        return BackupPlan(target, final, (tar, *tail), prepare, workdir, recorded)
    dump_argv = ["pg_dump", *pg_connection_args(target), f"--format={options.fmt}"]
    if options.fmt == "custom":
        dump_argv.append("--compress=0")  # compressed once, by the compress stage
    stages = [
        Stage("pg_dump", tuple(dump_argv), secret=True),
        compress_stage(options.compress, level, parallel),
        *tail,
    ]
    return BackupPlan(target, final, tuple(s for s in stages if s), options=recorded)


def plan_globals(
    target: DatabaseTarget,
    options: BackupOptions,
    output_dir: Path,
    *,
    role_passwords: bool,
    parallel: bool = False,
) -> BackupPlan:
    """The companion file of a postgres backup set: ``pg_dumpall --globals-only`` (roles,
    tablespaces), with ``--no-role-passwords`` when the user may not read them."""
    compress = options.compress
    level = resolve_level(compress, options.level)
    argv = [
        "pg_dumpall",
        *pg_server_args(target),
        "--database",
        pg_dbname(target.name),
        "--globals-only",
    ]
    if not role_passwords:
        argv.append("--no-role-passwords")
    tail = [] if options.recipients is None else [encrypt_stage(options.recipients)]
    stages = [
        Stage("pg_dumpall", tuple(argv), secret=True),
        compress_stage(compress, level, parallel),
        *tail,
    ]
    name = globals_filename(target, options)
    return BackupPlan(
        target,
        output_dir / name,
        tuple(s for s in stages if s),
        options={"role_passwords": role_passwords},
    )
