"""How a target's TLS policy reaches its database tools (pure).

The policy is per target: ``sslmode`` and ``sslrootcert`` (``environments.<env>.databases``,
checked in :mod:`tasks.core.environments`; ``auto`` is resolved into the target). PostgreSQL tools
get it through libpq's ``PGSSLMODE`` / ``PGSSLROOTCERT``: a connection-string keyword would
override them, so nothing we pass on a command line may be one (the dbname stays a plain name).
The MariaDB client and dump get options after the connection's own.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.backup.targets import DatabaseTarget

# MariaDB client options per sslmode ("prefer": the client's default, TLS when offered; only
# --ssl-verify-server-cert makes it refuse a server without TLS).
MYSQL_TLS = {
    "disable": ("--skip-ssl",),
    "prefer": (),
    "verify-full": ("--ssl", "--ssl-verify-server-cert"),
}


def pg_tls_env(target: DatabaseTarget) -> dict[str, str]:
    """libpq's variables for ``target`` (set on every postgres connection we make)."""
    env = {"PGSSLMODE": target.sslmode}
    if target.sslrootcert:
        env["PGSSLROOTCERT"] = target.sslrootcert
    return env


def mysql_tls_args(target: DatabaseTarget) -> list[str]:
    """mariadb / mariadb-dump options for ``target``."""
    args = list(MYSQL_TLS[target.sslmode])
    if target.sslrootcert:
        args.append(f"--ssl-ca={target.sslrootcert}")
    return args


def pg_tls_prefix(target: DatabaseTarget) -> str:
    """``PGSSLMODE=... `` shell text before a remote postgres command (``--host``)."""
    return "".join(f"{key}={shlex.quote(value)} " for key, value in pg_tls_env(target).items())
