"""Fixtures for setup/dev: a throwaway copy of the project with free ports, driven by ``inv``.

The copy lives in a fresh 0755 directory under the system temp dir (pytest's own tmp dirs are
0700, which the ``postgres`` system user could not traverse), so the repo's own .flowlet is
never touched. ``node_modules`` is copied (never linked: an ``npm ci`` in the copy must not
touch the repo's). Every process of the copy -- found by its working directory or executable
under the copy, so other tests' processes are never seen -- is stopped at teardown, and a test
that leaves one behind fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, run_inv, start_inv

from tasks.dev import pidfiles, procs

REPO = Path(__file__).resolve().parent.parent
COPIED = ("tasks", "tasks.py", "invoke.yaml", ".env.template", "examples", "pyproject.toml")


def copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "node_modules", ".flowlet", "*.pyc")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, dest / name)
    if (REPO / "README.md").exists():
        shutil.copy2(REPO / "README.md", dest / "README.md")
    modules = (REPO / "examples" / "frontend" / "node_modules").resolve()
    if modules.is_dir():
        subprocess.run(
            ["cp", "-a", str(modules), str(dest / "examples" / "frontend" / "node_modules")],
            check=True,
        )


def under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(str(root) + os.sep)


def project_pids(root: Path) -> list[int]:
    """Live processes of the project copy at ``root``: cwd or executable inside it, or one of
    its paths on their command line (postgres -D ROOT/...)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        stat = procs.read_stat(pid)
        if stat is None or stat.state in ("Z", "X"):
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            cmdline = []
        args = [a.decode(errors="replace") for a in cmdline]
        if under(cwd, root) or any(under(a, root) for a in args):
            found.append(pid)
    return found


@dataclass
class DevProject:
    root: Path
    ports: dict[str, int]
    config: Path

    def argv(self, *argv: str, config: Path | None = None) -> list[str]:
        return ["-f", str(config or self.config), *argv]

    def inv(
        self, *argv: str, config: Path | None = None, timeout: float = 120, env: Any = None
    ) -> subprocess.CompletedProcess[str]:
        return run_inv(self.argv(*argv, config=config), cwd=self.root, timeout=timeout, env=env)

    def popen(self, *argv: str, config: Path | None = None, **kwargs: Any) -> subprocess.Popen[str]:
        return start_inv(self.argv(*argv, config=config), cwd=self.root, **kwargs)

    @property
    def run_dir(self) -> Path:
        return self.root / ".flowlet" / "run"

    def records(self) -> list[pidfiles.Record]:
        return pidfiles.read_records(self.run_dir)

    def state(self, name: str) -> dict[str, Any]:
        return pidfiles.read_state(self.run_dir, name)

    def leftovers(self) -> list[int]:
        return project_pids(self.root)

    def wait_for_no_leftovers(self, timeout: float = 10) -> list[int]:
        deadline = time.monotonic() + timeout
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.leftovers()

    def write_config(self, name: str, extra: str = "", dev: str = "") -> Path:
        path = self.root / name
        path.write_text(
            "environments:\n  development:\n    databases:\n      postgres:\n"
            f"        port: {self.ports['db']}\n"
            "dev:\n  ready_timeout: 20\n  stop_grace: 5\n" + dev + "  processes:\n"
            f"    backend:\n      port: {self.ports['backend']}\n"
            f"    frontend:\n      port: {self.ports['frontend']}\n" + extra
        )
        return path

    def url(self, name: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def kill_everything(self) -> None:
        for _ in range(3):
            pids = self.leftovers()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)


def make_project(prefix: str = "flowlet-dev-") -> DevProject:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    copy_project(root)
    ports = {"db": free_port(), "backend": free_port(), "frontend": free_port()}
    project = DevProject(root=root, ports=ports, config=root / "flowlet-test.yaml")
    project.write_config("flowlet-test.yaml")
    return project


def remove_project(project: DevProject) -> None:
    subprocess.run(
        ["inv", *project.argv("dev.stop")], cwd=project.root, capture_output=True, timeout=120
    )
    project.kill_everything()
    shutil.rmtree(project.root, ignore_errors=True)


@pytest.fixture(scope="module")
def dev_project() -> Iterator[DevProject]:
    """A project copy (not yet set up) with free ports in ``flowlet-test.yaml``."""
    project = make_project()
    try:
        yield project
    finally:
        remove_project(project)


@pytest.fixture
def stack_project(dev_project: DevProject) -> Iterator[DevProject]:
    """The module's project copy, set up; after the test nothing of it may still run."""
    from conftest import need

    need("node", "npm", "initdb", "runuser")
    if not (dev_project.root / ".flowlet" / "postgres" / "PG_VERSION").exists():
        result = dev_project.inv("setup", "--env", "development")
        assert result.returncode == 0, result.stdout + result.stderr
    yield dev_project
    dev_project.inv("dev.stop")
    left = dev_project.wait_for_no_leftovers()
    dev_project.kill_everything()
    assert left == [], f"processes of the test project left running: {left}"
