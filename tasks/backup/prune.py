"""``backup.prune``: apply backup.retention per environment and target, locally or on a
destination (``--from``); never the newest verified set; remove stale partials.

"Verified" locally: the file's sha256 matches its sidecar (checked newest first until one
does). On a destination: the manifest confirms that copy (its upload was size+sha256-checked
there, or ``backup.verify --from`` passed) and the object still has the recorded size; without
such a record the objects' sha256 is computed there, newest first, until one matches the sha256
the local manifest recorded for it (an object it does not know protects nothing).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from invoke import Context

from tasks.backup import manifest
from tasks.backup.catalog import BackupSet, Source, catalog_of, check_env, open_source, select
from tasks.backup.retention import plan_retention
from tasks.backup.signing import SIG_SUFFIX
from tasks.backup.source import Untrusted
from tasks.core.runner import is_dry
from tasks.core.settings import load


def is_verified(
    source: Source, states: dict[str, manifest.FileState], backup_set: BackupSet
) -> bool:
    main = backup_set.main
    if not main.has_sidecar:
        return False
    state = states.get(main.name)
    if not source.is_local and state is not None and state.confirmed_at(source.where):
        return int(state.record.get("bytes", -1)) == main.size
    try:
        expected = source.expected_sha256(main.name)
    except Untrusted:  # nothing vouches for it: it protects nothing
        return False
    return expected is not None and source.sha256(main.name) == expected


def prune(
    c: Context, *, env: str | None, database: str | None, output_dir: Any, source: str | None
) -> None:
    settings = load(c, "backup")
    environments = check_env(c, env)
    dry = is_dry(c)
    verb = "would delete" if dry else "deleted"
    opened = open_source(c, settings, source, output_dir)
    try:
        catalog = select(catalog_of(opened), environments, env, database)
        states = manifest.by_file(manifest.read(opened.out / settings.manifest))
        groups: dict[tuple[str, str], list[BackupSet]] = {}
        for backup_set in catalog.sets:
            groups.setdefault(backup_set.parsed.split(environments), []).append(backup_set)
        rules = settings.retention
        for (group_env, key), sets in sorted(groups.items()):
            protect = next((s.main.name for s in sets if is_verified(opened, states, s)), None)
            keep, delete = plan_retention(
                [(s.main.name, s.parsed.when) for s in sets],
                keep_last=rules.keep_last,
                daily=rules.daily,
                weekly=rules.weekly,
                now=datetime.now(timezone.utc),
                protect=protect,
            )
            doomed = set(delete)
            for backup_set in sets:
                if backup_set.main.name not in doomed:
                    continue
                for item in backup_set.files:
                    if not dry:
                        opened.delete(item.name)
                        opened.delete(item.name + ".sha256")
                        opened.delete(item.name + SIG_SUFFIX)
                    print(f"{verb} {opened.label(item.name)}")
            print(f"{group_env}/{key} at {opened.where}: keeping {len(keep)}, {verb} {len(delete)}")
        stale = [p for p in catalog.partials if not p.live]
        for partial in stale:
            if not dry:
                opened.delete(partial.name)
            print(f"{verb} stale partial {opened.label(partial.name)}")
    finally:
        opened.close()
