"""Setup steps of the project-local PostgreSQL: the cluster, then the app role and database."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable

from invoke import Context
from tasks.core.errors import OpsError

from tasks.core import runner
from tasks.dev import launch
from tasks.dev import logfiles
from tasks.dev import postgres, procs
from tasks.dev.config import DB_NAME, LocalStack
from tasks.dev.steps import Step


class Server:
    """The stack's database server, started temporarily by setup when it is not running."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.started: dict[str, object] = {}
        self.spec = next(p for p in stack.processes if p.name == DB_NAME)

    def running(self) -> bool:
        for record in procs.read_records(self.stack.run_dir):
            if record.name == DB_NAME:
                return procs.record_state(record, procs.read_stat(record.pid)) == "running"
        return False

    def ensure(self) -> None:
        if self.started or self.running():
            return
        if procs.port_in_use(self.spec.host, self.spec.port):
            raise OpsError(
                f"setup: port {self.spec.port} (database) is in use by another program; "
                "stop it or set environments.development.databases.postgres.port"
            )
        print("setup: database: starting the server for the role check", flush=True)
        try:
            launch.start_processes(
                self.stack, [self.spec], {}, self.started, on_ready=lambda *_: None
            )
        except launch.StartFailure as failure:
            self.close()
            log = self.stack.log_path(DB_NAME)
            for line in logfiles.tail_lines(log, self.stack.log_lines):
                print(f"db | {line}", file=sys.stderr)
            raise OpsError(f"setup: database {failure.reason}; see {log}") from None

    def close(self) -> None:
        if self.started:
            launch.stop_started(self.stack, self.started)
            self.started = {}


def login_ok(c: Context, stack: LocalStack, password: str) -> bool:
    """Can the app role log in to its database over TCP with ``password``?"""
    result = c.run(
        runner.render(postgres.login_probe_argv(stack)),
        env={"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
        warn=True,
        hide=True,
        dry=False,
        echo=False,
        in_stream=False,
    )
    return bool(result is not None and result.ok)


def apply_role(c: Context, stack: LocalStack, password: str) -> None:
    verifier = postgres.scram_verifier(password, os.urandom(16))
    runner.run(
        c,
        postgres.superuser_psql_argv(stack),
        in_stream=io.StringIO(postgres.role_script(verifier)),
        hide=True,
    )
    if not login_ok(c, stack, password):
        raise OpsError(
            f"setup: role {stack.database.user!r} still cannot log in to database "
            f"{stack.database.name!r} on {stack.database.host}:{stack.database.port}; "
            f"check {stack.pg_data / 'pg_hba.conf'}"
        )


def steps(
    c: Context, stack: LocalStack, password: str, server: Server
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
        result.append(Step("database cluster", detail, init))
        result.append(Step("database role", role_detail, role))
        return result
    result.append(Step("database cluster", f"{stack.pg_data} exists"))

    def check_role() -> Step:
        if runner.is_dry(c) and not server.running():
            return Step("database role", "not checked under --dry (the server is stopped)")
        server.ensure()
        if login_ok(c, stack, password):
            return Step("database role", f"{db.user} logs in to database {db.name}")
        return Step("database role", role_detail.replace("create", "create/update"), role)

    result.append(check_role)
    return result
