"""A test PKI made with ``openssl`` and database servers that only accept TLS.

Two CAs: ``ca`` signs the server certificate (SAN ``DNS:localhost``, ``IP:127.0.0.1``),
``other_ca`` signs nothing the servers use. The servers also listen on 127.0.0.2, an address
their certificate does not name (a wrong-name server without a second server). Dedicated
servers: the suite's other databases keep running without TLS.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_port, need
from fixtures_backup import PG_BIN, MariaServer, PgServer, postgres_cluster

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
CA_EXT = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign"]
WRONG_NAME_HOST = "127.0.0.2"  # a loopback address the server certificate does not name


@dataclass(frozen=True)
class Pki:
    """PEM files: ``ca`` (signed the server's certificate), ``other_ca``, the server's pair."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", *EC, *CA_EXT, "-keyout", str(key), "-out", str(cert),
             "-subj", f"/CN=flowlet test {name}", "-days", "2")  # fmt: skip
    return cert, key


def make_server_cert(
    directory: Path, ca: tuple[Path, Path], san: str = "DNS:localhost,IP:127.0.0.1"
) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"server.{ext}" for ext in ("crt", "key", "csr"))
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", *EC, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    ca = make_ca(directory, "ca")
    other = make_ca(directory, "other-ca")
    cert, key = make_server_cert(directory, ca)
    return Pki(ca=ca[0], other_ca=other[0], server_cert=cert, server_key=key)


@pytest.fixture(scope="session")
def pki() -> Iterator[Pki]:
    need("openssl")
    directory = Path(tempfile.mkdtemp(prefix="flowlet-pki-"))
    try:
        yield make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_tls_server(pki: Pki) -> Iterator[PgServer]:
    """PostgreSQL with ``ssl=on`` and an hba that rejects TCP connections without TLS
    (``hostnossl ... reject``): a backup that succeeds went over TLS. Db ``flowlet``."""
    need(str(PG_BIN / "initdb"), "runuser")
    conf = Path(tempfile.mkdtemp(prefix="flowlet-pg-tls-"))
    try:
        os.chmod(conf, 0o755)
        for source in (pki.server_cert, pki.server_key):
            shutil.copy(source, conf / source.name)
            shutil.chown(conf / source.name, "postgres", "postgres")
        os.chmod(conf / pki.server_key.name, 0o600)
        hba = conf / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
            "hostssl all all 127.0.0.0/8 scram-sha-256\n"
        )
        options = (
            f"-c ssl=on -c ssl_cert_file={conf / 'server.crt'} "
            f"-c ssl_key_file={conf / 'server.key'} -c hba_file={hba} "
            f"-c listen_addresses=127.0.0.1,{WRONG_NAME_HOST}"
        )
        with postgres_cluster(options) as server:
            server.create_db(
                "flowlet",
                "create table t (id int primary key, note text); "
                "insert into t select g, 'row ' || g from generate_series(1, 50) g",
            )
            yield server
    finally:
        shutil.rmtree(conf, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_tls_server(pki: Pki) -> Iterator[MariaServer]:
    """MariaDB with the test certificate and ``require_secure_transport``, listening on
    127.0.0.1 and 127.0.0.2; db ``shop`` (a table), user ``flowlet`` from any loopback address."""
    import time

    need("mariadb-install-db", "mariadbd", "mariadb", "mariadb-dump", "openssl")
    base = Path(tempfile.mkdtemp(prefix="flowlet-mariadb-tls-"))
    os.chmod(base, 0o755)
    shutil.chown(base, "mysql", "mysql")
    data, sock = base / "data", base / "mysqld.sock"
    for source in (pki.server_cert, pki.server_key):
        shutil.copy(source, base / source.name)
        shutil.chown(base / source.name, "mysql", "mysql")
    os.chmod(base / pki.server_key.name, 0o600)
    proc = None
    try:
        subprocess.run(
            ["mariadb-install-db", "--user=mysql", f"--datadir={data}", "--skip-test-db",
             "--auth-root-authentication-method=socket"],
            check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={data}", f"--socket={sock}",
             f"--port={port}", f"--bind-address=127.0.0.1,{WRONG_NAME_HOST}",
             "--skip-name-resolve", f"--pid-file={base / 'mysqld.pid'}",
             f"--log-error={base / 'error.log'}", "--innodb-buffer-pool-size=16M",
             "--skip-log-bin", f"--ssl-cert={base / 'server.crt'}",
             f"--ssl-key={base / 'server.key'}", "--require-secure-transport=ON"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = MariaServer(base, port, sock, "flowlet", "tls:" + secrets.token_urlsafe(12))
        deadline = time.monotonic() + 60
        ping = ["mariadb-admin", f"--socket={sock}", "-u", "root", "ping"]
        while subprocess.run(ping, capture_output=True, check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "error.log").read_text())
            time.sleep(0.2)
        server.sql(
            f"create user flowlet@'127.%' identified by '{server.password}' require ssl;"
            "grant all on *.* to flowlet@'127.%'; create database shop;"
            "create table shop.t (id int primary key, note text);"
            "use shop; insert into t select seq, concat('row ', seq) from seq_1_to_50;"
        )
        yield server
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)
