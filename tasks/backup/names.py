"""Backup file names: ``ENV-TARGET-YYYYMMDDTHHMMSSZ.EXT`` and their parts (pure).

EXT is ``.sql`` / ``.dump`` / ``.dir.tar`` (plain, custom, directory format), then ``.gz`` /
``.zst``, then ``.age``; the globals companion of a set is ``.globals.sql...`` with the same stamp.
A second backup of a target within the same second gets milliseconds in its stamp
(``YYYYMMDDTHHMMSSmmmZ``), so that two sets never share a stamp.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tasks.backup.targets import DatabaseTarget

BackupOptions = Any  # tasks.backup.plan.BackupOptions (names stay free of the planner)

COMPRESS_EXT = {"gzip": ".gz", "zstd": ".zst", "none": ""}
FORMAT_EXT = {"plain": ".sql", "custom": ".dump", "directory": ".dir.tar"}
GLOBALS_EXT = ".globals.sql"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(
    r"^(?P<prefix>[a-z][a-z0-9-]*-.+)-(?P<stamp>\d{8}T\d{6}(?:\d{3})?Z)"
    r"(?P<ext>\.(globals\.sql|sql|dump|dir\.tar)(\.gz|\.zst)?(\.age)?)$"
)


def stamp(now: datetime, precise: bool = False) -> str:
    """``YYYYMMDDTHHMMSSZ``; ``precise``: with milliseconds (``...SSmmmZ``)."""
    utc = now.astimezone(timezone.utc)
    if precise:
        return utc.strftime("%Y%m%dT%H%M%S") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime(STAMP_FORMAT)


def taken(names: Sequence[str], environment: str, key: str, now: datetime) -> bool:
    """Whether a set of this target already has this second's stamp (among ``names``)."""
    prefix = f"{environment}-{key}-{stamp(now)}."
    return any(name.startswith(prefix) for name in names)


def backup_filename(target: DatabaseTarget, options: BackupOptions) -> str:
    """``ENV-TARGET-STAMP.EXT`` of a dump (``options``: a :class:`plan.BackupOptions`)."""
    fmt = options.fmt if target.engine == "postgres" else "plain"
    ext = FORMAT_EXT[fmt]
    if fmt != "directory":
        ext += COMPRESS_EXT[options.compress]
    if options.recipients is not None:
        ext += ".age"
    return f"{target.environment}-{target.key}-{stamp(options.now, options.precise)}{ext}"


def globals_filename(target: DatabaseTarget, options: BackupOptions) -> str:
    ext = GLOBALS_EXT + COMPRESS_EXT[options.compress]
    ext += ".age" if options.recipients is not None else ""
    return f"{target.environment}-{target.key}-{stamp(options.now, options.precise)}{ext}"


@dataclass(frozen=True)
class BackupName:
    """A parsed backup file name: ``PREFIX-STAMP.EXT`` where PREFIX is ``ENV-TARGET``."""

    name: str
    prefix: str
    stamp: str
    ext: str

    @property
    def when(self) -> datetime:
        when = datetime.strptime(self.stamp[:15] + "Z", STAMP_FORMAT)
        millis = int(self.stamp[15:18]) if len(self.stamp) == 19 else 0
        return when.replace(tzinfo=timezone.utc, microsecond=millis * 1000)

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
    match = NAME_RE.fullmatch(name)  # "$" alone would accept a trailing newline
    if match is None:
        return None
    return BackupName(name, match["prefix"], match["stamp"], match["ext"])


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
