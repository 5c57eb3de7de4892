"""SSH for tasks that work on remote hosts: Fabric connections, binary streams, remote secrets.

Generic building blocks (no backup logic). Fabric and Paramiko are imported only inside the
functions that use them, so ``inv --list`` stays light.

- :func:`connect` builds a Fabric ``Connection`` from ssh_config (``HostName``, ``User``,
  ``Port``, ``IdentityFile``, ``ProxyJump`` as Fabric gateways), rejects unknown host keys
  (known_hosts from ``UserKnownHostsFile``/``GlobalKnownHostsFile`` or OpenSSH's defaults), opens
  it and maps every failure to one ``OpsError`` line.
- :func:`stream_to` runs a remote pipeline (under ``bash -eo pipefail``) on a raw channel and
  hands its stdout as bytes to a callable, hashing as it goes (:func:`stream_to_file`: into a
  local file); a secret can go on the channel's stdin, never on a command line or the remote
  disk. A lost connection raises :class:`RemoteStreamError`; it is never reported as success.
- :func:`remote_secret_file` puts a secret (passfile, option file) into a fresh 0700 directory
  over SFTP, so it never appears on any command line, and always removes it.

Modules: :mod:`.client` (connections, host keys, error mapping), :mod:`.transport` (Paramiko
tuning), :mod:`.stream` (:func:`stream_to_file`, pipefail and remote-checksum helpers),
:mod:`.files` (remote commands, atomic commit, secrets). Everything public is re-exported here:
``from tasks import sshremote; sshremote.connect(...)``.
"""

from __future__ import annotations

from .client import (
    DEFAULT_GLOBAL_KNOWN_HOSTS,
    DEFAULT_USER_KNOWN_HOSTS,
    UnknownHostKeyError,
    build_connection,
    close,
    connect,
    connection,
    gateway_chain,
    known_hosts_files,
    open_connection,
)
from .files import (
    COMMIT_SCRIPT,
    commit_argv,
    commit_remote_file,
    ensure_remote_dir,
    env_argv,
    parse_sha256sum,
    remote_secret_file,
    remove,
    remove_secret,
    run_remote,
    secret_cleanup_trap,
    sha256_remote,
    upload_secret,
)
from .stream import (
    HANGUP_GUARD,
    PROGRESS_MARK,
    SECRET_READ,
    SHA256_MARK,
    STDERR_LIMIT,
    RemoteStreamError,
    StreamResult,
    kill_on_hangup_script,
    pipefail_argv,
    pipefail_command,
    sha256_tee_script,
    split_remote_sha256,
    stream_to,
    stream_to_file,
)
from .transport import CHUNK_SIZE, MAX_PACKET_SIZE, PREFERRED_CIPHERS, WINDOW_SIZE

__all__ = [
    "CHUNK_SIZE",
    "COMMIT_SCRIPT",
    "DEFAULT_GLOBAL_KNOWN_HOSTS",
    "DEFAULT_USER_KNOWN_HOSTS",
    "HANGUP_GUARD",
    "MAX_PACKET_SIZE",
    "PREFERRED_CIPHERS",
    "PROGRESS_MARK",
    "SECRET_READ",
    "SHA256_MARK",
    "STDERR_LIMIT",
    "WINDOW_SIZE",
    "RemoteStreamError",
    "StreamResult",
    "UnknownHostKeyError",
    "build_connection",
    "close",
    "commit_argv",
    "commit_remote_file",
    "connect",
    "connection",
    "ensure_remote_dir",
    "env_argv",
    "gateway_chain",
    "kill_on_hangup_script",
    "known_hosts_files",
    "open_connection",
    "parse_sha256sum",
    "pipefail_argv",
    "pipefail_command",
    "remote_secret_file",
    "remove",
    "remove_secret",
    "run_remote",
    "secret_cleanup_trap",
    "sha256_remote",
    "sha256_tee_script",
    "split_remote_sha256",
    "stream_to",
    "stream_to_file",
    "upload_secret",
]
