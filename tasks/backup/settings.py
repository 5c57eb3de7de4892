"""The ``backup`` and ``ssh`` config keys: the only place their defaults are written.

Database targets are ``environments.<env>.databases`` and the per-environment default
destination is ``environments.<env>.backup_to`` (both in :mod:`tasks.core.environments`).
Imported when ``inv`` loads the collection: only schema kinds here.
"""

from __future__ import annotations

from typing import Any

from tasks.core.settings import (
    Bool,
    Choice,
    Duration,
    EnvName,
    FilePath,
    Float,
    Int,
    List,
    Map,
    Section,
    Str,
    Where,
)

ENGINES = ("postgres", "mysql")
FORMATS = ("plain", "custom", "directory")
COMPRESSORS = ("gzip", "zstd", "none")
AGE_RECIPIENT = r"^(age1[0-9a-z]{58}|ssh-(ed25519|rsa) \S+( .*)?)$"
DESTINATION_NAME = r"^[a-z][a-z0-9_-]{0,30}$"
DESTINATION_NAME_DESC = "a destination name (lowercase letters, digits, '-', '_')"
# An rclone remote defined in the config file or RCLONE_CONFIG_<NAME>_* variables, then a path.
# No ':backend,key=value:' connection strings: their options (credentials) would be on argv.
RCLONE_URL = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*:[^\0\n,]*$"
RCLONE_URL_DESC = (
    "an rclone remote and path like offsite:bucket/flowlet (a remote named in the rclone config "
    "file or RCLONE_CONFIG_<NAME>_* variables; no connection strings)"
)
UNIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$"
CALENDAR = r"^[A-Za-z0-9*:,./~ -]{1,100}$"


class OptionalDuration(Duration):
    """A :class:`Duration`, or ``""`` for none (typed value ``None``)."""

    __slots__ = ()

    def describe(self) -> str:
        return super().describe() + ", or empty for none"

    def check(self, value: Any, where: Where) -> int | None:  # type: ignore[override]
        if value == "":
            return None
        return super().check(value, where)


DESTINATION = Section(
    {
        "url": Str(
            "", "rclone remote and path", pattern=RCLONE_URL, desc=RCLONE_URL_DESC, empty=False
        ),
        "config_file": FilePath(
            "",
            "rclone config file (mode 0600); empty: none (remotes from RCLONE_CONFIG_* variables)",
            kind="file",
            empty=True,
        ),
        "env": List(
            [],
            EnvName(empty=False),
            "variables holding this destination's credentials (passed to rclone only)",
            secret_env=True,
        ),
        "timeout": Duration(
            "20s",
            "a destination that stops answering fails after this: rclone's connect and idle "
            "timeouts, two tries per request",
        ),
    },
    "an offsite destination (rclone)",
)

SCHEMA = Section(
    {
        "output_dir": FilePath("backups", "where backups go (created 0700)", kind="dir"),
        "format": Choice("plain", FORMATS, "postgres dump format"),
        "compress": Choice("gzip", COMPRESSORS, "compressor"),
        "level": Int(0, "compression level (0 = gzip 6 / zstd 3)", minimum=0, maximum=19),
        "jobs": Int(1, "pg_dump/pg_restore --jobs for directory format", minimum=1, maximum=64),
        "manifest": Str(
            "manifest.jsonl",
            "manifest file name in the output dir",
            pattern=r"^[^/\0]+$",
            desc="a file name (no '/')",
            empty=False,
        ),
        "encrypt": Bool(False, "age-encrypt every backup"),
        "recipients": List(
            [],
            Str(pattern=AGE_RECIPIENT, desc="an age public key (age1...) or an ssh public key"),
            "age public recipients",
        ),
        "identity": FilePath("", "age identity file for verify/restore", kind="file", empty=True),
        "signing_key": FilePath(
            "",
            "SSH private key that signs each sidecar (NAME.sha256.sig); empty: no signatures",
            kind="file",
            must_exist=True,
            empty=True,
        ),
        "allowed_signers": FilePath(
            "",
            "ssh-keygen allowed_signers file: --from trusts objects whose sidecar one of these "
            "keys signed (empty: only the local manifest)",
            kind="file",
            must_exist=True,
            empty=True,
        ),
        "remote_dir": Str(
            "/var/backups/flowlet",
            "backup dir on --host for --keep-remote",
            pattern=r"^/[^\0]*$",
            desc="an absolute path",
        ),
        "globals": Bool(False, "postgres: also back up the cluster's roles and tablespaces"),
        "destinations": Map(
            DESTINATION,
            help="offsite destinations by name (--to / --from)",
            key_pattern=DESTINATION_NAME,
            key_desc=DESTINATION_NAME_DESC,
        ),
        "retention": Section(
            {
                "keep_last": Int(7, "newest backups kept", minimum=1),
                "daily": Int(7, "newest of each of the last N UTC days", minimum=0),
                "weekly": Int(4, "newest of each of the last N ISO weeks", minimum=0),
            }
        ),
        "check": Section(
            {
                "max_age": Duration("26h", "backup.check: CRITICAL when the newest is older"),
                "warn_age": OptionalDuration("", "backup.check: WARNING when older (empty: none)"),
                "textfile_dir": FilePath(
                    "", "node-exporter textfile directory (empty: none)", kind="dir", empty=True
                ),
            }
        ),
        "drill": Section(
            {
                "evidence": Str(
                    "drills.jsonl",
                    "backup.drill: evidence file (JSON lines) in the output dir",
                    pattern=r"^[^/\0]+$",
                    desc="a file name (no '/')",
                    empty=False,
                ),
                "on_calendar": Str(
                    "Sun *-*-* 04:30:00",
                    "systemd OnCalendar of the drill timer (backup.schedule --drill)",
                    pattern=CALENDAR,
                    desc="a systemd calendar event like 'Sun *-*-* 04:30:00' or weekly",
                    empty=False,
                ),
                "max_age": Duration(
                    "192h",
                    "a drill older than this is stale (flowlet_backup_drill_max_age_seconds)",
                ),
            }
        ),
        "schedule": Section(
            {
                "on_calendar": Str(
                    "*-*-* 02:15:00",
                    "systemd OnCalendar of the backup timer",
                    pattern=CALENDAR,
                    desc="a systemd calendar event like '*-*-* 02:15:00' or daily",
                    empty=False,
                ),
                "randomized_delay": Duration("15m", "timer RandomizedDelaySec", min_seconds=0),
                "unit_dir": FilePath("/etc/systemd/system", "where the units go", kind="dir"),
                "env_dir": FilePath(
                    "/etc/flowlet", "where the 0600 environment file goes", kind="dir"
                ),
                "unit_prefix": Str(
                    "flowlet-backup",
                    "unit names: PREFIX-ENV-DATABASE.service/.timer",
                    pattern=UNIT_NAME,
                    desc="a unit name prefix (letters, digits, '-', '_', '.')",
                ),
                "user": Str(
                    "",
                    "User= of the service (empty: root)",
                    pattern=r"^[a-z_][a-z0-9_-]*$",
                    desc="a system user name",
                ),
            }
        ),
    }
)

SSH_SCHEMA = Section(
    {
        "config_file": FilePath(
            "", "ssh_config for --host (default ~/.ssh/config)", kind="file", empty=True
        ),
        "connect_timeout": Float(10.0, "seconds to wait for an SSH connection", above=0),
    }
)

# Kinds of flags that are not config keys (converted by the schema before a task body runs).
DB_TYPE = Choice("postgres", ENGINES, "postgres or mysql")
NAME = Str(pattern=DESTINATION_NAME, desc=DESTINATION_NAME_DESC)
