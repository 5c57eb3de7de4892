"""TLS to the databases: the per-target policy (pure), and real servers that only accept TLS
with a test CA (``fixtures_tls``): the right CA backs up, another CA or a wrong name is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_inv
from fixtures_backup import (
    MariaServer,
    PgServer,
    mysql_target,
    pg_target,
    update_config,
    write_config,
)
from fixtures_tls import WRONG_NAME_HOST, Pki

from tasks.backup.plan import mysql_connection_args
from tasks.backup.targets import DatabaseTarget, credentials, resolve_target
from tasks.backup.tls import mysql_tls_args, pg_tls_env, pg_tls_prefix
from tasks.core.environments import DATABASE, Environment, effective_sslmode, is_loopback
from tasks.core.errors import ConfigError
from tasks.core.settings import Where


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("db.prod.flowlet.internal", False),
        ("10.0.0.5", False),
        ("localhost.example.com", False),
        ("::ffff:10.0.0.1", False),
        ("0.0.0.0", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("sslmode", "host", "ca", "effective"),
    [
        ("auto", "db.prod.flowlet.internal", "", "verify-full"),  # the default off the host
        ("auto", "10.0.0.5", "/ca.pem", "verify-full"),
        ("auto", "127.0.0.1", "", "prefer"),  # loopback: TLS if offered, as libpq's default
        ("auto", "localhost", "/ca.pem", "verify-full"),  # a CA given: verify, even on loopback
        ("disable", "127.0.0.1", "", "disable"),  # explicit values are kept
        ("verify-ca", "db", "", "verify-ca"),
    ],
    ids=["remote", "remote-ca", "loopback", "loopback-ca", "explicit-disable", "explicit-ca"],
)
def test_effective_sslmode(sslmode: str, host: str, ca: str, effective: str) -> None:
    assert effective_sslmode(sslmode, host, ca) == effective


def checked(**values: Any) -> Any:
    base = {"host": "127.0.0.1", "name": "d", "user": "u"}
    return DATABASE.check({**base, **values}, Where("environments.x.databases.t"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"host": "db.example.com", "sslmode": "require"}, r"'require' does not authenticate"),
        ({"host": "db.example.com", "sslmode": "disable"}, r"'disable' does not authenticate"),
        ({"engine": "mysql", "host": "db", "sslmode": "prefer"}, r"valid: verify-full$"),
        ({"engine": "mysql", "sslmode": "verify-ca"}, r"not valid for a mysql target"),
        ({"engine": "mysql", "sslmode": "allow"}, r"not valid for a mysql target"),
        ({"engine": "mysql", "sslmode": "require"}, r"valid: auto, disable, prefer, verify-full$"),
        ({"sslmode": "require", "sslrootcert": "/ca.pem"}, r"sslrootcert: set, but sslmode"),
        ({"sslrootcert": "relative/ca.pem"}, r"valid: an absolute path"),
        ({"sslmode": "verify"}, r"valid: auto, disable, allow"),
    ],
    ids=[
        "remote-require",
        "remote-disable",
        "mysql-remote-prefer",
        "mysql-verify-ca",
        "mysql-allow",
        "mysql-require",
        "ca-without-verify",
        "ca-relative",
        "unknown-mode",
    ],
)
def test_weak_or_inconsistent_policies_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        checked(**values)


@pytest.mark.parametrize(
    "values",
    [
        {"host": "db.example.com"},
        {"host": "db.example.com", "sslmode": "verify-ca", "sslrootcert": "/ca.pem"},
        {"host": "127.0.0.1", "sslmode": "disable"},
        {"host": "localhost", "sslmode": "require"},
        {"engine": "mysql", "host": "db", "sslrootcert": "/etc/ssl/ca.pem"},
    ],
    ids=["remote-auto", "remote-verify-ca", "loopback-disable", "loopback-require", "mysql-ca"],
)
def test_sound_policies_pass(values: dict[str, Any]) -> None:
    checked(**values)


def target_of(**values: Any) -> DatabaseTarget:
    env = Environment("staging", "ns", "", "flowlet", None, False, {"db": checked(**values)})
    return resolve_target(env, "db", None)


def test_a_remote_postgres_target_verifies_by_default() -> None:
    target = target_of(host="db.staging.flowlet.internal")
    assert target.sslmode == "verify-full"
    assert pg_tls_env(target) == {"PGSSLMODE": "verify-full"}
    with_ca = target_of(host="db.staging.flowlet.internal", sslrootcert="/etc/flowlet/ca.pem")
    assert pg_tls_env(with_ca) == {
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/etc/flowlet/ca.pem",
    }
    assert pg_tls_prefix(with_ca) == "PGSSLMODE=verify-full PGSSLROOTCERT=/etc/flowlet/ca.pem "


def test_postgres_credentials_carry_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every postgres tool gets the policy with its credentials (PGSSLMODE beside
    PGPASSFILE): pg_dump, psql, pg_restore and the verify/restore sessions alike."""
    monkeypatch.setenv("TLS_TEST_PASSWORD", "pw")
    target = target_of(host="db.example.com", password_env="TLS_TEST_PASSWORD")
    with credentials(target) as creds:
        assert creds.env["PGSSLMODE"] == "verify-full" and "PGPASSFILE" in creds.env
    no_password = target_of(host="127.0.0.1", sslmode="disable")
    with credentials(no_password) as creds:
        assert creds.env == {"PGSSLMODE": "disable"}


@pytest.mark.parametrize(
    ("values", "args"),
    [
        ({"host": "db"}, ["--ssl", "--ssl-verify-server-cert"]),
        ({"host": "db", "sslrootcert": "/ca.pem"},
         ["--ssl", "--ssl-verify-server-cert", "--ssl-ca=/ca.pem"]),  # fmt: skip
        ({"host": "127.0.0.1"}, []),
        ({"host": "127.0.0.1", "sslmode": "disable"}, ["--skip-ssl"]),
    ],
    ids=["remote", "remote-ca", "loopback", "loopback-disable"],
)
def test_mysql_options(values: dict[str, Any], args: list[str]) -> None:
    target = target_of(engine="mysql", port=3306, **values)
    assert mysql_tls_args(target) == args
    connection = mysql_connection_args(target, ("--defaults-extra-file=/dev/fd/3",))
    assert connection[0] == "--defaults-extra-file=/dev/fd/3"  # still first
    assert connection[len(connection) - len(args) :] == args


def test_remote_backup_command_sets_the_policy() -> None:
    """--host: the policy is on the remote command line, before the password variable."""
    from datetime import datetime, timezone

    from tasks.backup.plan import BackupOptions, plan_backup
    from tasks.backup.remote import remote_command

    target = target_of(host="db.internal", sslrootcert="/etc/ssl/flowlet-ca.pem")
    options = BackupOptions("plain", "gzip", 0, 1, None, datetime.now(timezone.utc))
    line = remote_command(plan_backup(target, options, Path("/b")), None, has_secret=True)
    assert line.startswith(
        'PGSSLMODE=verify-full PGSSLROOTCERT=/etc/ssl/flowlet-ca.pem PGPASSWORD="$FLOWLET_SECRET"'
        " pg_dump "
    )


# --- real PostgreSQL that accepts only TLS (hostnossl ... reject) ----------------------------


def tls_config(tmp_path: Path, pg: PgServer, **tls: Any) -> Path:
    target = pg_target(pg, **tls)
    return write_config(tmp_path / "invoke.yaml", {"postgres": target})


def backup(config: Path, pg: PgServer, *args: str) -> Any:
    return run_inv(
        ["-f", str(config), *args],
        env={"FLOWLET_DB_PASSWORD": pg.password},
        timeout=180,
    )


def made(config: Path) -> list[str]:
    out = config.parent / "backups"
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".gz")) if out.exists() else []


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_verify_full_with_the_right_ca_backs_up_and_verifies(
    pg_tls_server: PgServer, pki: Pki, tmp_path: Path
) -> None:
    config = tls_config(tmp_path, pg_tls_server, sslmode="verify-full", sslrootcert=str(pki.ca))
    done = backup(config, pg_tls_server, "backup.postgres")
    assert done.returncode == 0, done.stderr
    assert len(made(config)) == 1
    # the restore test's SQL sessions (scratch database, row counts) go over TLS too
    checked = backup(config, pg_tls_server, "backup.verify", "--latest", "--restore-test")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.slow
def test_auto_with_a_ca_verifies_on_loopback(
    pg_tls_server: PgServer, pki: Pki, tmp_path: Path
) -> None:
    config = tls_config(tmp_path, pg_tls_server, sslrootcert=str(pki.ca))
    done = backup(config, pg_tls_server, "backup.postgres")
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("host", "which_ca", "why"),
    [
        ("127.0.0.1", "other_ca", "certificate verify failed"),
        (WRONG_NAME_HOST, "ca", f'does not match host name "{WRONG_NAME_HOST}"'),
    ],
    ids=["signed-by-another-ca", "wrong-name"],
)
def test_verify_full_refuses_a_server_it_cannot_authenticate(
    pg_tls_server: PgServer, pki: Pki, tmp_path: Path, host: str, which_ca: str, why: str
) -> None:
    ca = getattr(pki, which_ca)
    config = tls_config(tmp_path, pg_tls_server, host=host, sslrootcert=str(ca))
    done = backup(config, pg_tls_server, "backup.postgres")
    assert done.returncode != 0
    assert why in one_line(done.stderr)
    assert made(config) == []


@pytest.mark.slow
def test_the_server_refuses_plain_connections(pg_tls_server: PgServer, tmp_path: Path) -> None:
    """The fixture's own check: without TLS the server says no (so a success above was TLS)."""
    config = tls_config(tmp_path, pg_tls_server, sslmode="disable")
    done = backup(config, pg_tls_server, "backup.postgres")
    assert done.returncode != 0
    assert "no encryption" in done.stderr


# --- real MariaDB that accepts only TLS (require_secure_transport, the user REQUIRE SSL) -------


def mysql_tls_config(tmp_path: Path, server: MariaServer, **tls: Any) -> Path:
    target = mysql_target(server, **tls)
    return write_config(tmp_path / "invoke.yaml", {"shop": target})


def mysql_run(config: Path, server: MariaServer, *args: str) -> Any:
    env = {"FLOWLET_MYSQL_PASSWORD": server.password}
    return run_inv(["-f", str(config), *args], env=env, timeout=180)


@pytest.mark.slow
def test_mysql_verify_full_with_the_right_ca_backs_up_and_verifies(
    mariadb_tls_server: MariaServer, pki: Pki, tmp_path: Path
) -> None:
    config = mysql_tls_config(tmp_path, mariadb_tls_server, sslrootcert=str(pki.ca))  # auto
    done = mysql_run(config, mariadb_tls_server, "backup.mysql")
    assert done.returncode == 0, done.stderr
    assert len(made(config)) == 1
    checked = mysql_run(config, mariadb_tls_server, "backup.verify", "--latest", "--restore-test")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("host", "which_ca", "why"),
    [
        ("127.0.0.1", "other_ca", "unable to get local issuer certificate"),
        (WRONG_NAME_HOST, "ca", "Validation of SSL server certificate failed"),
    ],
    ids=["signed-by-another-ca", "wrong-name"],
)
def test_mysql_verify_full_refuses_a_server_it_cannot_authenticate(
    mariadb_tls_server: MariaServer, pki: Pki, tmp_path: Path, host: str, which_ca: str, why: str
) -> None:
    ca = getattr(pki, which_ca)
    config = mysql_tls_config(tmp_path, mariadb_tls_server, host=host, sslrootcert=str(ca))
    done = mysql_run(config, mariadb_tls_server, "backup.mysql")
    assert done.returncode != 0
    assert why in one_line(done.stderr)
    assert made(config) == []


@pytest.mark.slow
def test_mysql_server_refuses_plain_connections(
    mariadb_tls_server: MariaServer, tmp_path: Path
) -> None:
    config = mysql_tls_config(tmp_path, mariadb_tls_server, sslmode="disable")
    done = mysql_run(config, mariadb_tls_server, "backup.mysql")
    assert done.returncode != 0
    assert "Access denied" in one_line(done.stderr)


def test_dry_shows_the_default_policy_for_a_remote_host(tmp_path: Path) -> None:
    """From the command line: a target off loopback gets verify-full without being asked."""
    pg = {"engine": "postgres", "host": "db.example.internal", "port": 5432, "name": "app",
          "user": "backup", "sslrootcert": "/etc/flowlet/db-ca.pem"}  # fmt: skip
    my = {"engine": "mysql", "host": "10.1.2.3", "port": 3306, "name": "shop", "user": "backup"}
    config = write_config(tmp_path / "invoke.yaml", {"postgres": pg, "shop": my})
    done = run_inv(["-f", str(config), "--dry", "backup.postgres"])
    assert done.returncode == 0, done.stderr
    assert "PGSSLMODE=verify-full PGSSLROOTCERT=/etc/flowlet/db-ca.pem\n" in done.stdout
    remote = run_inv(["-f", str(config), "--dry", "backup.postgres", "--host", "bastion-db"])
    assert remote.returncode == 0, remote.stderr
    prefix = "  PGSSLMODE=verify-full PGSSLROOTCERT=/etc/flowlet/db-ca.pem PGPASSWORD="
    assert prefix in remote.stdout
    mysql = run_inv(["-f", str(config), "--dry", "backup.mysql"])
    assert mysql.returncode == 0, mysql.stderr
    assert "--user backup --ssl --ssl-verify-server-cert " in mysql.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("which_ca", "code"), [("ca", 0), ("other_ca", 1)], ids=["right-ca", "another-ca"]
)
def test_host_backup_follows_the_policy_on_the_remote_side(
    pg_tls_server: PgServer, pki: Pki, tmp_path: Path, ssh_config: Path, which_ca: str, code: int
) -> None:
    """--host: pg_dump on the database host gets PGSSLMODE/PGSSLROOTCERT there."""
    config = tls_config(tmp_path, pg_tls_server, sslrootcert=str(getattr(pki, which_ca)))
    update_config(config, ssh={"config_file": str(ssh_config), "connect_timeout": 5})
    done = backup(config, pg_tls_server, "backup.postgres", "--host", "flowlet-db")
    if code == 0:
        assert done.returncode == 0, done.stderr
        assert len(made(config)) == 1
    else:
        assert done.returncode != 0
        assert "certificate verify failed" in one_line(done.stderr)
        assert made(config) == []
