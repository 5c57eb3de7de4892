"""``inv setup --env development``: each step checks first and acts only when needed."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from invoke import Context
from tasks.core.errors import OpsError

from tasks.core import runner, settings
from tasks.dev import postgres
from tasks.dev.config import LocalStack, load_stack
from tasks.dev.steps import Step

DEV_START_SCRIPT = """#!/bin/sh
# Replaces the old start.sh: starts the local stack (see `inv --help dev.start`).
cd "$(dirname "$0")" || exit 1
exec inv dev.start "$@"
"""

INSTALL_HINTS = {
    "node": "install Node.js 20 (apt-get install nodejs)",
    "npm": "install npm (apt-get install npm, or Node.js from nodesource)",
}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def backend_step(c: Context, requirements: Path) -> Step:
    from tasks.dev.deps import requirement_lines, unmet_requirements

    unmet = unmet_requirements(requirement_lines(requirements.read_text()))
    if not unmet:
        return Step("backend dependencies", f"{requirements.name} already satisfied")
    argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    argv += ["-r", str(requirements)]

    def install() -> None:
        runner.run(c, argv)

    return Step("backend dependencies", f"pip install ({', '.join(unmet)})", install)


def frontend_step(c: Context, frontend: Path, stamp: Path) -> Step | None:
    from tasks.dev.deps import lock_digest, node_modules_current

    lock = frontend / "package-lock.json"
    if not lock.exists():
        return None
    current, why = node_modules_current(frontend, stamp)
    if current:
        if not runner.is_dry(c):
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(lock_digest(lock.read_bytes()) + "\n")
        return Step("frontend dependencies", f"node_modules {why}")

    def install() -> None:
        with c.cd(str(frontend)):
            runner.run(c, ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"])
        if not runner.is_dry(c):
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(lock_digest(lock.read_bytes()) + "\n")

    return Step("frontend dependencies", f"npm ci ({why})", install)


def env_step(c: Context, stack: LocalStack, template: Path) -> tuple[Step, dict[str, str]]:
    """The .env.local step and the values the file will hold after it."""
    import secrets

    from tasks.dev.envfile import merge_env, missing_values, parse_env

    existing = stack.env_file.read_text() if stack.env_file.exists() else None
    text, added = merge_env(existing, template.read_text(), lambda: secrets.token_urlsafe(32))
    values = parse_env(text)
    password_key = stack.database.password_env
    if missing_values(values, [password_key]):
        raise OpsError(
            f"{stack.env_file.name}: {password_key} is missing or empty; set a password "
            f"or delete the line so setup generates one"
        )
    loose = existing is not None and (stack.env_file.stat().st_mode & 0o777) != 0o600
    name = stack.env_file.name
    if existing is not None and not added and not loose:
        return Step(name, "up to date (no key missing; values left as they are)"), values
    what = f"add {', '.join(added)}" if added else "set mode 0600"
    if existing is None:
        what = f"create from {template.name} with generated secrets (mode 0600)"

    def write() -> None:
        if not runner.is_dry(c):
            stack.env_file.parent.mkdir(parents=True, exist_ok=True)
            _write_private(stack.env_file, text)

    return Step(name, what, write), values


def script_step(c: Context, path: Path) -> Step:
    if path.exists() and path.read_text() == DEV_START_SCRIPT and os.access(path, os.X_OK):
        return Step(path.name, "up to date")

    def write() -> None:
        if not runner.is_dry(c):
            path.write_text(DEV_START_SCRIPT)
            path.chmod(0o755)

    return Step(path.name, "write (runs inv dev.start)", write)


def check_prerequisites(stack: LocalStack, frontend: Path) -> None:
    if (frontend / "package.json").exists():
        runner.require_tools({k: v for k, v in INSTALL_HINTS.items()})
    for binary in ("initdb", "postgres", "psql"):
        path = stack.pg(binary)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            where = stack.pg_bin_dir or "PATH or /usr/lib/postgresql/*/bin"
            raise OpsError(
                f"{binary!r} not found in {where}: install PostgreSQL 15 "
                "(apt-get install postgresql) or set dev.postgres_bin_dir"
            )
    problem = postgres.check_reachable(stack)
    if problem:
        raise OpsError(problem)


def setup_development(c: Context) -> None:
    from tasks.dev import database

    stack = load_stack(c)
    cfg = c.config.setup
    root = stack.root
    frontend = settings.resolve_path(root, cfg.frontend_dir, source="setup.frontend_dir")
    check_prerequisites(stack, frontend)
    requirements = settings.resolve_path(
        root, cfg.backend_requirements, source="setup.backend_requirements"
    )
    template = settings.resolve_path(root, cfg.env_template, source="setup.env_template")
    env, values = env_step(c, stack, template)
    steps: list[Step | Callable[[], Step]] = [backend_step(c, requirements)]
    steps += [s for s in [frontend_step(c, frontend, stack.state_dir / "npm-lock.sha256")] if s]
    script = settings.resolve_path(
        root, cfg.dev_start_script, source="setup.dev_start_script", must_exist=False
    )
    server = database.Server(stack)
    changed = 0
    try:
        steps += [env, *database.steps(c, stack, values[stack.database.password_env], server)]
        steps.append(script_step(c, script))
        for item in steps:
            step = item() if callable(item) else item
            prefix = "would " if runner.is_dry(c) and step.action else ""
            print(f"setup: {step.name}: {prefix}{step.detail}", flush=True)
            if step.action is not None:
                step.action()
                changed += 1
    finally:
        server.close()
    if changed == 0:
        print("setup: nothing changed: the development environment is already set up")
    else:
        verb = "would change" if runner.is_dry(c) else "changed"
        print(f"setup: {verb} {changed} of {len(steps)} steps; start it with: inv dev.start")
