"""The systemd units (and the crontab line) of a scheduled backup, as text (pure).

The service (``Type=oneshot``, hardened) runs ``inv backup.<engine>`` (its failure does not stop
the next step: ``ExecStart=-``), then ``inv backup.check`` (which reports a failed run), then
``inv backup.prune`` (only when the check passed). The timer is ``Persistent`` with a
``RandomizedDelaySec``. Secrets go into a separate environment file, never into the units.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.backup.targets import DatabaseTarget
from tasks.core.errors import ConfigError

HARDENING = (
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectSystem=strict",
    "ProtectHome=read-only",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes",
    "RestrictNamespaces=yes",
    "LockPersonality=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures=native",
    "UMask=0077",
)
DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
CALENDAR_SIMPLE = re.compile(
    r"^(?:(?P<dow>[A-Za-z]{3}(?:(?:\.\.|,)[A-Za-z]{3})*) )?\*-\*-\* "
    r"(?P<h>\d{1,2}|\*):(?P<m>\d{1,2})(?::(?P<s>\d{1,2}))?$"
)


@dataclass(frozen=True)
class Units:
    name: str  # PREFIX-ENV-TARGET
    service: str
    timer: str
    env_file: Path
    env_text: str  # with values
    env_shown: str  # values masked (for --dry)
    commands: tuple[tuple[str, ...], ...]  # the inv command lines, in order


def systemd_quote(arg: str) -> str:
    """One ExecStart= word: specifiers (%) and variables ($) escaped, quoted when needed."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_line(name: str, value: str) -> str:
    """``NAME='value'``, read back byte for byte by both consumers of the file: systemd's
    ``EnvironmentFile=`` (src/basic/env-file.c: inside ``'...'`` every character is literal,
    newlines too; after the closing quote a new quote may open) and ``sh``'s ``.`` (for
    ``--cron``). A single quote cannot sit inside single quotes, so it is written as ``"'"``:
    both parsers keep ``'`` literal inside double quotes. Nothing in the value is ever
    expanded: ``$``, backticks, ``$(...)``, backslashes and ``#`` stay text. A NUL byte or
    text that is not UTF-8 (systemd ignores such a line) cannot be represented: refused."""
    if "\0" in value:
        raise ConfigError(f"{name}: its value has a NUL byte; cannot go into an environment file")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{name}: its value is not valid UTF-8; cannot go into an environment file"
        ) from None
    return f"{name}=" + '"\'"'.join(f"'{part}'" for part in value.split("'")) + "\n"


def unit_path() -> str:
    """The unit's PATH: this interpreter's bin directory (the venv's tools: rclone, the
    linters) before the system's."""
    return f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"


def inv_argv(config_file: str | None) -> list[str]:
    return [sys.executable, "-m", "invoke", *(["-f", config_file] if config_file else [])]


def plan_units(
    target: DatabaseTarget,
    *,
    settings: Any,
    root: Path,
    config_file: str | None,
    on_calendar: str,
    to: str,
    max_age: int,
    textfile: Path | None,
    env_values: dict[str, str],
    home: str,
    destination_config: Path | None = None,
) -> Units:
    """The service, the timer and the environment file of one target (pure)."""
    sched = settings.schedule
    name = f"{sched.unit_prefix}-{target.environment}-{target.key}"
    select = ["--env", target.environment, "--database", target.key]
    inv = inv_argv(config_file)
    from tasks.backup.freshness import duration_text

    age = duration_text(max_age)
    run = [*inv, f"backup.{target.engine}", *select, *(["--to", to] if to else [])]
    check = [
        *inv,
        "backup.check",
        *select,
        "--max-age",
        age,
        *(["--textfile", str(textfile)] if textfile else []),
    ]
    prune = [*inv, "backup.prune", *select]
    commands = [tuple(run), tuple(check), tuple(prune)]
    if to:
        commands.append((*inv, "backup.prune", *select, "--from", to))
    env_file = sched.env_dir / f"{name}.env"
    writable = _writable(settings, textfile, destination_config)
    execs = [f"ExecStart=-{' '.join(systemd_quote(a) for a in run)}"]
    execs += [f"ExecStart={' '.join(systemd_quote(a) for a in cmd)}" for cmd in commands[1:]]
    service = _service_text(
        f"Flowlet backup of {target.label}: backup, check, prune",
        root=root,
        home=home,
        env_file=env_file,
        execs=execs,
        user=sched.user,
        writable=writable,
    )
    timer = _timer_text(
        f"Flowlet backup of {target.label} ({on_calendar})", name, on_calendar, sched
    )
    return Units(name, service, timer, env_file, *_env_texts(env_values), tuple(commands))


def plan_drill_units(
    target: DatabaseTarget,
    *,
    settings: Any,
    root: Path,
    config_file: str | None,
    on_calendar: str,
    to: str,
    textfile: Path | None,
    env_values: dict[str, str],
    home: str,
    destination_config: Path | None = None,
) -> Units:
    """The restore drill's own service, timer and environment file (``PREFIX-ENV-TARGET-drill``,
    pure): ``inv backup.drill`` of the local copy, then (with a destination) of the copy there.
    A failed first drill does not stop the second (``ExecStart=-``): each records its evidence
    and metrics; the last one's result is the unit's."""
    sched = settings.schedule
    name = f"{sched.unit_prefix}-{target.environment}-{target.key}-drill"
    select = ["--env", target.environment, "--database", target.key]
    metrics = ["--textfile", str(textfile)] if textfile else []
    drill = [*inv_argv(config_file), "backup.drill", *select, *metrics]
    commands = [tuple(drill)] + ([(*drill, "--from", to)] if to else [])
    env_file = sched.env_dir / f"{name}.env"
    writable = _writable(settings, textfile, destination_config)
    execs = [
        f"ExecStart={'' if i == len(commands) - 1 else '-'}"
        + " ".join(systemd_quote(a) for a in cmd)
        for i, cmd in enumerate(commands)
    ]
    service = _service_text(
        f"Flowlet restore drill of {target.label}",
        root=root,
        home=home,
        env_file=env_file,
        execs=execs,
        user=sched.user,
        writable=writable,
    )
    timer = _timer_text(
        f"Flowlet restore drill of {target.label} ({on_calendar})", name, on_calendar, sched
    )
    return Units(name, service, timer, env_file, *_env_texts(env_values), tuple(commands))


def _writable(settings: Any, textfile: Path | None, destination_config: Path | None) -> list[str]:
    """ReadWritePaths=: the output directory (backups, manifest, drill evidence, work dirs),
    the textfile (``-``: not an error while it is missing) and the rclone config's directory
    (rclone may refresh tokens in it)."""
    writable = [str(settings.output_dir)]
    writable += [f"-{textfile}"] if textfile else []
    if destination_config is not None:
        writable.append(f"-{destination_config.parent}")
    return writable


def _env_texts(env_values: dict[str, str]) -> tuple[str, str]:
    """The environment file's text, and what ``--dry`` shows of it (names only)."""
    text = "".join(env_line(k, v) for k, v in sorted(env_values.items()))
    return text, "".join(f"{k}=<from ${k}>\n" for k in sorted(env_values))


def _service_text(
    description: str,
    *,
    root: Path,
    home: str,
    env_file: Path,
    execs: list[str],
    user: str,
    writable: list[str],
) -> str:
    return "\n".join(
        [
            "[Unit]",
            f"Description={description}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={systemd_quote(str(root))}",
            f"Environment=HOME={systemd_quote(home)}",
            f"Environment=PATH={systemd_quote(unit_path())}",
            f"EnvironmentFile={env_file}",
            *execs,
            *([f"User={user}"] if user else []),
            "Nice=10",
            "IOSchedulingClass=best-effort",
            "IOSchedulingPriority=7",
            *HARDENING,
            "ReadWritePaths=" + " ".join(systemd_quote(p) for p in writable),
            "",
        ]
    )


def _timer_text(description: str, name: str, on_calendar: str, sched: Any) -> str:
    return "\n".join(
        [
            "[Unit]",
            f"Description={description}",
            "",
            "[Timer]",
            f"OnCalendar={on_calendar}",
            f"RandomizedDelaySec={sched.randomized_delay}",
            "Persistent=true",
            "AccuracySec=1min",
            f"Unit={name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


def cron_spec(on_calendar: str) -> str:
    """The crontab time fields equivalent to ``on_calendar`` (simple calendars only)."""
    spec = {"daily": "0 0 * * *", "hourly": "0 * * * *", "weekly": "0 0 * * 1"}.get(on_calendar)
    if spec is None:
        match = CALENDAR_SIMPLE.match(on_calendar)
        if match is None or (match["s"] not in (None, "0", "00")):
            raise ConfigError(
                f"--cron: {on_calendar!r} has no crontab equivalent here; valid: "
                "'[Mon..Fri ]*-*-* HH:MM[:00]', daily, hourly or weekly"
            )
        spec = f"{int(match['m'])} {match['h'] if match['h'] == '*' else int(match['h'])} * * "
        spec += _cron_days(match["dow"]) if match["dow"] else "*"
    return spec


def cron_line(on_calendar: str, units: Units, root: Path) -> str:
    """The crontab line equivalent to the timer (no random delay in cron)."""
    spec = cron_spec(on_calendar)
    run, *after = (shlex.join(cmd) for cmd in units.commands)
    env = shlex.quote(str(units.env_file))
    steps = f"{run}; {' && '.join(after)}" if after else run
    return f"{spec} cd {shlex.quote(str(root))} && set -a && . {env} && set +a && {{ {steps}; }}"


def _cron_days(text: str) -> str:
    parts = []
    for part in text.lower().split(","):
        ends = part.split("..")
        if any(e not in DAYS for e in ends):
            raise ConfigError(f"--cron: {text!r} is not valid; valid: day names like Mon..Fri")
        parts.append("-".join(str(DAYS[e]) for e in ends))
    return ",".join(parts)
