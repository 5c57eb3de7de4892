"""Fixtures for setup/dev: a throwaway copy of the project with free ports, driven by ``inv``.

The copy lives in a fresh 0755 directory under the system temp dir (pytest's own tmp dirs are
0700, which the ``postgres`` system user could not traverse), so the repo's own .flowlet is
never touched. Every process the tests start is stopped, and swept from /proc, at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import free_port

from tasks.dev import procs

REPO = Path(__file__).resolve().parent.parent


@dataclass
class DevProject:
    root: Path
    ports: dict[str, int]
    config: Path
    pgids: set[int] = field(default_factory=set)

    def inv(
        self, *argv: str, config: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["inv", "-f", str(config or self.config), *argv],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.remember_groups()
        return result

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["inv", "-f", str(self.config), *argv],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def records(self) -> list[procs.Record]:
        return procs.read_records(self.root / ".flowlet" / "run")

    def remember_groups(self) -> None:
        self.pgids |= {r.pgid for r in self.records()}

    def leftovers(self) -> list[int]:
        return [pid for pgid in sorted(self.pgids) for pid in procs.group_members(pgid)]

    def write_config(self, name: str, extra: str = "") -> Path:
        path = self.root / name
        path.write_text(
            "environments:\n  development:\n    databases:\n      postgres:\n"
            f"        port: {self.ports['db']}\n"
            "dev:\n  ready_timeout: 20\n  stop_grace: 5\n  processes:\n"
            f"    backend:\n      port: {self.ports['backend']}\n"
            f"    frontend:\n      port: {self.ports['frontend']}\n" + extra
        )
        return path


def copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "node_modules", ".flowlet", "*.pyc")
    shutil.copytree(REPO / "tasks", dest / "tasks", ignore=ignore)
    for name in ("tasks.py", "invoke.yaml", ".env.template"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "examples", dest / "examples", ignore=ignore)
    modules = REPO / "examples" / "frontend" / "node_modules"
    if modules.is_dir():
        (dest / "examples" / "frontend" / "node_modules").symlink_to(modules)


@pytest.fixture(scope="module")
def dev_project() -> Iterator[DevProject]:
    """A project copy (not yet set up) with free ports in ``flowlet-test.yaml``."""
    root = Path(tempfile.mkdtemp(prefix="flowlet-dev-"))
    root.chmod(0o755)
    copy_project(root)
    ports = {"db": free_port(), "backend": free_port(), "frontend": free_port()}
    project = DevProject(root=root, ports=ports, config=root / "flowlet-test.yaml")
    project.write_config("flowlet-test.yaml")
    try:
        yield project
    finally:
        project.remember_groups()
        subprocess.run(
            ["inv", "-f", str(project.config), "dev.stop"], cwd=root, capture_output=True
        )
        for pgid in project.pgids:
            if procs.group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)
