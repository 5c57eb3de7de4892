"""`inv --list` stays light: loading the root collection imports only the task definitions.

The task bodies (``*/flows.py``) and what they use (environments, kube, runner, the planners)
are imported inside the tasks; bench/startup measures the time, this guards the import set.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

LOAD = (
    "import json, sys\n"
    "from invoke.loader import FilesystemLoader\n"
    "before = set(sys.modules)\n"
    "FilesystemLoader(start='.').load('tasks')\n"
    "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith('tasks'))))\n"
)

TOPICS = ("setup", "dev", "deploy", "lint", "backup", "monitoring")
# What loading the collection may import: each topic's task definitions and schema, and the
# light core (decorator, schema kinds, strict config loading, the runner class Invoke needs).
ALLOWED = {
    "tasks",
    *(f"tasks.{t}" for t in TOPICS),
    *(f"tasks.{t}.settings" for t in TOPICS),
    "tasks.core",
    *(
        f"tasks.core.{m}"
        for m in ("errors", "settings", "task", "configload", "environments", "runner")
    ),
}


def test_loading_the_collection_imports_only_the_task_definitions() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LOAD], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(out)
    assert {f"tasks.{t}" for t in TOPICS} <= set(loaded)
    assert sorted(set(loaded) - ALLOWED) == []
