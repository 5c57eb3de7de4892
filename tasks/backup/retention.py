"""Pure retention: which backups to keep (last N, one a day for D days, one a week for W weeks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta


def plan_retention(
    backups: Sequence[tuple[str, datetime]],
    *,
    keep_last: int,
    daily: int,
    weekly: int,
    now: datetime,
    protect: str | None = None,
) -> tuple[list[str], list[str]]:
    """Return ``(keep, delete)`` names, newest first.

    keep_last: the N newest. daily: the newest backup of each of the last D calendar days
    (UTC, today included). weekly: the newest of each of the last W ISO weeks (this week
    included). ``protect`` (the newest verified backup) is always kept. With every rule at
    0 nothing but ``protect`` would remain, so at least the newest backup is always kept.
    """
    ordered = sorted(backups, key=lambda item: item[1], reverse=True)
    keep: set[str] = {name for name, _ in ordered[:keep_last]}
    today = now.date()
    days = {today - timedelta(days=i) for i in range(daily)}
    this_monday = today - timedelta(days=today.weekday())
    weeks = {this_monday - timedelta(weeks=i) for i in range(weekly)}
    seen_days: set[object] = set()
    seen_weeks: set[object] = set()
    for name, when in ordered:
        day = when.date()
        if day in days and day not in seen_days:
            seen_days.add(day)
            keep.add(name)
        monday = day - timedelta(days=day.weekday())
        if monday in weeks and monday not in seen_weeks:
            seen_weeks.add(monday)
            keep.add(name)
    if protect is not None:
        keep.add(protect)
    if ordered and not keep:
        keep.add(ordered[0][0])
    return (
        [name for name, _ in ordered if name in keep],
        [name for name, _ in ordered if name not in keep],
    )


def retention_rules(raw: Mapping[str, int]) -> dict[str, int]:
    return {key: int(raw.get(key, 0)) for key in ("keep_last", "daily", "weekly")}
