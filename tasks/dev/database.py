"""Setup steps of the project-local PostgreSQL: the cluster, then the app role and database.

The app role's password reaches psql only as a SCRAM-SHA-256 verifier on its stdin; the login
check reads it from an in-memory PGPASSFILE (never argv, never the environment, never disk).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack

from invoke import Context

from tasks.core import locks, runner
from tasks.core.errors import OpsError
from tasks.core.steps import Step
from tasks.dev import launch, logfiles, pidfiles, postgres
from tasks.dev.plan import Stack
from tasks.dev.settings import DB_NAME


class Server:
    """The stack's database server, started by setup (dying with inv) when it is not running."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.started: dict[str, launch.Started] = {}
        self.held = ExitStack()
        self.spec = stack.spec(DB_NAME)

    def running(self) -> bool:
        for record in pidfiles.read_records(self.stack.run_dir):
            if record.name == DB_NAME and record.keeper.alive():
                return True
        return False

    def ensure(self) -> None:
        from tasks.dev import health

        if self.started or self.running():
            return
        try:
            self.held.enter_context(
                locks.hold(self.stack.lock_path, "setup", hint="wait for it, or stop it")
            )
        except OSError as exc:
            raise OpsError(
                f"setup: database: cannot write {exc.filename or self.stack.run_dir}: "
                f"{exc.strerror} (the role check starts the server, which needs "
                f"{self.stack.flowlet_dir})"
            ) from None
        if self.running():
            return
        if health.port_in_use(self.spec.host, self.spec.port):
            raise OpsError(
                f"setup: port {self.spec.port} (database) is in use by another program; "
                f"stop it or set {self.stack.database.key}.port"
            )
        print("setup: database: starting the server for the role check", flush=True)
        run_id = f"setup-{os.getpid()}"
        try:
            launch.start_processes(
                self.stack,
                [DB_NAME],
                {DB_NAME: runner.child_env()},
                self.started,
                run_id=run_id,
                detach=False,
                on_ready=lambda *_: None,
            )
        except launch.StartFailure as failure:
            self.close()
            log = self.stack.log_path(DB_NAME)
            for line in logfiles.run_tail(log, run_id, self.stack.log_lines):
                print(f"db | {line}", file=sys.stderr)
            raise OpsError(f"setup: database {failure.reason}; see {log}") from None

    def close(self) -> None:
        try:
            if self.started:
                launch.stop_started(self.stack, self.started)
                self.started = {}
        finally:
            self.held.close()


def login_ok(stack: Stack, password: str) -> bool:
    """Can the app role log in to its database over TCP with ``password``?"""
    from tasks.core.secrets import SecretFile

    with SecretFile(postgres.pgpass_line(stack, password), name="flowlet-pgpass") as passfile:
        child = runner.spawn(
            postgres.login_probe_argv(stack),
            env={"PGPASSFILE": passfile.path, "PGCONNECT_TIMEOUT": "5"},
            fds=(passfile.fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return child.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            runner.stop_group(child)
            return False


def apply_role(c: Context, stack: Stack, password: str) -> None:
    verifier = postgres.scram_verifier(password, os.urandom(16))
    runner.run(
        c, postgres.superuser_psql_argv(stack), stdin=postgres.role_script(verifier), hide=True
    )
    if not login_ok(stack, password):
        raise OpsError(
            f"setup: role {stack.database.user!r} still cannot log in to database "
            f"{stack.database.name!r} on {stack.database.host}:{stack.database.port}; "
            f"check {stack.pg_data / 'pg_hba.conf'}"
        )


def steps(
    c: Context, stack: Stack, password: str, server: Server
) -> list[Step | Callable[[], Step]]:
    """The cluster step, then the role step (checked lazily: it may need the server up)."""
    db = stack.database
    result: list[Step | Callable[[], Step]] = []
    role_detail = f"create role {db.user} and database {db.name} (password from .env.local)"

    def role() -> None:
        if runner.is_dry(c):
            return
        server.ensure()
        apply_role(c, stack, password)

    if not postgres.initialized(stack):

        def init() -> None:
            if not runner.is_dry(c):
                postgres.prepare_data_dir(stack)
            runner.run(c, postgres.initdb_argv(stack), hide=True)

        detail = f"initdb {stack.pg_data} (port {db.port}, scram-sha-256 over TCP)"
        result.append(
            Step("database cluster", tuple(postgres.initdb_argv(stack)), detail=detail, data=init)
        )
        result.append(Step("database role", detail=role_detail, data=role))
        return result
    result.append(Step("database cluster", detail=f"{stack.pg_data} exists"))

    def check_role() -> Step:
        if runner.is_dry(c) and not server.running():
            return Step("database role", detail="not checked under --dry (the server is stopped)")
        server.ensure()
        if login_ok(stack, password):
            return Step("database role", detail=f"{db.user} logs in to database {db.name}")
        return Step(
            "database role", detail=role_detail.replace("create", "create/update"), data=role
        )

    result.append(check_role)
    return result
