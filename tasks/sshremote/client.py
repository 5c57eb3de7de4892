"""Fabric connections from ssh_config: gateways, host-key checking, one-line errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Context

from tasks.core.errors import OpsError

from .transport import _buffer_gateway_socket, _tuned_transport

if TYPE_CHECKING:  # pragma: no cover
    from fabric import Connection

DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


class UnknownHostKeyError(Exception):
    """Raised by our missing-host-key policy (Paramiko's RejectPolicy says too little)."""

    def __init__(self, hostname: str, key_name: str, fingerprint: str) -> None:
        super().__init__(f"{hostname} {key_name} {fingerprint}")
        self.hostname = hostname
        self.key_name = key_name
        self.fingerprint = fingerprint


def known_hosts_files(ssh_config: dict[str, Any], home: str | None = None) -> list[str]:
    """The known_hosts files OpenSSH would read for a host's ssh_config lookup, ``~`` expanded."""
    home = os.path.expanduser("~") if home is None else home
    files: list[str] = []
    for key, default in (
        ("userknownhostsfile", DEFAULT_USER_KNOWN_HOSTS),
        ("globalknownhostsfile", DEFAULT_GLOBAL_KNOWN_HOSTS),
    ):
        value = ssh_config.get(key)
        names = value.split() if isinstance(value, str) else list(value or default)
        for name in names:
            name = name.replace("%d", home)
            if name == "~" or name.startswith("~/"):
                name = home + name[1:]
            files.append(name)
    return files


def _label(conn: Connection) -> str:
    return f"ssh {conn.original_host} ({conn.host}:{conn.port})"


def gateway_chain(conn: Connection) -> list[Connection]:
    """The gateway Connections in front of ``conn``, outermost (first hop) first."""
    from fabric import Connection as FabricConnection

    chain = []
    gateway = conn.gateway
    while isinstance(gateway, FabricConnection):
        chain.append(gateway)
        gateway = gateway.gateway
    return chain[::-1]


def _harden(conn: Connection) -> None:
    """Reject unknown host keys; load known_hosts as OpenSSH would; honour IdentitiesOnly."""
    import paramiko

    class Reject(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            raise UnknownHostKeyError(hostname, key.get_name(), key.fingerprint)

    client = conn.client
    files = known_hosts_files(conn.ssh_config)
    for name in files:
        if os.path.isfile(name):
            client.load_system_host_keys(name)
    client.set_missing_host_key_policy(Reject())
    kwargs = dict(conn.connect_kwargs)
    kwargs.update(banner_timeout=conn.connect_timeout, auth_timeout=conn.connect_timeout)
    if kwargs.get("key_filename"):  # Fabric's config clones may list a file twice
        kwargs["key_filename"] = list(dict.fromkeys(kwargs["key_filename"]))
    if str(conn.ssh_config.get("identitiesonly", "no")).lower() == "yes":
        kwargs.setdefault("allow_agent", False)
        kwargs.setdefault("look_for_keys", False)
    conn.connect_kwargs = kwargs


def build_connection(
    c: Context,
    host: str,
    *,
    ssh_config_path: str | None = None,
    connect_timeout: int | None = None,
) -> Connection:
    """A Fabric Connection to ``host`` (an ssh_config alias or ``user@host:port``), not opened.

    ssh_config: ``ssh_config_path``, else config ``ssh.config_file``, else ``~/.ssh/config`` and
    ``/etc/ssh/ssh_config``. ``ProxyJump`` hops become gateway Connections, hardened the same way.
    Timeout per hop (TCP connect, SSH banner, authentication): ``connect_timeout`` if given, else
    the hop's ssh_config ``ConnectTimeout``, else config ``ssh.connect_timeout``, else 10 s.
    """
    import logging

    from fabric import Config as FabricConfig
    from fabric import Connection as FabricConnection

    from tasks.core.settings import load

    # Paramiko logs a dropped connection ("Socket exception: ...") through logging's last-resort
    # stderr handler; our own error line says it (one line), so its records go nowhere.
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())

    ssh_settings = load(c, "ssh")  # ssh.config_file ("" = ssh's own files), ssh.connect_timeout
    if ssh_config_path is None:
        ssh_config_path = ssh_settings.config_file or None
    default_timeout = ssh_settings.connect_timeout
    if ssh_config_path is not None and not Path(ssh_config_path).expanduser().is_file():
        raise OpsError(f"ssh.config_file: {ssh_config_path!r} is not a file")
    base = c.config.clone()
    overrides: dict[str, Any] = {
        "timeouts": {"connect": default_timeout},
        "connect_kwargs": {"transport_factory": _tuned_transport},
    }
    if ssh_config_path is not None:
        overrides["ssh_config_path"] = str(Path(ssh_config_path).expanduser())
    base.load_overrides(overrides)
    config = base.clone(into=FabricConfig)
    config.load_ssh_config()  # the clone is lazy: read ssh.config_file or the default files
    try:
        conn = FabricConnection(host, config=config)
    except ValueError as exc:
        raise OpsError(f"ssh {host}: {exc}") from None
    for hop in [*gateway_chain(conn), conn]:
        if connect_timeout is not None:
            hop.connect_timeout = connect_timeout
        _harden(hop)
        _buffer_gateway_socket(hop)
    return conn


def open_connection(conn: Connection, *, target: str | None = None) -> None:
    """Open ``conn`` (gateways first); any failure becomes one ``OpsError`` line naming the hop."""
    target = _label(conn) if target is None else target
    for gateway in gateway_chain(conn):
        _open_one(
            gateway,
            f"{target}: gateway {gateway.original_host} ({gateway.host}:{gateway.port})",
        )
    _open_one(conn, target)


def _open_one(conn: Connection, label: str) -> None:
    import socket

    import paramiko

    try:
        conn.open()
        return
    except UnknownHostKeyError as exc:
        files = ", ".join(known_hosts_files(conn.ssh_config))
        reason = (
            f"host key not verified: {exc.hostname} is not in known_hosts ({files}); "
            f"server offers {exc.key_name} {exc.fingerprint} -- check it out of band, then add it"
        )
    except paramiko.BadHostKeyException as exc:
        files = ", ".join(known_hosts_files(conn.ssh_config))
        reason = (
            f"HOST KEY MISMATCH for {exc.hostname}: server offers {exc.key.get_name()} "
            f"{exc.key.fingerprint}, known_hosts ({files}) has {exc.expected_key.fingerprint} "
            "-- possible man-in-the-middle; fix known_hosts only if the key really changed"
        )
    except paramiko.AuthenticationException as exc:
        keys = conn.connect_kwargs.get("key_filename") or ["default keys/agent"]
        reason = f"authentication failed for user {conn.user} (keys: {', '.join(keys)}): {exc}"
    except paramiko.ChannelException as exc:
        gateway = getattr(conn.gateway, "original_host", conn.gateway)
        reason = f"gateway {gateway} could not connect to {conn.host}:{conn.port} ({exc.text})"
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        reasons = sorted({(e.strerror or str(e)).lower() for e in exc.errors.values()})
        reason = "; ".join(reasons)
    except TimeoutError:
        reason = f"timed out after {conn.connect_timeout}s"
    except socket.gaierror as exc:
        reason = f"cannot resolve {conn.host}: {exc.strerror}"
    except paramiko.SSHException as exc:
        # a silent peer fails either way, depending on which of Paramiko's timers fires first
        if "protocol banner" in str(exc) or "No existing session" in str(exc):
            reason = f"no SSH handshake within {conn.connect_timeout}s (not an SSH server?)"
        else:
            reason = f"ssh error: {exc}"
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
    close(conn)
    raise OpsError(f"{label}: {reason}")


def connect(
    c: Context,
    host: str,
    *,
    ssh_config_path: str | None = None,
    connect_timeout: int | None = None,
) -> Connection:
    """:func:`build_connection` + :func:`open_connection`: an open Connection, or ``OpsError``."""
    conn = build_connection(
        c, host, ssh_config_path=ssh_config_path, connect_timeout=connect_timeout
    )
    open_connection(conn)
    return conn


def close(conn: Connection) -> None:
    """Close ``conn`` and every gateway in front of it (Fabric closes only the last hop)."""
    from paramiko import SSHException

    for hop in [conn, *reversed(gateway_chain(conn))]:
        try:
            hop.close()
        except (EOFError, OSError, SSHException):
            pass  # a dead transport cannot say goodbye; closing is all that was asked


@contextmanager
def connection(
    c: Context,
    host: str,
    *,
    ssh_config_path: str | None = None,
    connect_timeout: int | None = None,
) -> Iterator[Connection]:
    """``with connection(c, "db") as conn:`` -- :func:`connect`, always :func:`close`."""
    conn = connect(c, host, ssh_config_path=ssh_config_path, connect_timeout=connect_timeout)
    try:
        yield conn
    finally:
        close(conn)
