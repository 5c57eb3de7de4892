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

# Imported by the task bodies only. A new collection keeps its bodies out of this set too.
BODY_ONLY = {"tasks.environments", "tasks.kube", "tasks.runner", "tasks.sshremote"}
BODY_SUFFIXES = (".flows", ".execute", ".plan", ".config", ".settings", ".workloads")


def test_loading_the_collection_imports_only_the_task_definitions() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LOAD], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(out)
    assert {"tasks.deploy", "tasks.dev", "tasks.lint", "tasks.monitoring"} <= set(loaded)
    assert sorted(BODY_ONLY & set(loaded)) == []
    assert [m for m in loaded if m.endswith(BODY_SUFFIXES)] == []
