"""``backup.schedule``: a systemd service + timer on the bastion (or a crontab line).

The service (``Type=oneshot``, hardened) runs ``inv backup.<engine>``, then ``inv backup.check``
(which reports a failed backup run: the backup step's own failure does not stop it), then
``inv backup.prune`` (only when the check passed); ``--drill`` writes the restore drill's own
pair instead (``PREFIX-ENV-TARGET-drill``, weekly by default: ``backup.drill.on_calendar``). The
timer is ``Persistent`` (a run missed while the machine was off happens at boot) with a
``RandomizedDelaySec``. Secrets the run
needs (the database password variable, the destination's credential variables) go into an
environment file of mode 0600, never into the units.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.backup.files import write_atomic
from tasks.backup.targets import DatabaseTarget, resolve_target
from tasks.backup.units import cron_line, cron_spec, plan_drill_units, plan_units
from tasks.core import runner
from tasks.core.environments import resolve_environment
from tasks.core.errors import ConfigError
from tasks.core.files import private_dir
from tasks.core.settings import load, project_root

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


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
        raise ConfigError(
            f"--on-calendar: {value!r} is not valid ({reason}); valid: a systemd "
            "calendar event like '*-*-* 02:15:00' or daily"
        )


def schedule(
    c: Context,
    *,
    env: str | None,
    database: str | None,
    on_calendar: str | None,
    to: str | None,
    max_age: int | None,
    textfile: Path | None,
    unit_dir: Any,
    cron: bool,
    remove: bool,
    drill: bool = False,
) -> None:
    from tasks.backup.offsite import resolve_destination

    settings = load(c, "backup")
    environment = resolve_environment(c, env)
    target = resolve_target(environment, database, None)
    default_calendar = settings.drill.on_calendar if drill else settings.schedule.on_calendar
    calendar = on_calendar if on_calendar is not None else default_calendar
    if drill and max_age is not None:
        raise ConfigError(
            "--max-age: not with --drill (the drill's staleness limit is backup.drill.max_age)"
        )
    if not remove:
        check_calendar(calendar)
    if cron:
        cron_spec(calendar)
    age = max_age or settings.check.max_age  # flags arrive converted (FLAG_KINDS)
    text_dir = textfile or settings.check.textfile_dir
    dest_name = to or environment.backup_to
    destination = (
        resolve_destination(
            settings, dest_name, flag="--to" if to else environment.key("backup_to")
        )
        if dest_name
        else None
    )
    directory = unit_dir or settings.schedule.unit_dir
    dir_source = "--unit-dir" if unit_dir else "backup.schedule.unit_dir"
    import pwd

    user = settings.schedule.user or pwd.getpwuid(os.geteuid()).pw_name
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        raise ConfigError(
            f"backup.schedule.user: {user!r} is not valid; valid: an existing " "system user"
        ) from None
    runtime = getattr(c.config, "_runtime_path", None)
    values = {} if remove else needed_variables(target, destination)
    common: dict[str, Any] = dict(
        settings=settings,
        root=project_root(c),
        config_file=str(Path(runtime).resolve()) if runtime else None,
        on_calendar=calendar,
        to=dest_name or "",
        textfile=text_dir,
        env_values=values,
        home=home,
        destination_config=destination.config_file if destination else None,
    )
    if drill:  # the restore drill's own unit pair (and environment file)
        units = plan_drill_units(target, **common)
    else:
        units = plan_units(target, max_age=age, **common)
    files = {
        directory / f"{units.name}.service": units.service,
        directory / f"{units.name}.timer": units.timer,
    }
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
            private_dir(units.env_file.parent, source="backup.schedule.env_dir", tighten=False)
            write_atomic(units.env_file, units.env_text, 0o600, source="backup.schedule.env_dir")
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
        private_dir(units.env_file.parent, source="backup.schedule.env_dir", tighten=False)
        for path, text in files.items():
            write_atomic(path, text, 0o644, source=dir_source)
        write_atomic(units.env_file, units.env_text, 0o600, source="backup.schedule.env_dir")
        print(f"wrote {', '.join(str(p) for p in files)} and {units.env_file} (mode 0600)")
    if system:
        runner.run(c, ["systemctl", "daemon-reload"])
        runner.run(c, ["systemctl", "enable", "--now", f"{units.name}.timer"])
    elif not dry:
        timer = directory / f"{units.name}.timer"
        print(
            f"not the system unit directory: link them with `systemctl link {timer} "
            f"{directory / units.name}.service` and `systemctl enable --now {units.name}.timer`"
        )
