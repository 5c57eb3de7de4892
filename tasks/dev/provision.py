"""``inv setup --env development``: each step checks first and acts only when needed.

A step whose ``data`` is None is in place already (a second run changes nothing, and writes
nothing: not even the npm stamp). Before anything is changed, the places the steps would write
are checked: a read-only checkout is one line naming the path, not a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Context

from tasks.core import files, runner
from tasks.core.errors import ConfigError, OpsError
from tasks.core.steps import Step
from tasks.dev import postgres
from tasks.dev.plan import Stack, load_stack

DEV_START_SCRIPT = """#!/bin/sh
# Replaces the old start.sh: starts the local stack (see `inv --help dev.start`).
cd "$(dirname "$0")" || exit 1
exec inv dev.start "$@"
"""

INSTALL_HINTS = {
    "node": "install Node.js 20 (apt-get install nodejs)",
    "npm": "install npm (apt-get install npm, or Node.js from nodesource)",
}


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically with ``mode`` whatever the umask (never briefly
    world-readable; a planted symlink is replaced, not followed)."""
    files.write_atomic(path, text, mode)


def backend_step(c: Context, requirements: Path) -> Step:
    from tasks.dev.deps import requirement_lines, unmet_requirements

    unmet = unmet_requirements(requirement_lines(requirements.read_text(encoding="utf-8")))
    if not unmet:
        return Step("backend dependencies", detail=f"{requirements.name} already satisfied")
    argv: tuple[str, ...] = (runner.python(), "-m", "pip", "install", "-q")
    argv += ("--disable-pip-version-check", "-r", str(requirements))
    return Step(
        "backend dependencies",
        argv,
        detail=f"pip install ({', '.join(unmet)})",
        data=lambda: runner.run(c, argv),
    )


def frontend_step(c: Context, frontend: Path, stamp: Path) -> tuple[Step | None, Path | None]:
    """The npm step, and the stamp path when only the stamp needs (re)writing."""
    from tasks.dev.deps import lock_digest, node_modules_current

    lock = frontend / "package-lock.json"
    if not lock.exists():
        return None, None
    digest = lock_digest(lock.read_bytes()) + "\n"
    current, why = node_modules_current(frontend, stamp)
    stamp_ok = stamp.is_file() and stamp.read_text(encoding="utf-8") == digest
    if current:
        detail = f"node_modules {why}"
        if stamp_ok:
            return Step("frontend dependencies", detail=detail), None
        return Step("frontend dependencies", detail=detail), stamp

    argv = ("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")

    def install() -> None:
        with c.cd(str(frontend)):
            runner.run(c, argv)
        if not runner.is_dry(c):
            write_stamp(stamp, frontend)

    return Step("frontend dependencies", argv, detail=f"npm ci ({why})", data=install), None


def env_step(c: Context, stack: Stack, template: Path) -> tuple[Step, dict[str, str]]:
    """The .env.local step and the values the file will hold after it."""
    import secrets

    from tasks.dev.envfile import merge_env, missing_values, parse_env

    path = stack.env_file
    existing = path.read_text(encoding="utf-8") if path.exists() else None
    text, added = merge_env(
        existing, template.read_text(encoding="utf-8"), lambda: secrets.token_urlsafe(32)
    )
    values = parse_env(text)
    password_key = stack.database.password_env
    if missing_values(values, [password_key]):
        raise OpsError(
            f"{path.name}: {password_key} is missing or empty; set a password "
            "or delete the line so setup generates one"
        )
    loose = existing is not None and (path.stat().st_mode & 0o777) != 0o600
    if existing is not None and not added and not loose:
        return (
            Step(path.name, detail="up to date (no key missing; values left as they are)"),
            values,
        )
    what = f"add {', '.join(added)}" if added else "set mode 0600"
    if existing is None:
        what = f"create from {template.name} with generated secrets (mode 0600)"

    def write() -> None:
        if not runner.is_dry(c):
            files.make_dirs(path.parent, 0o755)
            write_private(path, text)

    return Step(path.name, detail=what, data=write), values


def script_step(c: Context, path: Path) -> Step:
    if path.is_file() and path.read_text() == DEV_START_SCRIPT and os.access(path, os.X_OK):
        return Step(path.name, detail="up to date")

    def write() -> None:
        if not runner.is_dry(c):
            write_private(path, DEV_START_SCRIPT, 0o755)

    return Step(path.name, detail="write (runs inv dev.start)", data=write)


def check_prerequisites(stack: Stack, frontend: Path) -> None:
    if (frontend / "package.json").exists():
        runner.require_tools(INSTALL_HINTS)
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


def nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(paths: list[Path]) -> None:
    """Every directory setup is about to write in can be written (EROFS, EACCES: one line)."""
    for path in paths:
        target = nearest_existing(path if path.is_dir() else path.parent)
        if not target.is_dir():
            raise OpsError(f"setup: cannot write {path}: {target} is not a directory")
        if not os.access(target, os.W_OK):
            import errno

            reason = os.strerror(errno.EROFS if is_read_only(target) else errno.EACCES)
            raise OpsError(f"setup: cannot write {path}: {target} is not writable ({reason})")


def is_read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def setup_development(c: Context) -> None:
    from tasks.core.settings import load
    from tasks.dev import database

    stack = load_stack(c)
    cfg = load(c, "setup")
    frontend: Path = cfg.frontend_dir
    for key in ("backend_requirements", "env_template"):
        if not cfg[key].is_file():
            raise ConfigError(f"setup.{key}: {cfg[key]} does not exist")
    env, values = env_step(c, stack, cfg.env_template)
    npm, stamp_only = frontend_step(c, frontend, stack.state_dir / "npm-lock.sha256")
    steps: list[Step | Callable[[], Step]] = [backend_step(c, cfg.backend_requirements)]
    steps += [npm] if npm else []
    server = database.Server(stack)
    steps += [env, *database.steps(c, stack, values[stack.database.password_env], server)]
    steps.append(script_step(c, cfg.dev_start_script))
    writes = [stack.env_file] if env.data else []
    writes += [cfg.dev_start_script] if steps[-1].data else []  # type: ignore[union-attr]
    writes += [stack.flowlet_dir / "run", stack.log_dir] if not postgres.initialized(stack) else []
    writes += [stack.state_dir] if stamp_only or (npm and npm.data) else []
    writes += [frontend / "node_modules"] if npm and npm.data else []
    if not runner.is_dry(c):
        check_writable(writes)
    check_prerequisites(stack, frontend)
    changed = 0
    try:
        for item in steps:
            step = item() if callable(item) else item
            prefix = "would " if runner.is_dry(c) and step.data else ""
            print(f"setup: {step.title}: {prefix}{step.detail}", flush=True)
            if step.data is not None:
                run_action(step)
                changed += 1
        if stamp_only is not None and not runner.is_dry(c):
            run_action(Step("npm stamp", data=lambda: write_stamp(stamp_only, frontend)))
    finally:  # also on Ctrl-C: the temporary database server is stopped
        server.close()
    if changed == 0:
        print("setup: nothing changed: the development environment is already set up")
    else:
        verb = "would change" if runner.is_dry(c) else "changed"
        print(f"setup: {verb} {changed} of {len(steps)} steps; start it with: inv dev.start")


def write_stamp(stamp: Path, frontend: Path) -> None:
    from tasks.dev.deps import lock_digest

    files.make_dirs(stamp.parent, 0o700)
    files.write_atomic(stamp, lock_digest((frontend / "package-lock.json").read_bytes()) + "\n")


def run_action(step: Step) -> Any:
    """Run a step's action; a write that fails (read-only, full disk) is one line."""
    try:
        return step.data()
    except OSError as exc:
        where = exc.filename or step.title
        raise OpsError(f"setup: {step.title}: cannot write {where}: {exc.strerror}") from None
