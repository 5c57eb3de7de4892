"""The one step type of every plan, and the ``==> N. title`` progress lines.

A plan is a list of :class:`Step`: pure planners build it, ``--dry`` prints it, tests assert
it, and the topic's execution module runs it through :mod:`tasks.core.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.core.runner import render


@dataclass(frozen=True)
class Step:
    """One thing a plan does.

    ``argv``: the command (None for a step that is not one command, e.g. a check done in
    Python); ``stdin``: text fed to it (a manifest, never a secret); ``pipe_from_previous``: it
    reads the previous step's stdout instead; ``detail``: a line shown under the title;
    ``tags``: topic-specific markers (e.g. ``"only-if-secret-missing"``).
    """

    title: str
    argv: tuple[str, ...] | None = None
    stdin: str | None = None
    pipe_from_previous: bool = False
    detail: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)
    data: Any = None

    def describe(self) -> str:
        """The step as ``--dry`` prints it (the command, and what feeds its stdin)."""
        if self.argv is None:
            return self.detail
        command = render(self.argv)
        if self.pipe_from_previous:
            return f"| {command}"
        if self.stdin is not None:
            return f"{command} <<EOF (manifest on stdin)"
        return command


class Progress:
    """Prints ``==> N. title`` as each step starts, and indented notes under it."""

    def __init__(self) -> None:
        self.number = 0

    def __call__(self, title: str) -> None:
        self.number += 1
        print(f"==> {self.number}. {title}", flush=True)

    @staticmethod
    def note(text: str) -> None:
        print(f"    {text}", flush=True)
