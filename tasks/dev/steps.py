"""A setup step: what it checked, and what it will do (``action``) when something is missing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Step:
    """One idempotent step: ``action`` is None when the thing is in place already."""

    name: str
    detail: str
    action: Callable[[], None] | None = None
