"""``backup.schedule``: a systemd service + timer on the bastion (or a crontab line).

The service (``Type=oneshot``, hardened) runs ``inv backup.<engine>``, then ``inv backup.check``
(which reports a failed backup run: the backup step's own failure does not stop it), then
``inv backup.prune`` (only when the check passed). The timer is ``Persistent`` (a run missed
while the machine was off happens at boot) with a ``RandomizedDelaySec``. Secrets the run
needs (the database password variable, the destination's credential variables) go into an
environment file of mode 0600, never into the units.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.backup.targets import DatabaseTarget, resolve_target
from tasks.core import runner
from tasks.core.environments import resolve_environment
from tasks.core.errors import ConfigError
from tasks.core.settings import load, project_root

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
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
    if "\n" in value or "\0" in value:
        raise ConfigError(f"{name}: its value has a newline; cannot go into an environment file")
    return f'{name}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def inv_argv(config_file: str | None) -> list[str]:
    return [sys.executable, "-m", "invoke", *(["-f", config_file] if config_file else [])]


def plan_units(target: DatabaseTarget, *, settings: Any, root: Path, config_file: str | None,
               on_calendar: str, to: str, max_age: int, textfile: Path | None,
               env_values: dict[str, str], home: str,
               destination_config: Path | None = None) -> Units:  # fmt: skip
    """The service, the timer and the environment file of one target (pure)."""
    sched = settings.schedule
    name = f"{sched.unit_prefix}-{target.environment}-{target.key}"
    select = ["--env", target.environment, "--database", target.key]
    inv = inv_argv(config_file)
    from tasks.backup.freshness import duration_text

    age = duration_text(max_age)
    run = [*inv, f"backup.{target.engine}", *select, *(["--to", to] if to else [])]
    check = [*inv, "backup.check", *select, "--max-age", age,
             *(["--textfile", str(textfile)] if textfile else [])]  # fmt: skip
    prune = [*inv, "backup.prune", *select]
    commands = [tuple(run), tuple(check), tuple(prune)]
    if to:
        commands.append((*inv, "backup.prune", *select, "--from", to))
    env_file = sched.env_dir / f"{name}.env"
    writable = [str(settings.output_dir)]  # the backups and the manifest (created now)
    writable += [f"-{textfile}"] if textfile else []  # "-": not an error while it is missing
    if destination_config is not None:  # rclone may refresh tokens in its config file
        writable.append(f"-{destination_config.parent}")
    user = [f"User={sched.user}"] if sched.user else []
    execs = [f"ExecStart=-{' '.join(systemd_quote(a) for a in run)}"]
    execs += [f"ExecStart={' '.join(systemd_quote(a) for a in cmd)}" for cmd in commands[1:]]
    service = "\n".join([
        "[Unit]",
        f"Description=Flowlet backup of {target.label}: backup, check, prune",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={systemd_quote(str(root))}",
        f"Environment=HOME={systemd_quote(home)}",
        f"EnvironmentFile={env_file}",
        *execs,
        *user,
        "Nice=10",
        "IOSchedulingClass=best-effort",
        "IOSchedulingPriority=7",
        *HARDENING,
        "ReadWritePaths=" + " ".join(systemd_quote(p) for p in writable),
        "",
    ])  # fmt: skip
    timer = "\n".join([
        "[Unit]",
        f"Description=Flowlet backup of {target.label} ({on_calendar})",
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
    ])  # fmt: skip
    env_text = "".join(env_line(k, v) + "\n" for k, v in sorted(env_values.items()))
    shown = "".join(f"{k}=<from ${k}>\n" for k in sorted(env_values))
    return Units(name, service, timer, env_file, env_text, shown, tuple(commands))


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
    steps = f"{run}; {' && '.join(after)}"
    return f"{spec} cd {shlex.quote(str(root))} && set -a && . {env} && set +a && {{ {steps}; }}"


def _cron_days(text: str) -> str:
    parts = []
    for part in text.lower().split(","):
        ends = part.split("..")
        if any(e not in DAYS for e in ends):
            raise ConfigError(f"--cron: {text!r} is not valid; valid: day names like Mon..Fri")
        parts.append("-".join(str(DAYS[e]) for e in ends))
    return ",".join(parts)


def needed_variables(target: DatabaseTarget, destination: Any) -> dict[str, str]:
    """The variables the scheduled run needs from today's environment (secrets included)."""
    names = [target.password_env] if target.password_env else []
    values: dict[str, str] = {}
    if destination is not None:
        names += list(destination.env)
        remote = destination.url.split(":", 1)[0].upper().replace("-", "_")
        prefix = f"RCLONE_CONFIG_{remote}_"
        values.update({k: v for k, v in os.environ.items() if k.startswith(prefix)})
    for name in names:
        if not os.environ.get(name):
            raise ConfigError(
                f"{name}: not set; the timer's environment file needs it (export it, then "
                "run backup.schedule again)"
            )
        values[name] = os.environ[name]
    return values


def check_calendar(value: str) -> None:
    """``systemd-analyze calendar`` (read-only) when it is installed: one line if invalid."""
    if shutil.which("systemd-analyze") is None:
        return
    done = runner.capture(["systemd-analyze", "calendar", value], timeout=30)
    if not done.ok:
        reason = (done.stderr.strip().splitlines() or ["not a calendar event"])[-1]
        raise ConfigError(f"--on-calendar: {value!r} is not valid ({reason}); valid: a systemd "
                          "calendar event like '*-*-* 02:15:00' or daily")  # fmt: skip


def write_file(path: Path, text: str, mode: int, *, source: str) -> None:
    try:
        path.parent.mkdir(mode=0o700 if mode == 0o600 else 0o755, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{source}: {str(path.parent)!r} is not valid: cannot write there "
                          f"({exc.strerror}); valid: a writable directory") from None  # fmt: skip


def schedule(c: Context, *, env: str | None, database: str | None, on_calendar: str | None,
             to: str | None, max_age: int | None, textfile: Path | None, unit_dir: Any,
             cron: bool, remove: bool) -> None:  # fmt: skip
    from tasks.backup.offsite import resolve_destination

    settings = load(c, "backup")
    environment = resolve_environment(c, env)
    target = resolve_target(environment, database, None)
    calendar = on_calendar if on_calendar is not None else settings.schedule.on_calendar
    if not remove:
        check_calendar(calendar)
    if cron:
        cron_spec(calendar)
    age = max_age or settings.check.max_age  # flags arrive converted (FLAG_KINDS)
    text_dir = textfile or settings.check.textfile_dir
    dest_name = to or environment.backup_to
    destination = (resolve_destination(settings, dest_name, flag="--to" if to else
                                       environment.key("backup_to")) if dest_name else None)  # fmt: skip
    directory = unit_dir or settings.schedule.unit_dir
    dir_source = "--unit-dir" if unit_dir else "backup.schedule.unit_dir"
    import pwd

    user = settings.schedule.user or pwd.getpwuid(os.geteuid()).pw_name
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        raise ConfigError(f"backup.schedule.user: {user!r} is not valid; valid: an existing "
                          "system user") from None  # fmt: skip
    runtime = getattr(c.config, "_runtime_path", None)
    values = {} if remove else needed_variables(target, destination)
    units = plan_units(target, settings=settings, root=project_root(c),
                       config_file=str(Path(runtime).resolve()) if runtime else None,
                       on_calendar=calendar, to=dest_name or "", max_age=age, textfile=text_dir,
                       env_values=values, home=home,
                       destination_config=destination.config_file if destination else None)  # fmt: skip
    files = {directory / f"{units.name}.service": units.service,
             directory / f"{units.name}.timer": units.timer}  # fmt: skip
    system = Path(directory) == SYSTEM_UNIT_DIR
    dry = runner.is_dry(c)
    if remove:
        if system:
            runner.run(c, ["systemctl", "disable", "--now", f"{units.name}.timer"], warn=True)
        for path in [*files, units.env_file]:
            if dry:
                print(f"would remove {path}")
            elif path.exists():
                path.unlink()
                print(f"removed {path}")
        if system:
            runner.run(c, ["systemctl", "daemon-reload"])
        return
    if cron:
        line = cron_line(calendar, units, project_root(c))
        if dry:
            print(f"# {units.env_file} (mode 0600):\n{units.env_shown}", end="")
        else:
            write_file(units.env_file, units.env_text, 0o600, source="backup.schedule.env_dir")
            print(f"# wrote {units.env_file} (mode 0600); add this line with crontab -e:")
        print(line)
        return
    if dry:
        for path, text in files.items():
            print(f"# {path}\n{text}")
        print(f"# {units.env_file} (mode 0600)\n{units.env_shown}")
    else:
        from tasks.backup.files import ensure_private_dir

        ensure_private_dir(settings.output_dir, source="backup.output_dir")
        for path, text in files.items():
            write_file(path, text, 0o644, source=dir_source)
        write_file(units.env_file, units.env_text, 0o600, source="backup.schedule.env_dir")
        print(f"wrote {', '.join(str(p) for p in files)} and {units.env_file} (mode 0600)")
    if system:
        runner.run(c, ["systemctl", "daemon-reload"])
        runner.run(c, ["systemctl", "enable", "--now", f"{units.name}.timer"])
    elif not dry:
        timer = directory / f"{units.name}.timer"
        print(f"not the system unit directory: link them with `systemctl link {timer} "
              f"{directory / units.name}.service` and `systemctl enable --now {units.name}.timer`")
