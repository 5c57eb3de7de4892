"""Pure planning: file names, and the argv of every stage of a backup, verify or restore.

Nothing here runs anything: :mod:`tasks.backup.run` executes what these functions return, and
``--dry`` prints it. Passwords never appear here: the tools get them through ``PGPASSFILE`` /
``--defaults-extra-file`` naming an in-memory file (:func:`tasks.backup.targets.credentials`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tasks.backup.settings import COMPRESSORS, FORMATS
from tasks.backup.targets import DatabaseTarget
from tasks.core.errors import ConfigError

DEFAULT_LEVELS = {"gzip": 6, "zstd": 3, "none": 0}
LEVEL_RANGES = {"gzip": (1, 9), "zstd": (1, 19), "none": (0, 0)}
COMPRESS_EXT = {"gzip": ".gz", "zstd": ".zst", "none": ""}
FORMAT_EXT = {"plain": ".sql", "custom": ".dump", "directory": ".dir.tar"}
GLOBALS_EXT = ".globals.sql"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(
    r"^(?P<prefix>[a-z][a-z0-9-]*-.+)-(?P<stamp>\d{8}T\d{6}Z)"
    r"(?P<ext>\.(globals\.sql|sql|dump|dir\.tar)(\.gz|\.zst)?(\.age)?)$"
)
PG_TRAILER = b"-- PostgreSQL database dump complete"
PG_GLOBALS_TRAILER = b"-- PostgreSQL database cluster dump complete"
MYSQL_TRAILER = b"-- Dump completed"
# Drops "ALTER ... OWNER TO ...;" lines of a plain dump outside COPY data (restore --no-owner).
NO_OWNER_AWK = (
    r"/^COPY .* FROM stdin;$/ {copy = 1} "
    r"copy && /^\\\.$/ {copy = 0; print; next} "
    r"!copy && /^ALTER .* OWNER TO .*;$/ {next} {print}"
)


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


def pg_connection_args(target: DatabaseTarget, dbname: str | None = None) -> list[str]:
    return ["--host", target.host, "--port", str(target.port), "--username", target.user,
            "--no-password", "--dbname", target.name if dbname is None else dbname]  # fmt: skip


def mysql_connection_args(target: DatabaseTarget, extra: Sequence[str] = ()) -> list[str]:
    # --defaults-extra-file must come first on the command line.
    return [*extra, "--protocol=TCP", "--host", target.host, "--port", str(target.port),
            "--user", target.user]  # fmt: skip


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
    client = [mysql_client_binary(), *mysql_connection_args(target, extra), "-N", "-B",
              "-e", "select version()"]  # fmt: skip
    dumper = mysql_dump_binary()
    return Stage(dumper, (dumper, "--version")), Stage(client[0], tuple(client), True)


def compress_stage(compress: str, level: int) -> Stage | None:
    if compress == "gzip":
        return Stage("gzip", ("gzip", "-c", f"-{level}"))
    if compress == "zstd":
        return Stage("zstd", ("zstd", "-q", "-c", f"-{level}"))
    return None


def encrypt_stage(recipients: tuple[str, ...]) -> Stage:
    if not recipients:
        raise ConfigError(
            "backup.recipients: --encrypt needs at least one age recipient (public key)"
        )
    argv = ["age"]
    for recipient in recipients:
        argv += ["-r", recipient]
    return Stage("age", tuple(argv))


def stamp(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime(STAMP_FORMAT)


def backup_filename(target: DatabaseTarget, options: BackupOptions) -> str:
    fmt = options.fmt if target.engine == "postgres" else "plain"
    ext = FORMAT_EXT[fmt]
    if fmt != "directory":
        ext += COMPRESS_EXT[options.compress]
    if options.recipients is not None:
        ext += ".age"
    return f"{target.environment}-{target.key}-{stamp(options.now)}{ext}"


def globals_filename(target: DatabaseTarget, options: BackupOptions) -> str:
    ext = GLOBALS_EXT + COMPRESS_EXT[options.compress]
    ext += ".age" if options.recipients is not None else ""
    return f"{target.environment}-{target.key}-{stamp(options.now)}{ext}"


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
        raise ConfigError("--compress: zstd is not valid with --format directory; valid: gzip, none")
    return resolve_level(options.compress, options.level)


def plan_backup(
    target: DatabaseTarget,
    options: BackupOptions,
    output_dir: Path,
    *,
    mysql_extra: Sequence[str] = (),
) -> BackupPlan:
    """The stages of a target's backup pipeline into ``output_dir``.

    Directory format (``-Fd``) dumps into a work directory beside the output (pg_dump
    compresses each file itself, gzip or none), which is then streamed as one tar file.
    """
    level = check_options(target, options)
    final = output_dir / backup_filename(target, options)
    recorded: dict[str, object] = {"format": options.fmt, "compress": options.compress,
                                   "level": level}  # fmt: skip
    tail = [] if options.recipients is None else [encrypt_stage(options.recipients)]
    if target.engine == "mysql":
        recorded["format"] = "plain"
        dumper = mysql_dump_binary()
        dump = Stage(
            dumper,
            (dumper, *mysql_connection_args(target, mysql_extra), "--single-transaction",
             "--quick", "--routines", "--triggers", "--events", target.name),
            secret=True,
        )  # fmt: skip
        stages = [dump, compress_stage(options.compress, level), *tail]
        return BackupPlan(target, final, tuple(s for s in stages if s), options=recorded)
    if options.fmt == "directory":
        workdir = final.with_name(final.name + ".partial.d")
        prepare = Stage(
            "pg_dump",
            ("pg_dump", *pg_connection_args(target), "--format=directory",
             f"--jobs={options.jobs}", f"--compress={level}", "--file", str(workdir)),
            secret=True,
            forks=options.jobs > 1,
        )  # fmt: skip
        tar = Stage("tar", ("tar", "-c", "-f", "-", "-C", str(workdir), "."))
        recorded["jobs"] = options.jobs
        return BackupPlan(target, final, (tar, *tail), prepare, workdir, recorded)
    dump_argv = ["pg_dump", *pg_connection_args(target), f"--format={options.fmt}"]
    if options.fmt == "custom":
        dump_argv.append("--compress=0")  # compressed once, by the compress stage
    stages = [Stage("pg_dump", tuple(dump_argv), secret=True),
              compress_stage(options.compress, level), *tail]  # fmt: skip
    return BackupPlan(target, final, tuple(s for s in stages if s), options=recorded)


def plan_globals(
    target: DatabaseTarget, options: BackupOptions, output_dir: Path, *, role_passwords: bool
) -> BackupPlan:
    """The companion file of a postgres backup set: ``pg_dumpall --globals-only`` (roles,
    tablespaces), with ``--no-role-passwords`` when the user may not read them."""
    compress = options.compress
    level = resolve_level(compress, options.level)
    argv = ["pg_dumpall", "--host", target.host, "--port", str(target.port), "--username",
            target.user, "--no-password", "--database", target.name, "--globals-only"]  # fmt: skip
    if not role_passwords:
        argv.append("--no-role-passwords")
    tail = [] if options.recipients is None else [encrypt_stage(options.recipients)]
    stages = [Stage("pg_dumpall", tuple(argv), secret=True), compress_stage(compress, level),
              *tail]  # fmt: skip
    name = globals_filename(target, options)
    return BackupPlan(target, output_dir / name, tuple(s for s in stages if s),
                      options={"role_passwords": role_passwords})  # fmt: skip


# -- names ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupName:
    """A parsed backup file name: ``PREFIX-STAMP.EXT`` where PREFIX is ``ENV-TARGET``."""

    name: str
    prefix: str
    stamp: str
    ext: str

    @property
    def when(self) -> datetime:
        return datetime.strptime(self.stamp, STAMP_FORMAT).replace(tzinfo=timezone.utc)

    @property
    def is_globals(self) -> bool:
        return self.ext.startswith(GLOBALS_EXT)

    @property
    def set_key(self) -> str:
        """What the files of one backup set share (main file and globals companion)."""
        return f"{self.prefix}-{self.stamp}"

    def split(self, environments: Sequence[str] = ()) -> tuple[str, str]:
        """(environment, target): the longest configured environment name that prefixes it,
        else up to the first ``-``."""
        for env in sorted(environments, key=len, reverse=True):
            if self.prefix.startswith(env + "-") and len(self.prefix) > len(env) + 1:
                return env, self.prefix[len(env) + 1 :]
        env, _, key = self.prefix.partition("-")
        return env, key


def parse_name(name: str) -> BackupName | None:
    """A backup (or globals companion) file name, or None for anything else."""
    match = NAME_RE.match(name)
    if match is None:
        return None
    return BackupName(name, match["prefix"], match["stamp"], match["ext"])


def read_stages(name: str, identity: str | None) -> list[Stage]:
    """Stages that turn a backup file back into the dump stream (decrypt, decompress)."""
    stages: list[Stage] = []
    if name.endswith(".age"):
        if not identity:
            raise ConfigError(f"--identity: {name} is encrypted; give the age identity file")
        stages.append(Stage("age", ("age", "-d", "-i", identity)))
        name = name[: -len(".age")]
    if name.endswith(".gz"):
        stages.append(Stage("gzip", ("gzip", "-d", "-c")))
    elif name.endswith(".zst"):
        stages.append(Stage("zstd", ("zstd", "-q", "-d", "-c")))
    return stages


def dump_kind(name: str) -> str:
    """plain, custom, directory or globals, from the file name."""
    name = name.removesuffix(".age")
    if GLOBALS_EXT in name:
        return "globals"
    if ".dir.tar" in name:
        return "directory"
    if ".dump" in name:
        return "custom"
    return "plain"


def untar_stage(workdir: Path) -> Stage:
    return Stage("tar", ("tar", "-x", "-f", "-", "-C", str(workdir)))


def read_all_stage(kind: str, workdir: Path | None = None) -> Stage:
    """``pg_restore -f /dev/null``: reads every byte of a custom archive (stdin) or of an
    extracted directory archive (every data file decompressed), writing nothing."""
    argv = ["pg_restore", "-f", "/dev/null"]
    if kind == "directory" and workdir is not None:
        argv += ["--format=directory", str(workdir)]
    return Stage("pg_restore", tuple(argv))


def restore_stage(
    target: DatabaseTarget,
    kind: str,
    dbname: str,
    *,
    jobs: int = 1,
    no_owner: bool = False,
    workdir: Path | None = None,
    client_extra: Sequence[str] = (),
) -> list[Stage]:
    """The stages that load a dump stream (or an extracted directory) into ``dbname``."""
    if target.engine == "mysql":
        client = [mysql_client_binary(), *mysql_connection_args(target, client_extra), dbname]
        return [Stage(client[0], tuple(client), secret=True)]
    owner = ["--no-owner"] if no_owner else []
    if kind == "plain":
        psql = ("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *pg_connection_args(target, dbname),
                "--single-transaction", "-o", "/dev/null")  # fmt: skip
        stages = [Stage("awk", ("awk", NO_OWNER_AWK))] if no_owner else []
        return [*stages, Stage("psql", psql, secret=True)]
    if kind == "custom":
        argv = ("pg_restore", "--exit-on-error", "--single-transaction", *owner,
                *pg_connection_args(target, dbname))  # fmt: skip
        return [Stage("pg_restore", argv, secret=True)]
    argv = ("pg_restore", "--exit-on-error", f"--jobs={max(jobs, 1)}", *owner,
            *pg_connection_args(target, dbname), "--format=directory", str(workdir))  # fmt: skip
    return [Stage("pg_restore", argv, secret=True, forks=jobs > 1)]


def globals_restore_stage(target: DatabaseTarget) -> Stage:
    argv = ("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *pg_connection_args(target, "postgres"),
            "-o", "/dev/null")  # fmt: skip
    return Stage("psql", argv, secret=True)


_CREATE_ROLE = re.compile(r"^CREATE ROLE (.+);$")
_ALTER_ROLE_WITH = re.compile(r"^ALTER ROLE (.+?) WITH .*;$")


def globals_for_existing(script: str, existing: set[str]) -> str:
    """A globals script without CREATE ROLE / ALTER ROLE ... WITH for roles that exist
    already (``existing``: names as ``quote_ident`` spells them): a fresh cluster gets the
    missing roles, existing ones (the superuser, the restoring user) are left alone."""
    kept = []
    for line in script.splitlines(keepends=True):
        match = _CREATE_ROLE.match(line.rstrip("\n")) or _ALTER_ROLE_WITH.match(line.rstrip("\n"))
        if match is not None and match.group(1) in existing:
            continue
        kept.append(line)
    return "".join(kept)
