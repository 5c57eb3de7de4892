"""The ``backup`` and ``ssh`` config keys. Targets are ``environments.<env>.databases``."""

from __future__ import annotations

from tasks.core.settings import Bool, Choice, FilePath, Float, Int, List, Section, Str

FORMATS = ("plain", "custom", "directory")
COMPRESSORS = ("gzip", "zstd", "none")
AGE_RECIPIENT = r"^(age1[0-9a-z]{58}|ssh-(ed25519|rsa) \S+( .*)?)$"

SCHEMA = Section(
    {
        "output_dir": FilePath("backups", "where backups go (created 0700)", kind="dir"),
        "format": Choice("plain", FORMATS, "postgres dump format"),
        "compress": Choice("gzip", COMPRESSORS, "compressor"),
        "level": Int(0, "compression level (0 = gzip 6 / zstd 3)", minimum=0, maximum=19),
        "jobs": Int(1, "pg_dump --jobs for directory format", minimum=1, maximum=64),
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
        "identity": Str("", "age identity file for verify/restore"),
        "remote_dir": Str(
            "/var/backups/flowlet",
            "backup dir on --host for --keep-remote",
            pattern=r"^/[^\0]*$",
            desc="an absolute path",
        ),
        "retention": Section(
            {
                "keep_last": Int(7, "newest backups kept", minimum=1),
                "daily": Int(7, "newest of each of the last N UTC days", minimum=0),
                "weekly": Int(4, "newest of each of the last N ISO weeks", minimum=0),
            }
        ),
    }
)

SSH_SCHEMA = Section(
    {
        "config_file": Str("", "ssh_config for --host (default ~/.ssh/config)"),
        "connect_timeout": Float(10.0, "seconds to wait for an SSH connection", above=0),
    }
)
