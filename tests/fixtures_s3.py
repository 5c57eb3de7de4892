"""A real S3 API for the offsite tests: ``rclone serve s3`` on 127.0.0.1 (free port, its own
generated credentials), serving a private directory (each bucket is a subdirectory).

``s3_server`` (session scope) is shared; ``private_s3`` starts a separate one that a test may
kill or restrict (``fsize_limit``: a full destination). ``S3Server.destination()`` gives the
config (``backup.destinations.<name>``) and the ``RCLONE_CONFIG_<NAME>_*`` variables for a
fresh bucket; the secret key is listed in ``env`` (passed to rclone only).
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, need


@dataclass
class S3Server:
    root: Path
    port: int
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    log: Path
    fsize_limit: int | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, remote: str = "offsite", *, secret_key: str | None = None) -> dict[str, str]:
        """``RCLONE_CONFIG_<REMOTE>_*``: the remote defined by variables (no config file)."""
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        return {
            f"{prefix}TYPE": "s3",
            f"{prefix}PROVIDER": "Rclone",
            f"{prefix}ENDPOINT": self.endpoint,
            f"{prefix}ACCESS_KEY_ID": self.access_key,
            f"{prefix}SECRET_ACCESS_KEY": self.secret_key if secret_key is None else secret_key,
        }

    def config_file(self, path: Path, remote: str = "offsite") -> Path:
        """An rclone config file (mode 0600) defining ``remote``."""
        path.write_text(
            f"[{remote}]\ntype = s3\nprovider = Rclone\nendpoint = {self.endpoint}\n"
            f"access_key_id = {self.access_key}\nsecret_access_key = {self.secret_key}\n"
        )
        path.chmod(0o600)
        return path

    def bucket(self) -> str:
        name = "b" + secrets.token_hex(6)
        (self.root / name).mkdir()
        return name

    def destination(self, remote: str = "offsite") -> tuple[dict[str, Any], dict[str, str], Path]:
        """(destination config, variables, the directory holding its objects)."""
        bucket = self.bucket()
        config = {
            "url": f"{remote}:{bucket}/flowlet",
            "env": [f"RCLONE_CONFIG_{remote.upper()}_SECRET_ACCESS_KEY"],
        }
        return config, self.env(remote), self.root / bucket / "flowlet"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def start(self) -> None:
        """(Re)start the server on the same port and directory."""
        self.stop()
        limit = self.fsize_limit

        def setup() -> None:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            if limit is not None:  # writes past the limit fail with EFBIG (a full disk)
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "rclone",
                    "serve",
                    "s3",
                    "--config",
                    "/dev/null",
                    "--addr",
                    f"127.0.0.1:{self.port}",
                    "--dir-cache-time",
                    "0s",  # tests change the directory behind its back
                    str(self.root),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=setup,
                # its credentials in its environment: the tests scan every argv for them
                env={**os.environ, "RCLONE_AUTH_KEY": f'"{self.access_key},{self.secret_key}"'},
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"rclone serve s3 did not listen: {self.log.read_text()[-2000:]}")


def start_s3(root: Path, *, fsize_limit: int | None = None) -> S3Server:
    need("rclone")
    root.mkdir(parents=True, exist_ok=True)
    server = S3Server(
        root=root,
        port=free_port(),
        access_key="AK" + secrets.token_hex(8),
        secret_key="SK" + secrets.token_urlsafe(24),
        process=subprocess.Popen(["true"]),
        log=root.parent / f"{root.name}.log",
        fsize_limit=fsize_limit,
    )
    server.process.wait()
    server.start()
    return server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A shared ``rclone serve s3`` (tests use a fresh bucket each: ``destination()``)."""
    server = start_s3(tmp_path_factory.mktemp("s3") / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_s3(tmp_path: Path) -> Iterator[Any]:
    """A factory of private S3 servers a test may kill or limit: ``private_s3(fsize_limit=N)``."""
    started: list[S3Server] = []

    def make(*, fsize_limit: int | None = None) -> S3Server:
        server = start_s3(tmp_path / f"s3-{len(started)}", fsize_limit=fsize_limit)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
