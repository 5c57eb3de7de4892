"""What backups exist where: the local directory or a destination, as backup sets and partials.

A backup set is the files sharing ``ENV-TARGET-STAMP``: the dump and (postgres ``--globals``)
its ``.globals.sql`` companion, each with a ``.sha256`` sidecar. Partials are what an
unfinished run leaves: ``NAME.partial`` files and ``NAME.partial.d`` work directories locally
(live while their run holds their lock), ``NAME.partial`` objects on a destination (live while
the local ``NAME.partial`` of the uploading run is). ``backup.list`` prints this.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from invoke import Context

from tasks.backup import manifest
from tasks.backup.files import is_live, parse_sidecar, read_sidecar, sha256_file
from tasks.backup.plan import BackupName, parse_name
from tasks.backup.stream import human
from tasks.core.errors import ConfigError, OpsError
from tasks.core.settings import Settings, load


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


class Source:
    """Where backups are read from: the local directory or a destination (``--from``)."""

    def __init__(self, where: str, out: Path, rclone: Any = None) -> None:
        self.where = where
        self.out = out
        self.rclone = rclone

    @property
    def is_local(self) -> bool:
        return self.rclone is None

    def label(self, name: str) -> str:
        return str(self.out / name) if self.is_local else self.rclone.dest.join(name)

    def expected_sha256(self, name: str) -> str | None:
        if self.is_local:
            return read_sidecar(self.out / name)
        data = self.rclone.read_small(name + ".sha256")
        return parse_sidecar(data.decode("utf-8", "replace")) if data is not None else None

    def sha256(self, name: str) -> str:
        return sha256_file(self.out / name) if self.is_local else str(self.rclone.sha256(name))

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """The file's bytes as a stream (``rclone cat`` for a destination)."""
        if self.is_local:
            with open(self.out / name, "rb") as handle:
                yield handle
            return
        with tempfile.TemporaryFile() as log:
            proc = self.rclone.cat(name, log)
            assert proc.stdout is not None  # nosec B101 - PIPE
            try:
                yield proc.stdout
            finally:
                from tasks.core.runner import stop_group

                proc.stdout.close()
                if proc.poll() is None:
                    try:
                        proc.wait(timeout=600)
                    except subprocess.TimeoutExpired:
                        stop_group(proc)
            if proc.returncode != 0:
                log.seek(0)
                lines = log.read().decode("utf-8", "replace").strip().splitlines()
                raise OpsError(f"{self.where}: reading {name} failed: "
                               f"{lines[-1] if lines else 'rclone exit ' + str(proc.returncode)}")

    def delete(self, name: str) -> None:
        if self.is_local:
            import shutil

            path = self.out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        else:
            self.rclone.delete(name)

    def close(self) -> None:
        if self.rclone is not None:
            self.rclone.close()


def open_source(c: Context, settings: Settings, source: str | None,
                output_dir: Any = None) -> Source:  # fmt: skip
    out = output_dir or settings.output_dir
    if source is None:
        return Source("local", out)
    from tasks.backup.offsite import Rclone, resolve_destination
    from tasks.backup.settings import NAME
    from tasks.core.settings import flag

    source = flag(NAME, source, "--from")
    dest = resolve_destination(settings, source, flag="--from")
    return Source(dest.name, out, Rclone(dest).start())


PARTIAL_SUFFIXES = (".partial", ".partial.d")


def partial_base(name: str) -> str | None:
    """The backup name an unfinished file belongs to (``X.sql.gz.partial`` -> ``X.sql.gz``)."""
    for suffix in PARTIAL_SUFFIXES:
        if name.endswith(suffix):
            base = re.sub(r"\.(verify|restore|from)-[A-Za-z0-9_-]+$", "", name[: -len(suffix)])
            return base.removesuffix(".sha256")
    return None


def build(where: str, entries: list[tuple[str, int, datetime, bool]],
          live: Callable[[str, bool], bool], local_dir: Path | None = None) -> Catalog:  # fmt: skip
    """Sets and partials from ``(name, size, mtime, is_dir)`` listings."""
    names = {name for name, _, _, _ in entries}
    by_set: dict[str, BackupSet] = {}
    companions: dict[str, list[Item]] = {}
    partials: list[Item] = []
    for name, size, mtime, is_dir in entries:
        base = partial_base(name)
        if base is not None:
            if parse_name(base) is not None:
                partials.append(Item(name, size, mtime, parsed=parse_name(base),
                                     live=live(name, is_dir),
                                     path=local_dir / name if local_dir else None))  # fmt: skip
            continue
        parsed = parse_name(name)
        if parsed is None or is_dir:
            continue
        item = Item(name, size, mtime, name + ".sha256" in names, parsed,
                    path=local_dir / name if local_dir else None)  # fmt: skip
        if parsed.is_globals:
            companions.setdefault(parsed.set_key, []).append(item)
        else:
            by_set[parsed.set_key] = BackupSet(item)
    for key, items in companions.items():
        if key in by_set:
            by_set[key].companions.extend(items)
        else:  # a companion whose dump is gone (or failed): list it on its own
            by_set[key] = BackupSet(items[0], items[1:])
    sets = sorted(by_set.values(), key=lambda s: (s.parsed.stamp, s.main.name), reverse=True)
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


def select(catalog: Catalog, environments: list[str], env: str | None,
           database: str | None) -> Catalog:  # fmt: skip
    """Only the sets and partials of one environment / target."""

    def wanted(parsed: BackupName | None) -> bool:
        if parsed is None:
            return False
        got_env, got_key = parsed.split(environments)
        return (env is None or got_env == env) and (database is None or got_key == database)

    return Catalog(catalog.where, [s for s in catalog.sets if wanted(s.main.parsed)],
                   [p for p in catalog.partials if wanted(p.parsed)])  # fmt: skip


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


def set_state(source: Source, states: dict[str, manifest.FileState], item: Item,
              check: bool) -> str:  # fmt: skip
    if check:
        expected = source.expected_sha256(item.name)
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


def list_backups(c: Context, *, env: str | None, database: str | None, output_dir: Any,
                 check: bool, source: str | None) -> None:  # fmt: skip
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
                extra = " +globals" + ("" if all(b in ("ok", "verified", "sidecar") for b in bad)
                                       else f" ({', '.join(bad)})")  # fmt: skip
            when = (now - backup_set.parsed.when).total_seconds()
            print(f"{item.name}\t{human(item.size)}\t{age(when)}\t{state}{extra}")
        for partial in catalog.partials:
            when = (now - partial.mtime).total_seconds()
            state = "running" if partial.live else "FAILED (stale partial; backup.prune removes it)"
            print(f"{partial.name}\t{human(partial.size)}\t{age(when)}\t{state}")
    finally:
        opened.close()
