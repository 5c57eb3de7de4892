"""Every task is one definition with a docstring (its inv --list line) and help for every flag,
and runs inside the boundary (an OpsTask)."""

from __future__ import annotations

import pytest
from conftest import ROOT_NS

from tasks.core.task import OpsTask


def _tasks() -> list[tuple[str, OpsTask]]:
    found = []
    for name in ROOT_NS.task_names:
        found.append((name, ROOT_NS[name]))
    return found


TASKS = _tasks()


@pytest.mark.parametrize("name,task", TASKS, ids=[n for n, _ in TASKS])
def test_task_has_docstring_help_for_every_flag_and_the_boundary(name: str, task: OpsTask) -> None:
    assert isinstance(task, OpsTask), f"{name} is not defined with tasks.core.task.task"
    assert (task.__doc__ or "").strip(), f"{name} has no docstring"
    arguments = task.get_arguments()
    missing = [a.name for a in arguments if not (a.help or "").strip()]
    assert not missing, f"{name}: flags without help= {missing}"
