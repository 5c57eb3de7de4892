"""The shared ``environments`` key: its schema, and ``--env`` / ``--namespace`` resolution.

Every task that acts on an environment goes through :func:`resolve_environment`, so a bad flag
or key fails the same way everywhere: one line naming it, the bad value and what is valid.
Values that end up in YAML (namespace, release, environment name) are validated text, and
renderers quote them as YAML strings (``namespace: "null"``, never ``namespace: null``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.core.errors import ConfigError
from tasks.core.settings import (
    DNS_LABEL,
    DNS_LABEL_DESC,
    Bool,
    Choice,
    EnvName,
    FilePath,
    Map,
    Port,
    Section,
    Settings,
    Str,
    Where,
    load,
)

ENVIRONMENT_NAMES = ("development", "staging", "production")
ENV_NAME = r"^[a-z][a-z0-9-]{0,30}$"
# Helm: a release name is a lowercase DNS-1123 subdomain of at most 53 characters.
RELEASE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
RELEASE_DESC = (
    "a Helm release name: lowercase letters, digits, '-' and '.', starting and ending with a "
    "letter or digit, at most 53 characters"
)
# A kube context reaches kubectl/helm argv: letters, digits and the punctuation real context
# names use (kind-x, gke_p_z_c, arn:aws:eks:...:cluster/x, user@cluster), never a leading '-'.
CONTEXT = r"^[A-Za-z0-9_.:@/+][A-Za-z0-9_.:@/+-]*$"
CONTEXT_DESC = (
    "a kube context name: letters, digits, '_', '.', ':', '@', '/', '+', '-', not starting "
    "with '-'"
)
HOST = r"^[A-Za-z0-9_.:\[\]][A-Za-z0-9_.:\[\]-]*$"
HOST_DESC = "a host name or address (not starting with '-')"
# A database name or user reaches the tools' argv and libpq's conninfo: never an option
# (leading '-'), never a conninfo keyword (an '='), no whitespace or control characters.
DB_WORD = r"^[^-=\s\x00-\x1f\x7f-\x9f][^=\s\x00-\x1f\x7f-\x9f]*$"
DB_WORD_DESC = "no leading '-', no '=', whitespace or control characters"
SSH_HOST = r"^[^-\s\x00-\x1f\x7f-\x9f][^\s\x00-\x1f\x7f-\x9f]*$"
# libpq's sslmode values, plus "auto" (verify-full, or prefer on a loopback host without a CA)
SSLMODES = ("auto", "disable", "allow", "prefer", "require", "verify-ca", "verify-full")
VERIFYING = ("verify-ca", "verify-full")
# the MariaDB client has no "require" (its --ssl falls back to plain text) and no "verify-ca"
MYSQL_SSLMODES = ("auto", "disable", "prefer", "verify-full")
CA_PATH = r"^/[^\x00-\x1f]*$"


def namespace_kind(default: str = "", help: str = "") -> Str:
    return Str(default, help, pattern=DNS_LABEL, desc=DNS_LABEL_DESC, max_len=63)


def release_kind(default: str = "flowlet", help: str = "") -> Str:
    return Str(default, help, pattern=RELEASE, desc=RELEASE_DESC, max_len=53, empty=False)


def _check_database(db: Settings, where: Where) -> None:
    sources = [k for k in ("password_env", "passfile", "option_file") if db[k]]
    if len(sources) > 1:
        raise ConfigError(f"{where.name}: set only one of password_env, passfile, option_file")
    if db.option_file and db.engine != "mysql":
        raise ConfigError(f"{where.name}.option_file: only for mysql targets; use passfile")
    if db.passfile and db.engine != "postgres":
        raise ConfigError(f"{where.name}.passfile: only for postgres targets; use option_file")
    _check_tls(db, where)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1): traffic that stays on the host."""
    import ipaddress

    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def effective_sslmode(sslmode: str, host: str, sslrootcert: str) -> str:
    """``auto``: ``verify-full``, except ``prefer`` on a loopback host when no CA is given."""
    if sslmode != "auto":
        return sslmode
    return "prefer" if is_loopback(host) and not sslrootcert else "verify-full"


def _check_tls(db: Settings, where: Where) -> None:
    """Weak modes (no server authentication) only on loopback; a CA only with verification."""
    mode = effective_sslmode(db.sslmode, db.host, db.sslrootcert)
    if db.engine == "mysql" and mode not in MYSQL_SSLMODES:
        raise ConfigError(
            f"{where.name}.sslmode: {mode!r} is not valid for a mysql target; "
            f"valid: {', '.join(MYSQL_SSLMODES)}"
        )
    if mode not in VERIFYING and db.host and not is_loopback(db.host):
        raise ConfigError(
            f"{where.name}.sslmode: {mode!r} does not authenticate the server at {db.host} "
            f"(not a loopback host); valid: verify-full"
            + (", verify-ca" if db.engine == "postgres" else "")
        )
    if db.sslrootcert and mode not in VERIFYING:
        raise ConfigError(
            f"{where.name}.sslrootcert: set, but sslmode {mode!r} does not verify the server "
            "certificate; use sslmode verify-full or remove sslrootcert"
        )


DATABASE = Section(
    {
        "engine": Choice("postgres", ("postgres", "mysql"), "postgres or mysql"),
        "host": Str("", "database host", pattern=HOST, desc=HOST_DESC),
        "port": Port(5432, "database port"),
        "name": Str(
            "",
            "database name",
            pattern=DB_WORD,
            desc=f"a database name: {DB_WORD_DESC}",
            max_len=64,
        ),
        "user": Str(
            "", "database user", pattern=DB_WORD, desc=f"a user name: {DB_WORD_DESC}", max_len=80
        ),
        "password_env": EnvName("", "variable holding the password", secret_env=True),
        "passfile": Str("", "a .pgpass file (postgres)"),
        "option_file": Str("", "a my.cnf-style option file (mysql)"),
        "backup_host": Str(
            "",
            "ssh_config host the dump runs on (default --host)",
            pattern=SSH_HOST,
            desc="an ssh_config host (no whitespace, not starting with '-')",
        ),
        "sslmode": Choice(
            "auto", SSLMODES, "TLS to the server (auto: verify-full; prefer on loopback)"
        ),
        "sslrootcert": Str(
            "",
            "CA certificate(s) the server's certificate must chain to (PEM file)",
            pattern=CA_PATH,
            desc="an absolute path to a PEM file (on the host the dump runs on)",
        ),
    },
    "a database target",
    check_all=_check_database,
)


def _check_environment(env: Settings, where: Where) -> None:
    # helm reads --values as a comma-separated list (CSV): a ',' or '"' would split the path.
    if env.values_file is not None and any(ch in str(env.values_file) for ch in ',"\n'):
        raise where.child("values_file").fail(
            str(env.values_file), "a file path without ',', '\"' or newlines (helm splits --values)"
        )


ENVIRONMENT = Section(
    {
        "namespace": namespace_kind(help="Kubernetes namespace"),
        "kube_context": Str(
            "",
            "the kube context this environment runs against",
            pattern=CONTEXT,
            desc=CONTEXT_DESC,
        ),
        "release": release_kind(help="Helm release name"),
        "values_file": FilePath("", "chart values file", kind="file", empty=True),
        "confirm": Bool(False, "changes need confirmation"),
        "backup_encrypt": Bool(False, "encrypt every backup of this environment"),
        "backup_to": Str(
            "",
            "default offsite destination of its backups (a name under backup.destinations)",
            pattern=r"^[a-z][a-z0-9_-]{0,30}$",
            desc="a destination name (lowercase letters, digits, '-', '_')",
        ),
        "databases": Map(DATABASE, help="database targets by name"),
    },
    "an environment",
    check_all=_check_environment,
)

SCHEMA = Map(
    ENVIRONMENT,
    {
        name: {**ENVIRONMENT.defaults(), "confirm": name == "production"}
        for name in ENVIRONMENT_NAMES
    },
    "environments by name",
    key_pattern=ENV_NAME,
    key_desc="an environment name (lowercase letters, digits, '-')",
)


class Environment:
    """One environment, as resolved from the config and the command line (read-only).

    A plain class rather than a dataclass: this module is imported by every ``inv`` start (the
    schema above), and generating a dataclass costs about a millisecond.
    """

    __slots__ = (
        "name", "namespace", "kube_context", "release", "values_file", "confirm", "databases",
        "backup_encrypt", "backup_to",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        namespace: str,
        kube_context: str,
        release: str,
        values_file: Path | None,
        confirm: bool,
        databases: Mapping[str, Settings] | None = None,
        backup_encrypt: bool = False,
        backup_to: str = "",
    ) -> None:
        values = (name, namespace, kube_context, release, values_file, confirm,
                  dict(databases or {}), backup_encrypt, backup_to)  # fmt: skip
        for slot, value in zip(self.__slots__, values):
            object.__setattr__(self, slot, value)

    name: str
    namespace: str
    kube_context: str
    release: str
    values_file: Path | None
    confirm: bool
    databases: Mapping[str, Settings]
    backup_encrypt: bool
    backup_to: str

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"Environment is read-only ({key})")

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, slot) for slot in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Environment) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.name, self.namespace, self.kube_context, self.release))

    def __repr__(self) -> str:
        args = ", ".join(f"{slot}={getattr(self, slot)!r}" for slot in self.__slots__)
        return f"Environment({args})"

    @property
    def is_production(self) -> bool:
        return self.name == "production"

    def key(self, name: str) -> str:
        """The config key of one of this environment's settings (for messages)."""
        return f"environments.{self.name}.{name}"


def environment_names(c: Any) -> list[str]:
    return sorted(load(c, "environments"))


def resolve_environment(
    c: Any,
    env: str | None,
    namespace: str | None = None,
    *,
    require: tuple[str, ...] = (),
    default: str = "development",
    flag: str = "--env",
) -> Environment:
    """Turn ``--env`` (and an optional ``--namespace`` override) into an :class:`Environment`.

    ``require`` names keys that must be set for the calling task (``kube_context`` for deploy,
    ``values_file`` for render: that file must exist); ``namespace`` is always required.
    """
    environments = load(c, "environments")
    name = default if env is None else env
    if name not in environments:
        valid = ", ".join(sorted(environments)) or "(none configured)"
        raise ConfigError(f"{flag}: {name!r} is not valid; valid: {valid}")
    raw = environments[name]
    prefix = f"environments.{name}"
    for key in ("namespace", *require):
        if raw[key] in ("", None):
            raise ConfigError(f"{prefix}.{key}: missing required key (set it in invoke.yaml)")
    if "values_file" in require and not raw.values_file.is_file():
        raise ConfigError(f"{prefix}.values_file: {raw.values_file} does not exist")
    ns_value = raw.namespace
    if namespace is not None:
        ns_value = namespace_kind().check(namespace, Where("--namespace"))
        if not ns_value:
            raise ConfigError(f"--namespace: '' is not valid; valid: {DNS_LABEL_DESC}")
    return Environment(
        name=name,
        namespace=ns_value,
        kube_context=raw.kube_context,
        release=raw.release,
        values_file=raw.values_file,
        confirm=raw.confirm,
        databases=raw.databases,
        backup_encrypt=raw.backup_encrypt,
        backup_to=raw.backup_to,
    )


def yaml_string(value: str) -> str:
    """``value`` as a YAML double-quoted scalar: always a string, whatever it spells."""
    import json

    return json.dumps(str(value))


def validate_namespace(value: str, *, source: str) -> str:
    """``value`` if it is a valid namespace (DNS-1123 label), else one line naming ``source``."""
    checked: str = namespace_kind().check(value, Where(source))
    if not checked:
        raise ConfigError(f"{source}: '' is not valid; valid: {DNS_LABEL_DESC}")
    return checked
