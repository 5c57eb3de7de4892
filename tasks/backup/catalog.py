"""What backups exist where: the local directory or a destination, as backup sets and partials.

A backup set is the files sharing ``ENV-TARGET-STAMP``: the dump and (postgres ``--globals``)
its ``.globals.sql`` companion, each with a ``.sha256`` sidecar. Partials are what an
unfinished run leaves: ``NAME.partial`` files and ``NAME.partial.d`` work directories locally
(live while their run holds their lock), ``NAME.partial`` objects on a destination (live while
the local ``NAME.partial`` of the uploading run is). ``backup.list`` prints this.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.backup import manifest
from tasks.backup.files import is_live
from tasks.backup.names import BackupName, parse_name
from tasks.backup.source import Source, Untrusted, open_source
from tasks.backup.stream import human
from tasks.core.errors import ConfigError
from tasks.core.settings import load


@dataclass
class Item:
    """One backup file (or partial) at one place."""

    name: str
    size: int
    mtime: datetime
    has_sidecar: bool = False
    parsed: BackupName | None = None
    live: bool = False
    path: Path | None = None  # local files


@dataclass
class BackupSet:
    main: Item
    companions: list[Item] = field(default_factory=list)

    @property
    def parsed(self) -> BackupName:
        assert self.main.parsed is not None  # nosec B101 - sets are built from parsed names
        return self.main.parsed

    @property
    def files(self) -> list[Item]:
        return [*self.companions, self.main]


@dataclass
class Catalog:
    where: str  # "local" or a destination name
    sets: list[BackupSet]  # newest first
    partials: list[Item]


PARTIAL_SUFFIXES = (".partial", ".partial.d")


def partial_base(name: str) -> str | None:
    """The backup name an unfinished file belongs to (``X.sql.gz.partial`` -> ``X.sql.gz``)."""
    for suffix in PARTIAL_SUFFIXES:
        if name.endswith(suffix):
            base = re.sub(r"\.(verify|restore|from)-[A-Za-z0-9_-]+$", "", name[: -len(suffix)])
            return base.removesuffix(".sha256")
    return None


def build(
    where: str,
    entries: list[tuple[str, int, datetime, bool]],
    live: Callable[[str, bool], bool],
    local_dir: Path | None = None,
) -> Catalog:
    """Sets and partials from ``(name, size, mtime, is_dir)`` listings."""
    names = {name for name, _, _, _ in entries}
    by_set: dict[str, BackupSet] = {}
    companions: dict[str, list[Item]] = {}
    partials: list[Item] = []
    for name, size, mtime, is_dir in entries:
        base = partial_base(name)
        if base is not None:
            if parse_name(base) is not None:
                partials.append(
                    Item(
                        name,
                        size,
                        mtime,
                        parsed=parse_name(base),
                        live=live(name, is_dir),
                        path=local_dir / name if local_dir else None,
                    )
                )
            continue
        parsed = parse_name(name)
        if parsed is None or is_dir:
            continue
        item = Item(
            name,
            size,
            mtime,
            name + ".sha256" in names,
            parsed,
            path=local_dir / name if local_dir else None,
        )
        if parsed.is_globals:
            companions.setdefault(parsed.set_key, []).append(item)
        else:
            by_set[parsed.set_key] = BackupSet(item)
    for key, items in companions.items():
        if key in by_set:
            by_set[key].companions.extend(items)
        else:  # a companion whose dump is gone (or failed): list it on its own
            by_set[key] = BackupSet(items[0], items[1:])
    sets = sorted(by_set.values(), key=lambda s: (s.parsed.when, s.main.name), reverse=True)
    return Catalog(where, sets, sorted(partials, key=lambda p: p.name, reverse=True))


def catalog_of(source: Source) -> Catalog:
    if source.is_local:
        return local_catalog(source.out)
    entries = []
    for item in source.rclone.list():
        mtime = _parse_time(str(item.get("ModTime", "")))
        entries.append((str(item.get("Name", "")), int(item.get("Size", 0)), mtime, False))
    out = source.out

    def live(name: str, is_dir: bool) -> bool:
        return is_live(out / name)  # the uploading run's local marker

    return build(source.where, entries, live)


def local_catalog(out: Path) -> Catalog:
    entries = []
    try:
        listing = list(out.iterdir()) if out.is_dir() else []
    except OSError:
        listing = []
    for path in listing:
        try:
            info = path.lstat()
        except OSError:
            continue
        if path.is_symlink():
            continue
        size = info.st_size if not path.is_dir() else _dir_size(path)
        mtime = datetime.fromtimestamp(info.st_mtime, timezone.utc)
        entries.append((path.name, size, mtime, path.is_dir()))
    return build("local", entries, lambda name, is_dir: is_live(out / name), out)


def _dir_size(path: Path) -> int:
    from tasks.backup.stream import tree_size

    return tree_size(path)


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def select(
    catalog: Catalog, environments: list[str], env: str | None, database: str | None
) -> Catalog:
    """Only the sets and partials of one environment / target."""

    def wanted(parsed: BackupName | None) -> bool:
        if parsed is None:
            return False
        got_env, got_key = parsed.split(environments)
        return (env is None or got_env == env) and (database is None or got_key == database)

    return Catalog(
        catalog.where,
        [s for s in catalog.sets if wanted(s.main.parsed)],
        [p for p in catalog.partials if wanted(p.parsed)],
    )


def check_env(c: Context, env: str | None, flag: str = "--env") -> list[str]:
    """The configured environment names; ``env`` (if given) must be one of them."""
    names = sorted(load(c, "environments"))
    if env is not None and env not in names:
        raise ConfigError(f"{flag}: {env!r} is not valid; valid: {', '.join(names)}")
    return names


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def set_state(
    source: Source, states: dict[str, manifest.FileState], item: Item, check: bool
) -> str:
    if check:
        try:
            expected = source.expected_sha256(item.name)
        except Untrusted as exc:
            return exc.state
        if expected is None:
            return "missing"
        return "ok" if source.sha256(item.name) == expected else "MISMATCH"
    if not item.has_sidecar:
        return "missing"
    state = states.get(item.name)
    if state is not None and source.where in state.verified:
        return "verified" if state.verified[source.where] else "FAILED verify"
    if not source.is_local and state is not None and state.confirmed_at(source.where):
        return "verified"  # size and sha256 were confirmed there when it was uploaded
    return "sidecar"


def list_backups(
    c: Context,
    *,
    env: str | None,
    database: str | None,
    output_dir: Any,
    check: bool,
    source: str | None,
) -> None:
    """List backups newest first: size, age, state; partials as running or FAILED."""
    settings = load(c, "backup")
    environments = check_env(c, env)
    opened = open_source(c, settings, source, output_dir)
    try:
        catalog = select(catalog_of(opened), environments, env, database)
        states = manifest.by_file(manifest.read(opened.out / settings.manifest))
        now = datetime.now(timezone.utc)
        for backup_set in catalog.sets:
            item = backup_set.main
            state = set_state(opened, states, item, check)
            extra = ""
            if backup_set.companions:
                bad = [set_state(opened, states, x, check) for x in backup_set.companions]
                extra = " +globals" + (
                    ""
                    if all(b in ("ok", "verified", "sidecar") for b in bad)
                    else f" ({', '.join(bad)})"
                )
            when = (now - backup_set.parsed.when).total_seconds()
            print(f"{item.name}\t{human(item.size)}\t{age(when)}\t{state}{extra}")
        for partial in catalog.partials:
            when = (now - partial.mtime).total_seconds()
            state = "running" if partial.live else "FAILED (stale partial; backup.prune removes it)"
            print(f"{partial.name}\t{human(partial.size)}\t{age(when)}\t{state}")
    finally:
        opened.close()
