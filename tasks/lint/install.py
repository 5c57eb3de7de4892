"""Getting the tools: where they live, their pinned versions, installing the missing ones.

Python tools live in the active virtualenv (``$VIRTUAL_ENV``, else the environment running
``inv``) and are pinned in pyproject.toml's ``lint`` extra; ESLint and Prettier live in the
frontend's node_modules and are pinned by its package.json / package-lock.json. Presence is
a file check, so with every tool installed nothing here touches the network.

An install is authenticated (README "lint": what an auto-install may fetch): pip installs the
missing tools and their dependencies only from the hashed lock :data:`LOCK_NAME`
(``--require-hashes``: an archive whose sha256 is not in the lock is refused by pip), and npm
only runs ``npm ci`` from the frontend's lockfile, with ``--ignore-scripts``. Without a lock
(or with pins the lock disagrees with) nothing is installed: one line says what to run.
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
from tasks.core.errors import OpsError, Refused
from tasks.lint.tools import Tool

LIBRARY_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
LOCK_NAME = "requirements-lint.txt"
LIBRARY_LOCK = Path(__file__).resolve().parent / LOCK_NAME
NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json")
_PIN = re.compile(r"""["']\s*([A-Za-z0-9_.\-]+)\s*==\s*([^"';\s]+)\s*["']""")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;\\]+)")


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


def script_python(console_script: Path, fallback: Path) -> Path:
    """The interpreter a console script runs with (its ``#!`` line): the one that has the
    package installed; ``fallback`` when the line names no interpreter file."""
    try:
        with open(console_script, "rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return fallback
    words = first[2:].split() if first.startswith("#!") else []
    if len(words) == 1 and os.path.isabs(words[0]) and os.access(words[0], os.X_OK):
        return Path(words[0])
    return fallback


def missing(tools: Sequence[Tool], env: PythonEnv, frontend: Path) -> list[Tool]:
    return [t for t in tools if not os.access(binary_path(t, env, frontend), os.X_OK)]


def canonical(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Locked:
    """One requirement of the hashed lock: its lines, as written, and who needs it."""

    name: str
    version: str
    text: str
    needed_by: tuple[str, ...]  # empty: a tool itself


def parse_lock(text: str) -> dict[str, Locked]:
    """The requirements of a ``uv pip compile --generate-hashes --annotation-style line``
    file: ``name==version`` (marker), its ``--hash`` lines and its ``# via`` line."""
    found: dict[str, Locked] = {}
    block: list[str] = []

    def close() -> None:
        if not block:
            return
        match = _REQUIREMENT.match(block[0])
        if match is None:
            raise OpsError(f"{LOCK_NAME}: not a pinned requirement: {block[0]!r}")
        via: tuple[str, ...] = ()
        for line in block[1:]:
            comment = line.strip()
            if comment.startswith("# via "):
                names = comment[len("# via ") :].split(",")
                via = tuple(canonical(n.strip()) for n in names if not n.strip().startswith("-"))
        text = "".join(line for line in block if not line.lstrip().startswith("#"))
        name = canonical(match.group(1))
        found[name] = Locked(name, match.group(2), text, via)
        block.clear()

    for line in text.splitlines(keepends=True):
        if not line.strip() or (line.startswith("#") and not block):
            continue
        if not line[0].isspace() and not line.startswith("#"):
            close()
        block.append(line)
    close()
    return found


def lock_path(root: Path) -> Path:
    """The project's own lock (``requirements-lint.txt`` at its root), else this library's."""
    own = root / LOCK_NAME
    return own if own.is_file() else LIBRARY_LOCK


def closure(lock: dict[str, Locked], packages: Sequence[str]) -> list[Locked]:
    """``packages`` and every locked requirement one of them needs, in the lock's order."""
    chosen = {canonical(p) for p in packages}
    grew = True
    while grew:
        grew = False
        for entry in lock.values():
            if entry.name not in chosen and chosen.intersection(entry.needed_by):
                chosen.add(entry.name)
                grew = True
    return [entry for entry in lock.values() if entry.name in chosen]


@dataclass(frozen=True)
class PipInstall:
    """What installing the missing Python tools runs: ``argv`` reads ``requirements`` (the
    lock's lines for them and their dependencies, hashes included) from ``path``."""

    argv: list[str]
    requirements: str
    path: Path


def plan_pip_install(
    tools: Sequence[Tool],
    pins: dict[str, str],
    lock_text: str,
    lock_file: Path,
    env: PythonEnv,
    path: Path,
) -> PipInstall:
    """``pip install --require-hashes`` of the missing tools from the hashed lock into ``env``
    (pip's ``--python`` for another env); refused when the lock lacks a tool or locks another
    version than the project pins."""
    lock = parse_lock(lock_text)
    wanted = sorted({canonical(t.package) for t in tools})
    for name in wanted:
        entry = lock.get(name)
        if entry is None:
            raise Refused(
                f"lint: {name} is missing and {lock_file} has no hashes for it: add it "
                f"(see the file's header) or install it yourself"
            )
        pin = pins.get(name)
        if pin is not None and pin != entry.version:
            raise Refused(
                f"lint: {name} is missing and pyproject.toml pins {name}=={pin} but "
                f"{lock_file} locks {name}=={entry.version}: regenerate the lock (see its header)"
            )
    requirements = "".join(entry.text for entry in closure(lock, wanted))
    target = [] if env.python == Path(sys.executable) else ["--python", str(env.python)]
    argv = [
        sys.executable, "-m", "pip", *target, "install", "--require-hashes",
        "--only-binary", ":all:", "--no-input", "-r", str(path),
    ]  # fmt: skip
    return PipInstall(argv, requirements, path)


def plan_npm_install(frontend: Path) -> list[str]:
    """``npm ci`` from the frontend's lockfile, install scripts off; run in ``frontend``.
    Without a lockfile nothing is installed (``npm install`` would resolve versions anew)."""
    if not any((frontend / name).is_file() for name in NPM_LOCKS):
        raise Refused(
            f"lint: ESLint/Prettier are missing and {frontend} has no package-lock.json: "
            f"run `npm install --package-lock-only` there, review and commit the lockfile "
            f"(lint installs only with `npm ci` from it)"
        )
    return ["npm", "ci", "--no-audit", "--no-fund", "--no-update-notifier", "--ignore-scripts"]


def ensure_tools(
    c: Any, chosen: Sequence[Tool], env: PythonEnv, frontend: Path, project: Path
) -> None:
    """Install missing tools (pinned), saying what; nothing happens when all are present."""
    absent = missing(chosen, env, frontend)
    python_side = [t for t in absent if t.side == "python"]
    if python_side:
        from tasks.core import secrets

        lock_file = lock_path(project)
        try:
            lock_text = lock_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise OpsError(f"lint: cannot read {lock_file}: {exc.strerror or exc}") from None
        install = plan_pip_install(
            python_side, find_pins(project), lock_text, lock_file, env,
            secrets.run_dir() / LOCK_NAME,
        )  # fmt: skip
        names = ", ".join(sorted({t.package for t in python_side}))
        print(
            f"lint: {names} missing from {env.bin_dir}: installing (hashes from {lock_file}): "
            f"{runner.render(install.argv)}"
        )
        if not runner.is_dry(c):
            install.path.write_text(install.requirements, encoding="utf-8")
        runner.run(c, install.argv, warn=True, in_stream=False)
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
