"""The project-local PostgreSQL cluster: initdb, the app role and database, access checks.

The app role's password is never on argv and never sent in clear text to the server: setup
computes its SCRAM-SHA-256 verifier here (as psql's ``\\password`` does) and feeds the SQL
to psql on stdin.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tasks.core.files import make_dirs
from tasks.dev.plan import Stack

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL


def as_user(stack: Stack, argv: list[str]) -> list[str]:
    """Prefix ``argv`` with ``runuser`` when inv runs as root (PostgreSQL refuses root)."""
    if stack.pg_user is None:
        return argv
    return ["runuser", "-u", stack.pg_user, "--", *argv]


def initdb_argv(stack: Stack) -> list[str]:
    return as_user(
        stack,
        [
            stack.pg("initdb"),
            "--pgdata",
            str(stack.pg_data),
            "--username",
            stack.superuser,
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ],
    )


def superuser_psql_argv(stack: Stack) -> list[str]:
    """psql as the cluster's superuser over the Unix socket in the data directory (peer auth)."""
    db = stack.database
    return as_user(
        stack,
        [
            stack.pg("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"app_role={db.user}",
            "-v",
            f"app_db={db.name}",
            "-h",
            str(stack.pg_data),
            "-p",
            str(db.port),
            "-U",
            stack.superuser,
            "-d",
            "postgres",
        ],
    )


def login_probe_argv(stack: Stack) -> list[str]:
    """psql as the app role over TCP; the password comes from PGPASSFILE (an in-memory file).
    The database goes as a quoted ``dbname='...'`` value: never expanded as a conninfo/URI."""
    from tasks.backup.plan import pg_dbname

    db = stack.database
    return [
        stack.pg("psql"),
        "-X",
        "-w",
        "-q",
        "-h",
        db.host,
        "-p",
        str(db.port),
        "-U",
        db.user,
        "-d",
        pg_dbname(db.name),
        "-c",
        "SELECT 1",
    ]


def scram_verifier(password: str, salt: bytes, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677)."""
    import base64
    import hashlib
    import hmac

    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


# CREATEDB: locally the app role may create scratch databases (backup.verify --restore-test,
# backup.restore --force); staging and production roles are not made here.
ROLE_SQL = (
    "SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'app_role')\n"
    "  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \\gexec\n"
    "ALTER ROLE :\"app_role\" WITH LOGIN CREATEDB PASSWORD :'app_verifier';\n"
    "SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_role')\n"
    "  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \\gexec\n"
)


def role_script(verifier: str) -> str:
    """Idempotent SQL (psql variables app_role, app_db) creating the role and its database."""
    if "'" in verifier or "\\" in verifier:
        raise ValueError("unexpected character in SCRAM verifier")
    # Names and the verifier travel as psql variables (:'x' quotes, :"x" identifiers).
    return f"\\set app_verifier '{verifier}'\n" + ROLE_SQL


def unreachable_ancestor(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first existing ancestor of ``path`` that user ``uid`` cannot traverse, if any."""
    for parent in reversed(path.parents):
        try:
            info = parent.stat()
        except FileNotFoundError:
            return None
        mode = info.st_mode
        if info.st_uid == uid:
            allowed = bool(mode & stat.S_IXUSR)
        elif info.st_gid in gids:
            allowed = bool(mode & stat.S_IXGRP)
        else:
            allowed = bool(mode & stat.S_IXOTH)
        if not allowed:
            return parent
    return None


def system_user_ids(user: str) -> tuple[int, int, set[int]]:
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    gids = {g.gr_gid for g in grp.getgrall() if user in g.gr_mem} | {entry.pw_gid}
    return entry.pw_uid, entry.pw_gid, gids


def check_reachable(stack: Stack) -> str | None:
    """A one-line problem when the server's user cannot reach its data dir or socket path."""
    socket_path = stack.pg_data / f".s.PGSQL.{stack.database.port}"
    if len(str(socket_path)) > SOCKET_PATH_MAX:
        return (
            f"dev.postgres_dir: socket path {socket_path} is longer than {SOCKET_PATH_MAX} "
            "characters; set dev.postgres_dir to a shorter path"
        )
    if stack.pg_user is None:
        return None
    uid, _, gids = system_user_ids(stack.pg_user)
    blocked = unreachable_ancestor(stack.pg_data, uid, gids)
    if blocked is not None:
        mode = oct(blocked.stat().st_mode & 0o777)
        return (
            f"dev.postgres_dir: the {stack.pg_user!r} system user cannot traverse {blocked} "
            f"(mode {mode[2:]}); set dev.postgres_dir to a path it can reach "
            f"or chmod o+x {blocked}"
        )
    return None


def prepare_data_dir(stack: Stack) -> None:
    """Create the (empty) data dir, mode 0700, owned by the server's system user."""
    make_dirs(stack.pg_data, 0o700)  # parents 0755 less the umask, never world-writable
    os.chmod(stack.pg_data, 0o700)
    if stack.pg_user is not None:
        uid, gid, _ = system_user_ids(stack.pg_user)
        os.chown(stack.pg_data, uid, gid)


def initialized(stack: Stack) -> bool:
    return (stack.pg_data / "PG_VERSION").exists()


def pgpass_line(stack: Stack, password: str) -> str:
    """One .pgpass line for the app role (``:`` and ``\\`` escaped as libpq wants)."""
    db = stack.database

    def esc(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    return ":".join(esc(v) for v in (db.host, db.port, db.name, db.user, password)) + "\n"
