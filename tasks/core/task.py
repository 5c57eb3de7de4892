"""The task decorator: one definition per task, its body inside the error boundary.

``@task`` is Invoke's decorator with :class:`OpsTask` as the class. Flags whose values need
more than text or a boolean (numbers, choices, durations) are declared as text (default
``None``) and listed in ``flags={"level": "backup.level"}``: the schema kind of that key (or a
kind given directly) converts and checks the value before the body runs, so ``--level abc`` is
one line naming ``--level``, never a traceback. The body runs inside
:func:`tasks.core.boundary.guarded`. This module stays light: ``inv --list`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from invoke import Task
from invoke import task as invoke_task


class OpsTask(Task):  # type: ignore[type-arg]
    """An Invoke task whose body runs inside the boundary, with schema-converted flags."""

    def __init__(self, body: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.flag_kinds: Mapping[str, Any] = dict(kwargs.pop("flags", None) or {})
        super().__init__(body, *args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> OpsTask:
        """A shallow copy: a task does not change once defined (Invoke deep-copies every task of
        every sub-collection at each start, which made ``inv --list`` slower)."""
        import copy

        return copy.copy(self)

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> Any:
        """Invoke's arguments, leaving ``help`` intact (Invoke pops its entries as it goes, so a
        second parse in the same process -- in-process tests, shared copies -- lost them)."""
        saved = dict(self.help)
        try:
            return super().get_arguments(ignore_unknown_help=ignore_unknown_help)
        finally:
            self.help = saved

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from tasks.core.boundary import guarded

        def body() -> Any:
            if self.flag_kinds:
                from tasks.core.settings import flag

                for name, kind in self.flag_kinds.items():
                    if name in kwargs:
                        kwargs[name] = flag(kind, kwargs[name], "--" + name.replace("_", "-"))
            return Task.__call__(self, *args, **kwargs)

        return guarded(self.name, args[0] if args else None, body)


def task(*args: Any, **kwargs: Any) -> Any:
    """``invoke.task`` making an :class:`OpsTask` (takes ``flags=`` besides Invoke's options)."""
    kwargs.setdefault("klass", OpsTask)
    return invoke_task(*args, **kwargs)
