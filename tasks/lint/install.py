"""Getting the tools: where they live, their pinned versions, installing the missing ones.

Python tools live in the active virtualenv (``$VIRTUAL_ENV``, else the environment running
``inv``) and are pinned in pyproject.toml's ``lint`` extra; ESLint and Prettier live in the
frontend's node_modules and are pinned by its package.json / package-lock.json. Presence is
a file check, so with every tool installed nothing here touches the network.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core import runner
from tasks.core.errors import OpsError
from tasks.lint.tools import Tool

LIBRARY_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_PIN = re.compile(r"""["']\s*([A-Za-z0-9_.\-]+)\s*==\s*([^"';\s]+)\s*["']""")


@dataclass(frozen=True)
class PythonEnv:
    """The virtualenv holding the Python tools."""

    bin_dir: Path
    python: Path


def python_env(environ: dict[str, str] | None = None) -> PythonEnv:
    """``$VIRTUAL_ENV`` when one is active, else the environment of this interpreter."""
    env = os.environ if environ is None else environ
    venv = env.get("VIRTUAL_ENV", "")
    if venv:
        bin_dir = Path(venv) / ("Scripts" if os.name == "nt" else "bin")
        return PythonEnv(bin_dir, bin_dir / ("python.exe" if os.name == "nt" else "python"))
    import sysconfig  # only when linting: `inv --list` stays light

    return PythonEnv(Path(sysconfig.get_path("scripts")), Path(sys.executable))


def lint_pins(pyproject_text: str) -> dict[str, str]:
    """``{package: version}`` from the ``lint = [...]`` extra of a pyproject.toml."""
    match = re.search(r"^lint\s*=\s*\[(.*?)\]", pyproject_text, re.MULTILINE | re.DOTALL)
    if not match:
        return {}
    return {name.lower(): version for name, version in _PIN.findall(match.group(1))}


def find_pins(root: Path) -> dict[str, str]:
    """Pins from the project's pyproject.toml, else from this library's own."""
    for candidate in (root / "pyproject.toml", LIBRARY_PYPROJECT):
        if candidate.is_file():
            pins = lint_pins(candidate.read_text(encoding="utf-8"))
            if pins:
                return pins
    return {}


def binary_path(tool: Tool, env: PythonEnv, frontend: Path) -> Path:
    if tool.side == "python":
        return env.bin_dir / tool.binary
    return frontend / "node_modules" / ".bin" / tool.binary


def missing(tools: Sequence[Tool], env: PythonEnv, frontend: Path) -> list[Tool]:
    return [t for t in tools if not os.access(binary_path(t, env, frontend), os.X_OK)]


def plan_pip_install(tools: Sequence[Tool], pins: dict[str, str], env: PythonEnv) -> list[str]:
    """``pip install`` of the pinned versions into ``env`` (pip's ``--python`` for another env)."""
    specs = sorted(
        {f"{t.package}=={pins[t.package]}" if t.package in pins else t.package for t in tools}
    )
    target = [] if env.python == Path(sys.executable) else ["--python", str(env.python)]
    return [sys.executable, "-m", "pip", *target, "install", *specs]


def plan_npm_install(frontend: Path) -> list[str]:
    """``npm ci`` when a lockfile pins the tree, else ``npm install``; run in ``frontend``."""
    verb = "ci" if (frontend / "package-lock.json").is_file() else "install"
    return ["npm", verb, "--no-audit", "--no-fund", "--no-update-notifier"]


def ensure_tools(
    c: Any, chosen: Sequence[Tool], env: PythonEnv, frontend: Path, project: Path
) -> None:
    """Install missing tools (pinned), saying what; nothing happens when all are present."""
    absent = missing(chosen, env, frontend)
    python_side = [t for t in absent if t.side == "python"]
    if python_side:
        argv = plan_pip_install(python_side, find_pins(project), env)
        names = ", ".join(sorted({t.package for t in python_side}))
        print(f"lint: {names} missing from {env.bin_dir}: installing: {runner.render(argv)}")
        runner.run(c, argv, warn=True, in_stream=False)
    if any(t.side == "js" for t in absent):
        if not (frontend / "package.json").is_file():
            raise OpsError(
                f"lint.frontend: no package.json in {frontend} to install ESLint/Prettier"
            )
        argv = plan_npm_install(frontend)
        names = ", ".join(t.package for t in absent if t.side == "js")
        print(
            f"lint: {names} missing from {frontend}/node_modules: installing: "
            f"{runner.render(argv)} (in {frontend})"
        )
        with c.cd(str(frontend)):
            runner.run(c, argv, warn=True, in_stream=False)
