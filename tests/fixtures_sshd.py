"""A real OpenSSH sshd on 127.0.0.1 (free port, generated keys) for tests that use SSH/Fabric.

``sshd`` (session scope) starts ``/usr/sbin/sshd -D -e -f <config>`` with a generated ed25519
host key and a generated client key pair in a private temp dir; it accepts only that client key
(``AuthorizedKeysFile`` in the temp dir, ``PermitRootLogin prohibit-password``). The yielded
:class:`SshServer` writes ssh_config files with two hosts, ``flowlet-bastion`` and ``flowlet-db``
(``ProxyJump flowlet-bastion``), both pointing at this one sshd, so a gateway hop is exercised,
plus ``flowlet-direct`` (the same server without a gateway).

``ssh_config`` (function scope) is such a file in the test's tmp dir; ``ssh_config_bad_hostkey``,
``ssh_config_unknown_hostkey`` and ``ssh_config_wrong_key`` are the fault variants.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import free_port

SSHD = "/usr/sbin/sshd"
HOSTS = ("flowlet-bastion", "flowlet-db")


def keygen(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair at ``path``; return the public key line (``type base64``)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    path.chmod(0o600)
    kind, blob = path.with_suffix(".pub").read_text().split()[:2]
    return f"{kind} {blob}"


@dataclass
class SshServer:
    """Handle on the running test sshd."""

    host: str
    port: int
    user: str
    client_key: Path
    host_key_line: str  # "ssh-ed25519 AAAA..." (public)
    directory: Path
    process: subprocess.Popen[bytes]
    log: Path
    extra_keys: dict[str, Path] = field(default_factory=dict)

    @property
    def known_hosts_entry(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key_line}\n"

    def write_known_hosts(self, path: Path, key_line: str | None = None) -> Path:
        """A known_hosts file for this server (``key_line`` overrides the real host key)."""
        line = self.host_key_line if key_line is None else key_line
        path.write_text(f"[{self.host}]:{self.port} {line}\n")
        path.chmod(0o600)
        return path

    def write_ssh_config(
        self,
        path: Path,
        *,
        known_hosts: Path | None = None,
        identity: Path | None = None,
        port: int | None = None,
        extra: str = "",
    ) -> Path:
        """An ssh_config with ``flowlet-bastion`` and ``flowlet-db`` (via ``ProxyJump``).

        ``known_hosts`` defaults to a correct file beside ``path``; ``identity`` to the accepted
        client key; ``port`` to the server's (give a closed port to simulate an unreachable host).
        """
        if known_hosts is None:
            known_hosts = self.write_known_hosts(path.with_name(path.name + ".known_hosts"))
        identity = self.client_key if identity is None else identity
        port = self.port if port is None else port
        common = (
            f"    HostName {self.host}\n"
            f"    Port {port}\n"
            f"    User {self.user}\n"
            f"    IdentityFile {identity}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {known_hosts}\n"
            "    GlobalKnownHostsFile /dev/null\n"
            "    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n"
            "    ConnectTimeout 5\n"
            f"{extra}"
        )
        path.write_text(
            f"Host flowlet-bastion\n{common}\n"
            f"Host flowlet-db\n    ProxyJump flowlet-bastion\n{common}\n"
            f"Host flowlet-direct\n{common}"
        )
        path.chmod(0o600)
        return path

    def session_pids(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener)."""
        return children_of(self.process.pid)

    def kill_sessions(self) -> list[int]:
        """SIGKILL every per-connection sshd process: each client sees its connection drop."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


def children_of(parent: int) -> list[int]:
    """PIDs whose parent is ``parent`` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # field 4 (ppid) follows the parenthesised command name, which may contain spaces
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            pids.append(int(entry.name))
    return pids


def _wait_for_banner(host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited ({process.returncode}): {log.read_text()}")
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on {host}:{port}: {log.read_text()}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real OpenSSH sshd on 127.0.0.1:<free port>, accepting only a generated client key."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is missing openssh-server: .ci/run should have installed it")
        pytest.skip("needs openssh-server (/usr/sbin/sshd)")
    if os.geteuid() != 0:
        pytest.skip("the sshd fixture logs in as root (tests run as root in CI)")
    directory = tmp_path_factory.mktemp("sshd")
    directory.chmod(0o700)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    host_key_line = keygen(directory / "ssh_host_ed25519_key", "flowlet-test-host")
    client_key = directory / "id_ed25519"
    authorized = keygen(client_key, "flowlet-test-client")
    (directory / "authorized_keys").write_text(authorized + "\n")
    (directory / "authorized_keys").chmod(0o600)
    extra_keys = {"wrong": directory / "id_wrong"}
    keygen(extra_keys["wrong"], "flowlet-test-unauthorized")
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {directory / 'ssh_host_ed25519_key'}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "AllowTcpForwarding yes\n"
        "X11Forwarding no\n"
        "PrintMotd no\n"
        "MaxSessions 64\n"
        "MaxStartups 64\n"
        "LogLevel INFO\n"
        "Subsystem sftp internal-sftp\n"
    )
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
    log = directory / "sshd.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_banner("127.0.0.1", port, process, log)
        yield SshServer(
            host="127.0.0.1",
            port=port,
            user="root",
            client_key=client_key,
            host_key_line=host_key_line,
            directory=directory,
            process=process,
            log=log,
            extra_keys=extra_keys,
        )
    finally:
        # SIGTERM the listener, then any per-connection children left behind.
        children = []
        if process.poll() is None:
            children = children_of(process.pid)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def ssh_config(sshd: SshServer, tmp_path: Path) -> Path:
    """An ssh_config (flowlet-bastion, flowlet-db via ProxyJump) with a correct known_hosts."""
    return sshd.write_ssh_config(tmp_path / "ssh_config")


@pytest.fixture
def ssh_config_bad_hostkey(sshd: SshServer, tmp_path: Path) -> Path:
    """known_hosts names this server with a *different* ed25519 key (a host key mismatch)."""
    other = keygen(tmp_path / "other_host_key", "not-the-server")
    known = sshd.write_known_hosts(tmp_path / "known_hosts_bad", key_line=other)
    return sshd.write_ssh_config(tmp_path / "ssh_config_bad_hostkey", known_hosts=known)


@pytest.fixture
def ssh_config_unknown_hostkey(sshd: SshServer, tmp_path: Path) -> Path:
    """known_hosts is empty: the server's host key is unknown."""
    known = tmp_path / "known_hosts_empty"
    known.write_text("")
    return sshd.write_ssh_config(tmp_path / "ssh_config_unknown", known_hosts=known)


@pytest.fixture
def ssh_config_wrong_key(sshd: SshServer, tmp_path: Path) -> Path:
    """The client offers a key the server does not accept (authentication failure)."""
    return sshd.write_ssh_config(
        tmp_path / "ssh_config_wrong_key", identity=sshd.extra_keys["wrong"]
    )
