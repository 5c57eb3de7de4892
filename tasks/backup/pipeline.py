"""Pure planning: the argv of every stage of a backup, verify or restore pipeline.

Nothing here runs anything; :mod:`tasks.backup.stream` executes what these functions return,
and ``--dry`` prints it. Passwords never appear here: they reach the tools through
``PGPASSFILE`` / ``--defaults-extra-file`` (see :func:`tasks.backup.targets.credentials`).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tasks.core.errors import OpsError

from tasks.backup.targets import COMPRESSORS, FORMATS, DatabaseTarget

DEFAULT_LEVELS = {"gzip": 6, "zstd": 3, "none": 0}
LEVEL_RANGES = {"gzip": (1, 9), "zstd": (1, 19), "none": (0, 0)}
COMPRESS_EXT = {"gzip": ".gz", "zstd": ".zst", "none": ""}
FORMAT_EXT = {"plain": ".sql", "custom": ".dump", "directory": ".dir.tar"}
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(
    r"^(?P<env>[a-z0-9_]+)-(?P<key>.+)-(?P<stamp>\d{8}T\d{6}Z)"
    r"(?P<ext>\.(sql|dump|dir\.tar)(\.gz|\.zst)?(\.age)?)$"
)
PG_TRAILER = b"-- PostgreSQL database dump complete"
MYSQL_TRAILER = b"-- Dump completed"


@dataclass(frozen=True)
class Stage:
    """One process of a pipeline: a display name and its argv."""

    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class BackupPlan:
    """What a backup does: an optional preparing step, then the streamed stages into ``final``."""

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

        lines = []
        if self.prepare is not None:
            lines.append(render(self.prepare.argv))
        lines.append(" | ".join(render(s.argv) for s in self.stages) + f" > {self.partial}")
        lines.append(f"fsync + rename {self.partial.name} -> {self.final}; sidecar .sha256")
        return lines


def resolve_level(compress: str, level: int) -> int:
    """``level`` 0 means the compressor's default; otherwise it must be in range."""
    if compress == "none":
        return 0
    if level == 0:
        return DEFAULT_LEVELS[compress]
    low, high = LEVEL_RANGES[compress]
    if not low <= level <= high:
        raise OpsError(f"--level: {level} is not valid for {compress}; valid: {low}-{high}")
    return level


def mysql_dump_binary() -> str:
    return "mariadb-dump" if shutil.which("mariadb-dump") else "mysqldump"


def mysql_client_binary() -> str:
    return "mariadb" if shutil.which("mariadb") else "mysql"


def pg_connection_args(target: DatabaseTarget, dbname: str | None = None) -> list[str]:
    return [
        "--host",
        target.host,
        "--port",
        str(target.port),
        "--username",
        target.user,
        "--no-password",
        "--dbname",
        target.name if dbname is None else dbname,
    ]


def mysql_connection_args(target: DatabaseTarget, extra: list[str]) -> list[str]:
    # --defaults-extra-file must come first on the command line.
    return [*extra, "--protocol=TCP", "--host", target.host, "--port", str(target.port),
            "--user", target.user]  # fmt: skip


def probe_argvs(target: DatabaseTarget, extra: list[str], dumper: str) -> list[list[str]]:
    """argv of the version probes recorded in the manifest: dump tool, then server."""
    if target.engine == "postgres":
        server = ["psql", "-XAtq", *pg_connection_args(target), "-c", "show server_version"]
    else:
        server = [mysql_client_binary(), *mysql_connection_args(target, extra), "-N", "-B",
                  "-e", "select version()"]  # fmt: skip
    return [[dumper, "--version"], server]


def compress_stage(compress: str, level: int) -> Stage | None:
    if compress == "gzip":
        return Stage("gzip", ("gzip", "-c", f"-{level}"))
    if compress == "zstd":
        return Stage("zstd", ("zstd", "-q", "-c", f"-{level}"))
    return None


def encrypt_stage(recipients: tuple[str, ...]) -> Stage:
    if not recipients:
        raise OpsError("backup.recipients: --encrypt needs at least one age recipient (public key)")
    argv = ["age"]
    for recipient in recipients:
        argv += ["-r", recipient]
    return Stage("age", tuple(argv))


def backup_filename(
    target: DatabaseTarget, fmt: str, compress: str, encrypt: bool, now: datetime
) -> str:
    ext = FORMAT_EXT[fmt] if target.engine == "postgres" else ".sql"
    if not (target.engine == "postgres" and fmt == "directory"):
        ext += COMPRESS_EXT[compress]
    if encrypt:
        ext += ".age"
    stamp = now.astimezone(timezone.utc).strftime(STAMP_FORMAT)
    return f"{target.environment}-{target.key}-{stamp}{ext}"


def plan_backup(
    target: DatabaseTarget,
    *,
    output_dir: Path,
    fmt: str,
    compress: str,
    level: int,
    jobs: int,
    recipients: tuple[str, ...] | None,
    now: datetime,
    mysql_extra: list[str] | None = None,
) -> BackupPlan:
    """Turn a target and the resolved flags into the stages of its backup pipeline.

    ``recipients`` is None for an unencrypted backup. Directory format (``-Fd``) dumps into a
    work directory beside the output (pg_dump compresses each file itself, gzip or none), which
    is then streamed as one tar file.
    """
    if fmt not in FORMATS:
        raise OpsError(f"--format: {fmt!r} is not valid; valid: {', '.join(FORMATS)}")
    if compress not in COMPRESSORS:
        raise OpsError(f"--compress: {compress!r} is not valid; valid: {', '.join(COMPRESSORS)}")
    if jobs < 1:
        raise OpsError(f"--jobs: {jobs} is not valid; valid: 1 or more")
    if target.engine == "mysql" and fmt != "plain":
        raise OpsError(f"--format: {fmt!r} is not valid for mysql; valid: plain")
    if jobs > 1 and fmt != "directory":
        raise OpsError(f"--jobs: {jobs} needs --format directory (only -Fd dumps in parallel)")
    level = resolve_level(compress, level)
    final = output_dir / backup_filename(target, fmt, compress, recipients is not None, now)
    options: dict[str, object] = {"format": fmt, "compress": compress, "level": level}
    tail = [] if recipients is None else [encrypt_stage(recipients)]
    if target.engine == "mysql":
        dump = Stage(
            mysql_dump_binary(),
            (mysql_dump_binary(), *mysql_connection_args(target, mysql_extra or []),
             "--single-transaction", "--quick", "--routines", "--triggers", target.name),
        )  # fmt: skip
        stages = [dump, compress_stage(compress, level), *tail]
        return BackupPlan(target, final, tuple(s for s in stages if s), options=options)
    if fmt == "directory":
        if compress == "zstd":
            raise OpsError("--compress: zstd is not valid with --format directory; valid: gzip, none")
        workdir = final.with_name(final.name + ".partial.d")
        prepare = Stage(
            "pg_dump",
            ("pg_dump", *pg_connection_args(target), "--format=directory", f"--jobs={jobs}",
             f"--compress={level}", "--file", str(workdir)),
        )  # fmt: skip
        tar = Stage("tar", ("tar", "-c", "-f", "-", "-C", str(workdir), "."))
        return BackupPlan(target, final, (tar, *tail), prepare, workdir, options)
    fmt_flag = "--format=plain" if fmt == "plain" else "--format=custom"
    dump_argv = ["pg_dump", *pg_connection_args(target), fmt_flag]
    if fmt == "custom":
        dump_argv.append("--compress=0")  # compressed once, by the compress stage
    stages = [Stage("pg_dump", tuple(dump_argv)), compress_stage(compress, level), *tail]
    return BackupPlan(target, final, tuple(s for s in stages if s), options=options)


def parse_name(name: str) -> dict[str, str] | None:
    """Split a backup file name into env, key, stamp and extension (None if not a backup)."""
    match = NAME_RE.match(name)
    return match.groupdict() if match else None


def backup_time(name: str) -> datetime | None:
    parts = parse_name(name)
    if parts is None:
        return None
    return datetime.strptime(parts["stamp"], STAMP_FORMAT).replace(tzinfo=timezone.utc)


def read_stages(path: Path, identity: str | None) -> list[Stage]:
    """Stages that turn a backup file back into the dump stream (decrypt, decompress)."""
    name = path.name
    stages: list[Stage] = []
    if name.endswith(".age"):
        if not identity:
            raise OpsError(f"--identity: {name} is encrypted; give the age identity file")
        stages.append(Stage("age", ("age", "-d", "-i", identity)))
        name = name[: -len(".age")]
    if name.endswith(".gz"):
        stages.append(Stage("gzip", ("gzip", "-d", "-c")))
    elif name.endswith(".zst"):
        stages.append(Stage("zstd", ("zstd", "-q", "-d", "-c")))
    return stages


def dump_kind(path: Path) -> str:
    """plain, custom or directory, from the file name."""
    name = path.name.removesuffix(".age")
    if ".dir.tar" in name:
        return "directory"
    if ".dump" in name:
        return "custom"
    return "plain"
