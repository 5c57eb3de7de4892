"""tasks.sshremote: pure helpers, then Fabric against the real sshd (direct and via ProxyJump)."""

from __future__ import annotations

import hashlib
import os
import resource
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fails_with
from invoke import Config, Context

from tasks import sshremote
from tasks.core.errors import OpsError
from tests.fixtures_sshd import SshServer, free_port

# --------------------------------------------------------------------------- pure helpers


def test_pipefail_command_quotes_the_script() -> None:
    assert sshremote.pipefail_argv("a | b") == ["bash", "-eo", "pipefail", "-c", "a | b"]
    assert sshremote.pipefail_command("echo 'x' | gzip") == (
        "bash -eo pipefail -c 'echo '\"'\"'x'\"'\"' | gzip'"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (None, ["pg_dump", "db"]),
        ({}, ["pg_dump", "db"]),
        ({"PGPASSFILE": "/tmp/p", "A": "1"}, ["env", "A=1", "PGPASSFILE=/tmp/p", "pg_dump", "db"]),
    ],
    ids=["no-env", "empty-env", "sorted-env-prefix"],
)
def test_env_argv(env: dict[str, str] | None, expected: list[str]) -> None:
    assert sshremote.env_argv(["pg_dump", "db"], env) == expected


@pytest.mark.parametrize(
    ("ssh_config", "expected"),
    [
        (
            {},
            [
                "/h/.ssh/known_hosts",
                "/h/.ssh/known_hosts2",
                "/etc/ssh/ssh_known_hosts",
                "/etc/ssh/ssh_known_hosts2",
            ],
        ),
        (
            {"userknownhostsfile": "~/kh /abs/kh %d/x", "globalknownhostsfile": "/dev/null"},
            ["/h/kh", "/abs/kh", "/h/x", "/dev/null"],
        ),
    ],
    ids=["openssh-defaults", "configured-and-expanded"],
)
def test_known_hosts_files(ssh_config: dict[str, str], expected: list[str]) -> None:
    assert sshremote.known_hosts_files(ssh_config, home="/h") == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("a" * 64 + "  /b/x.gz\n", "a" * 64),
        ("\\" + "0" * 64 + "  /b/we\\nird\n", "0" * 64),
    ],
    ids=["plain", "escaped-name"],
)
def test_parse_sha256sum(output: str, expected: str) -> None:
    assert sshremote.parse_sha256sum(output) == expected


def test_parse_sha256sum_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not sha256sum output"):
        sshremote.parse_sha256sum("sha256sum: /x: No such file or directory\n")


def test_commit_argv_passes_paths_as_arguments() -> None:
    argv = sshremote.commit_argv("/b/x.partial", "/b/x", "f" * 64)
    assert argv[:4] == ["bash", "-eo", "pipefail", "-c"]
    assert argv[5:] == ["commit", "/b/x.partial", "/b/x", "f" * 64, "yes"]
    assert sshremote.commit_argv("/p", "/f", "0" * 64, sidecar=False)[-1] == "no"
    with pytest.raises(ValueError, match="not a sha256"):
        sshremote.commit_argv("/p", "/f", "abc")


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("", (None, "")),
        ("warn\nflowlet-sha256: " + "a" * 64 + "  -\n", ("a" * 64, "warn\n")),
        ("flowlet-sha256: " + "b" * 64 + "  -\nlate\n", ("b" * 64, "late\n")),
        ("flowlet-sha256: short  -\n", (None, "flowlet-sha256: short  -\n")),
    ],
    ids=["none", "last-line", "not-last-line", "malformed"],
)
def test_split_remote_sha256(stderr: str, expected: tuple[str | None, str]) -> None:
    assert sshremote.split_remote_sha256(stderr) == expected


def test_secret_cleanup_trap() -> None:
    assert sshremote.secret_cleanup_trap("/tmp/flowlet-ab/secret") == (
        "trap 'rm -rf -- /tmp/flowlet-ab' EXIT; "
    )


def test_import_does_not_load_fabric_or_paramiko() -> None:
    code = "import sys, tasks.sshremote; print(sorted({'fabric', 'paramiko'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout == "[]\n"


def test_config_defaults_declare_every_key() -> None:
    from tasks.backup.settings import SSH_SCHEMA

    assert SSH_SCHEMA.defaults() == {"config_file": "", "connect_timeout": 10.0}


# --------------------------------------------------------------------------- real sshd


@pytest.fixture
def ctx() -> Context:
    return Context(Config())


@pytest.fixture(params=["flowlet-direct", "flowlet-db"], ids=["direct", "via-gateway"])
def conn(request: pytest.FixtureRequest, ctx: Context, ssh_config: Path) -> Iterator[object]:
    with sshremote.connection(ctx, request.param, ssh_config_path=str(ssh_config)) as opened:
        yield opened


def _exit_message(excinfo: pytest.ExceptionInfo[OpsError]) -> str:
    message = str(excinfo.value.message)
    assert "\n" not in message, message
    assert excinfo.value.code != 0
    return message


@pytest.mark.slow
def test_connect_direct_and_through_proxyjump_gateway(
    ctx: Context, ssh_config: Path, sshd: SshServer
) -> None:
    from fabric import Connection
    from paramiko import Channel

    with sshremote.connection(ctx, "flowlet-direct", ssh_config_path=str(ssh_config)) as direct:
        assert direct.gateway is None
        assert sshremote.run_remote(direct, ["echo", "direct"]).stdout == "direct\n"
    with sshremote.connection(ctx, "flowlet-db", ssh_config_path=str(ssh_config)) as db:
        assert isinstance(db.gateway, Connection)
        assert db.gateway.original_host == "flowlet-bastion"
        assert db.gateway.is_connected
        # the session to flowlet-db rides a direct-tcpip channel of the bastion's transport
        assert isinstance(db.transport.sock._channel, Channel)  # read through a buffer
        assert (db.host, db.port, db.user) == (sshd.host, sshd.port, "root")
        for hop in (db, db.gateway):  # both hops tuned for bulk transfer
            assert hop.transport.remote_cipher == "aes128-gcm@openssh.com"
            assert hop.transport.default_window_size == sshremote.WINDOW_SIZE
        assert sshremote.run_remote(db, ["echo", "via bastion"]).stdout == "via bastion\n"
        gateway = db.gateway
    assert not db.is_connected and not gateway.is_connected  # close() closes the whole chain


@pytest.mark.slow
def test_connect_reads_ssh_config_file_from_invoke_config(ssh_config: Path) -> None:
    ctx = Context(Config(overrides={"ssh": {"config_file": str(ssh_config)}}))
    with sshremote.connection(ctx, "flowlet-db") as db:
        assert db.gateway is not None
        assert sshremote.run_remote(db, ["true"]).exited == 0


def test_connect_timeout_precedence(sshd: SshServer, tmp_path: Path) -> None:
    config = sshd.write_ssh_config(tmp_path / "ssh_config")  # ConnectTimeout 5 on each host
    config.write_text("Host flowlet-nt\n    HostName 127.0.0.1\n\n" + config.read_text())
    ctx = Context(Config(overrides={"ssh": {"config_file": str(config), "connect_timeout": 3}}))

    def timeouts(host: str, explicit: int | None = None) -> list[tuple[object, object]]:
        conn = sshremote.build_connection(ctx, host, connect_timeout=explicit)  # no network
        hops = [*sshremote.gateway_chain(conn), conn]
        return [(hop.connect_timeout, hop.connect_kwargs["banner_timeout"]) for hop in hops]

    assert timeouts("flowlet-nt") == [(3, 3)]  # config ssh.connect_timeout
    assert timeouts("flowlet-db") == [(5, 5), (5, 5)]  # ssh_config ConnectTimeout, both hops
    assert timeouts("flowlet-db", explicit=7) == [(7, 7), (7, 7)]  # the argument wins
    default = sshremote.build_connection(Context(Config()), "nohost.invalid")
    assert default.connect_timeout == 10


def test_connect_missing_ssh_config_file(ctx: Context, tmp_path: Path) -> None:
    with fails_with() as excinfo:
        sshremote.connect(ctx, "flowlet-db", ssh_config_path=str(tmp_path / "nope"))
    assert _exit_message(excinfo) == f"ssh.config_file: {str(tmp_path / 'nope')!r} is not a file"


@pytest.mark.slow
def test_stream_is_binary_safe(conn: object, tmp_path: Path) -> None:
    remote_copy = tmp_path / "remote-copy"  # the "remote" host is this machine
    every_byte = "".join(f"\\{i:03o}" for i in range(256))
    command = (
        f"{{ printf '{every_byte}'; printf '\\377\\376\\300\\200\\355\\240\\200\\r\\n\\000'; "
        f"head -c 5000000 /dev/urandom; }} | tee {remote_copy}"
    )
    dest = tmp_path / "blob.partial"
    progress: list[int] = []
    result = sshremote.stream_to_file(conn, command, dest, on_progress=progress.append)
    assert result.ok and result.exit_status == 0
    data = dest.read_bytes()
    assert data == remote_copy.read_bytes()
    assert data[:256] == bytes(range(256))
    assert result.bytes_written == len(data) == 256 + 10 + 5_000_000
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert sshremote.sha256_remote(conn, str(remote_copy)) == result.sha256
    assert progress[-1] == len(data)
    assert dest.stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "status", "stderr"),
    [
        ("false | gzip", 1, ""),
        (
            "head -c 100000 /dev/urandom | (cat; echo 'dump: FATAL: bad' >&2; exit 7) | gzip",
            7,
            "dump: FATAL: bad",
        ),
        ("echo partial output; nosuchcommand-xyz | gzip", 127, "nosuchcommand-xyz"),
    ],
    ids=["first-stage-fails", "middle-stage-fails-with-stderr", "missing-command"],
)
def test_stream_reports_remote_pipeline_failure(
    conn: object, tmp_path: Path, command: str, status: int, stderr: str
) -> None:
    dest = tmp_path / "x.gz.partial"
    result = sshremote.stream_to_file(conn, command, dest)
    assert not result.ok
    assert result.exit_status == status
    assert stderr in result.stderr
    assert not dest.exists()


@pytest.mark.slow
def test_stream_checks_remote_sha256(conn: object, tmp_path: Path) -> None:
    dest = tmp_path / "x.gz.partial"
    command = "echo note >&2; head -c 3000000 /dev/urandom | gzip -1"
    result = sshremote.stream_to_file(conn, command, dest, check_remote_sha256=True)
    assert result.ok and result.remote_sha256 == result.sha256
    assert result.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert result.stderr == "note\n"
    failed = sshremote.stream_to_file(conn, "false | gzip", dest, check_remote_sha256=True)
    assert failed.exit_status == 1 and not dest.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sender", "error"),
    [
        ("{}", "remote sent no digest"),
        ("{}; echo 'flowlet-sha256: " + "0" * 64 + "  -' >&2", "remote sent 0000000000"),
    ],
    ids=["no-digest", "wrong-digest"],
)
def test_stream_remote_sha256_mismatch_is_an_error(
    conn: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sender: str, error: str
) -> None:
    """Fault injection: a remote side that sends no digest, or another one, after exit 0."""
    monkeypatch.setattr(sshremote.stream, "sha256_tee_script", sender.format)
    dest = tmp_path / "x.partial"
    with pytest.raises(sshremote.RemoteStreamError, match=f"checksum mismatch .*{error}"):
        sshremote.stream_to_file(conn, "echo hi", dest, check_remote_sha256=True)
    assert not dest.exists()


@pytest.mark.slow
def test_without_pipefail_a_failed_dump_looks_like_success(conn: object, tmp_path: Path) -> None:
    """Why stream_to_file wraps commands in ``bash -o pipefail`` by default."""
    result = sshremote.stream_to_file(conn, "false | gzip", tmp_path / "x", pipefail=False)
    assert result.ok and result.bytes_written == 20  # the classic 20-byte .gz "backup"


@pytest.mark.slow
def test_stream_keeps_only_the_tail_of_stderr(conn: object, tmp_path: Path) -> None:
    command = "head -c 300000 /dev/zero | tr '\\0' e >&2; echo LAST >&2; exit 3"
    result = sshremote.stream_to_file(conn, command, tmp_path / "x")
    assert result.exit_status == 3
    assert result.stderr.startswith("[... ")
    assert result.stderr.endswith("eLAST\n")
    assert len(result.stderr) < sshremote.STDERR_LIMIT + 100


@pytest.mark.slow
def test_stream_sends_stdin_then_eof(conn: object, tmp_path: Path) -> None:
    dest = tmp_path / "x"
    result = sshremote.stream_to_file(conn, "cat | tr a-z A-Z", dest, stdin=b"secret\n")
    assert result.ok and dest.read_bytes() == b"SECRET\n"
    result = sshremote.stream_to_file(conn, "cat; echo done", dest)  # stdin closed: no hang
    assert result.ok and dest.read_bytes() == b"done\n"


PACED = "for i in $(seq 200); do head -c 20000 /dev/urandom || exit 1; sleep 0.05; done"


@pytest.mark.slow
def test_stream_connection_dropped_by_server_is_an_error(
    conn: object, tmp_path: Path, sshd: SshServer
) -> None:
    killed: list[int] = []

    def kill_server_side(received: int) -> None:
        if not killed:
            killed.extend(sshd.kill_sessions())

    dest = tmp_path / "x.partial"
    with pytest.raises(sshremote.RemoteStreamError, match="connection lost mid-stream after"):
        sshremote.stream_to_file(conn, PACED, dest, on_progress=kill_server_side)
    assert killed
    assert not dest.exists()


@pytest.mark.slow
def test_stream_transport_closed_from_another_thread_is_an_error(
    conn: object, tmp_path: Path
) -> None:
    import contextlib

    def close() -> None:  # the stream may be closing the same transport: that race is fine
        with contextlib.suppress(EOFError, OSError):
            conn.client.close()  # type: ignore[attr-defined]

    timer = threading.Timer(0.5, close)
    timer.start()
    dest = tmp_path / "x.partial"
    try:
        with pytest.raises(sshremote.RemoteStreamError):
            sshremote.stream_to_file(conn, PACED, dest)
    finally:
        timer.cancel()
        timer.join()
    assert not dest.exists()


@pytest.mark.slow
def test_stream_remote_killed_by_signal_is_an_error(conn: object, tmp_path: Path) -> None:
    dest = tmp_path / "x.partial"
    with pytest.raises(sshremote.RemoteStreamError, match="without an exit status"):
        sshremote.stream_to_file(conn, "head -c 1000 /dev/zero; kill -9 $$", dest)
    assert not dest.exists()


@pytest.mark.slow
def test_stream_idle_timeout(conn: object, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(sshremote.RemoteStreamError, match="no data for 2.0s after 3 bytes"):
        sshremote.stream_to_file(conn, "echo hi; sleep 8", tmp_path / "x", idle_timeout=2.0)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_stream_idle_timeout_keeps_collecting_quiet_stderr(conn: object, tmp_path: Path) -> None:
    command = "for i in 1 2 3 4 5 6; do echo x; sleep 0.25; done; echo late-error >&2; exit 4"
    result = sshremote.stream_to_file(conn, command, tmp_path / "x", idle_timeout=1.0)
    assert result.exit_status == 4
    assert result.stderr == "late-error\n"


def _pids_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.slow
def test_stream_ctrl_c_closes_channel_and_removes_dest(conn: object, tmp_path: Path) -> None:
    marker = f"flowlet-marker-{secrets.token_hex(4)}"

    def interrupt(received: int) -> None:
        raise KeyboardInterrupt

    dest = tmp_path / "x.partial"
    with pytest.raises(KeyboardInterrupt):
        sshremote.stream_to_file(conn, f"{PACED} # {marker}", dest, on_progress=interrupt)
    assert not dest.exists()
    deadline = time.monotonic() + 5
    while _pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids_with(marker) == [], "remote pipeline still running after Ctrl-C"
    # the connection itself is still usable
    assert sshremote.run_remote(conn, ["echo", "ok"]).stdout == "ok\n"


@pytest.mark.slow
def test_stream_ctrl_c_stops_a_silent_remote_command(conn: object, tmp_path: Path) -> None:
    """A command that is not writing (pg_dump waiting on a lock) gets no SIGPIPE: the guard
    kills the remote process group when the channel closes."""
    marker = f"300.{secrets.randbelow(10**6):06d}"

    def interrupt(received: int) -> None:
        raise KeyboardInterrupt

    dest = tmp_path / "x.partial"
    command = f"sleep 0.3; echo x; sleep {marker}"
    with pytest.raises(KeyboardInterrupt):
        sshremote.stream_to_file(conn, command, dest, on_progress=interrupt)
    assert not dest.exists()
    deadline = time.monotonic() + 5
    while _pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pids_with(marker) == [], "silent remote command still running after Ctrl-C"


@pytest.mark.slow
def test_stream_hangup_guard_ends_with_the_command(conn: object, tmp_path: Path) -> None:
    marker = f"flowlet-marker-{secrets.token_hex(4)}"
    result = sshremote.stream_to_file(conn, f"echo hi; wait # {marker}", tmp_path / "x")
    assert result.ok and (tmp_path / "x").read_bytes() == b"hi\n"
    deadline = time.monotonic() + 5
    while _pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pids_with(marker) == [], "hangup guard outlived the command"


@pytest.mark.slow
def test_stream_local_write_error_removes_dest(conn: object, tmp_path: Path) -> None:
    dest = tmp_path / "x.partial"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, hard))  # Python ignores SIGXFSZ: EFBIG
    try:
        with pytest.raises(OSError, match="File too large"):
            sshremote.stream_to_file(conn, "head -c 5000000 /dev/zero", dest)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert not dest.exists()


# --------------------------------------------------------------------------- connect failures


@pytest.mark.slow
@pytest.mark.parametrize("host", ["flowlet-direct", "flowlet-db"], ids=["direct", "via-gateway"])
def test_unreachable_host(ctx: Context, sshd: SshServer, tmp_path: Path, host: str) -> None:
    port = free_port()  # nothing listens there
    config = sshd.write_ssh_config(tmp_path / "ssh_config", port=port)
    with fails_with() as excinfo:
        sshremote.connect(ctx, host, ssh_config_path=str(config))
    if host == "flowlet-direct":
        expected = f"ssh flowlet-direct (127.0.0.1:{port}): connection refused"
    else:
        expected = (
            f"ssh flowlet-db (127.0.0.1:{port}): gateway flowlet-bastion (127.0.0.1:{port}): "
            "connection refused"
        )
    assert _exit_message(excinfo) == expected


@pytest.mark.slow
def test_silent_server_times_out(sshd: SshServer, tmp_path: Path) -> None:
    with socket.socket() as silent:  # completes the TCP handshake, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        config = sshd.write_ssh_config(tmp_path / "ssh_config", port=port)
        ctx = Context(Config(overrides={"ssh": {"config_file": str(config)}}))
        started = time.monotonic()
        with fails_with() as excinfo:
            sshremote.connect(ctx, "flowlet-direct", connect_timeout=1)
    assert time.monotonic() - started < 5
    assert _exit_message(excinfo) == (
        f"ssh flowlet-direct (127.0.0.1:{port}): no SSH handshake within 1s (not an SSH server?)"
    )


@pytest.mark.slow
def test_gateway_cannot_reach_target(ctx: Context, sshd: SshServer, tmp_path: Path) -> None:
    config = sshd.write_ssh_config(tmp_path / "ssh_config")
    port = free_port()
    config.write_text(
        config.read_text() + f"\nHost flowlet-db-down\n    HostName 127.0.0.1\n    Port {port}\n"
        "    ProxyJump flowlet-bastion\n"
    )
    with fails_with() as excinfo:
        sshremote.connect(ctx, "flowlet-db-down", ssh_config_path=str(config))
    assert _exit_message(excinfo) == (
        f"ssh flowlet-db-down (127.0.0.1:{port}): gateway flowlet-bastion could not connect to "
        f"127.0.0.1:{port} (Connect failed)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("host", ["flowlet-direct", "flowlet-db"], ids=["direct", "via-gateway"])
def test_authentication_failure(
    ctx: Context, ssh_config_wrong_key: Path, sshd: SshServer, host: str
) -> None:
    with fails_with() as excinfo:
        sshremote.connect(ctx, host, ssh_config_path=str(ssh_config_wrong_key))
    message = _exit_message(excinfo)
    assert message.startswith(f"ssh {host} (127.0.0.1:{sshd.port}): ")
    assert f"authentication failed for user root (keys: {sshd.extra_keys['wrong']})" in message


@pytest.mark.slow
@pytest.mark.parametrize("host", ["flowlet-direct", "flowlet-db"], ids=["direct", "via-gateway"])
def test_host_key_mismatch(
    ctx: Context, ssh_config_bad_hostkey: Path, sshd: SshServer, host: str
) -> None:
    with fails_with() as excinfo:
        sshremote.connect(ctx, host, ssh_config_path=str(ssh_config_bad_hostkey))
    message = _exit_message(excinfo)
    assert "HOST KEY MISMATCH for 127.0.0.1: server offers ssh-ed25519 SHA256:" in message
    assert "known_hosts_bad" in message
    if host == "flowlet-db":  # the bastion is checked first and fails
        assert "gateway flowlet-bastion" in message


@pytest.mark.slow
def test_unknown_host_key(ctx: Context, ssh_config_unknown_hostkey: Path, sshd: SshServer) -> None:
    with fails_with() as excinfo:
        sshremote.connect(ctx, "flowlet-direct", ssh_config_path=str(ssh_config_unknown_hostkey))
    message = _exit_message(excinfo)
    assert f"[127.0.0.1]:{sshd.port} is not in known_hosts (" in message
    assert "known_hosts_empty" in message
    assert "server offers ssh-ed25519 SHA256:" in message


@pytest.mark.slow
def test_unknown_host_key_on_target_behind_trusted_gateway(
    ctx: Context, sshd: SshServer, tmp_path: Path
) -> None:
    config = sshd.write_ssh_config(tmp_path / "ssh_config")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    config.write_text(
        f"Host flowlet-db\n    UserKnownHostsFile {empty}\n\n" + config.read_text()
    )  # first match wins: only the target's known_hosts is empty
    with fails_with() as excinfo:
        sshremote.connect(ctx, "flowlet-db", ssh_config_path=str(config))
    message = _exit_message(excinfo)
    assert message.startswith(f"ssh flowlet-db (127.0.0.1:{sshd.port}): host key not verified")
    assert "gateway" not in message


# --------------------------------------------------------------------------- files and secrets


@pytest.mark.slow
def test_remote_secret_file_is_private_never_on_argv_and_removed(
    conn: object, tmp_path: Path
) -> None:
    secret = f"pw-{secrets.token_hex(12)}"
    seen: list[int] = []
    stop = threading.Event()

    def scan() -> None:
        while not stop.is_set():
            seen.extend(_pids_with(secret))
            time.sleep(0.01)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        with sshremote.remote_secret_file(conn, f"*:*:*:*:{secret}\n".encode()) as path:
            directory = os.path.dirname(path)
            assert os.stat(directory).st_mode & 0o777 == 0o700
            assert os.stat(path).st_mode & 0o777 == 0o600
            result = sshremote.stream_to_file(
                conn, f'PGPASSFILE={path}; cat "$PGPASSFILE"; sleep 0.5', tmp_path / "out"
            )
            assert result.ok
            assert (tmp_path / "out").read_text() == f"*:*:*:*:{secret}\n"
    finally:
        stop.set()
        scanner.join()
    assert seen == []
    assert not os.path.exists(path) and not os.path.exists(directory)


@pytest.mark.slow
def test_remote_secret_file_removed_when_the_block_fails(conn: object) -> None:
    paths = []
    with (
        pytest.raises(RuntimeError, match="boom"),
        sshremote.remote_secret_file(conn, b"x", name="my.cnf") as path,
    ):
        paths.append(path)
        raise RuntimeError("boom")
    assert path.endswith("/my.cnf")
    assert not os.path.exists(os.path.dirname(path))


@pytest.mark.slow
def test_secret_cleanup_trap_removes_the_secret_remotely(conn: object, tmp_path: Path) -> None:
    path = sshremote.upload_secret(conn, b"x", str(tmp_path))
    assert path.startswith(f"{tmp_path}/flowlet-")
    script = sshremote.secret_cleanup_trap(path) + f"cat {path}"
    assert sshremote.stream_to_file(conn, script, tmp_path / "out").ok
    assert not os.path.exists(os.path.dirname(path))
    sshremote.remove_secret(conn, path)  # already gone: no error


@pytest.mark.slow
def test_commit_remote_file(conn: object, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    sshremote.ensure_remote_dir(conn, str(backups))
    assert backups.stat().st_mode & 0o777 == 0o700
    partial, final = backups / "db.sql.gz.partial", backups / "db.sql.gz"
    partial.write_bytes(b"\x1f\x8b dump")
    digest = hashlib.sha256(b"\x1f\x8b dump").hexdigest()
    assert sshremote.sha256_remote(conn, str(partial)) == digest
    sshremote.commit_remote_file(conn, str(partial), str(final), digest)
    assert not partial.exists()
    assert final.read_bytes() == b"\x1f\x8b dump"
    assert (backups / "db.sql.gz.sha256").read_text() == f"{digest}  db.sql.gz\n"
    assert (backups / "db.sql.gz.sha256").stat().st_mode & 0o777 == 0o600
    check = subprocess.run(["sha256sum", "-c", "db.sql.gz.sha256"], cwd=backups, check=False)
    assert check.returncode == 0


@pytest.mark.slow
def test_commit_remote_file_checksum_mismatch(conn: object, tmp_path: Path) -> None:
    partial, final = tmp_path / "x.partial", tmp_path / "x"
    partial.write_bytes(b"truncated")
    with fails_with() as excinfo:
        sshremote.commit_remote_file(conn, str(partial), str(final), "0" * 64)
    assert "checksum mismatch" in _exit_message(excinfo)
    assert excinfo.value.code == 3
    assert not partial.exists() and not final.exists()
    assert not (tmp_path / "x.sha256").exists()


@pytest.mark.slow
def test_sha256_remote_missing_file(conn: object, tmp_path: Path) -> None:
    with fails_with() as excinfo:
        sshremote.sha256_remote(conn, str(tmp_path / "missing"))
    assert "sha256sum" in _exit_message(excinfo)
    assert "No such file or directory" in str(excinfo.value.message)


@pytest.mark.slow
def test_run_remote_env_and_remove(conn: object, tmp_path: Path) -> None:
    result = sshremote.run_remote(conn, ["printenv", "A"], env={"A": "x y'z $HOME"})
    assert result.stdout == "x y'z $HOME\n"
    target = tmp_path / "f"
    target.write_text("x")
    sshremote.remove(conn, str(target))
    assert not target.exists()
    sshremote.remove(conn, str(target))  # missing is fine
    with pytest.raises(FileNotFoundError):
        sshremote.remove(conn, str(target), missing_ok=False)
