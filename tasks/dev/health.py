"""Health checks of the stack's processes: HTTP 200 on the health URL, PostgreSQL accepting
connections, or (without a health URL) the port open. Each answers ``(healthy, why not)``."""

from __future__ import annotations

import socket
import struct

from tasks.dev.plan import ProcessSpec


def port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound (something listens there already)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status code of ``GET url`` (None when nothing answers)."""
    import urllib.error
    import urllib.request

    # A local http:// health URL from the project's own config.
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # nosec B310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def postgres_message(host: str, port: int, timeout: float = 1.0) -> bytes:
    """First bytes of the server's answer to a startup packet (``b''`` when it cannot connect)."""
    params = b"user\0flowlet_ready_probe\0database\0postgres\0\0"
    packet = struct.pack("!ii", 8 + len(params), 196608) + params
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            return sock.recv(4096)
    except OSError:
        return b""


def postgres_accepting(answer: bytes) -> bool:
    """An auth request (R) or any error but 57P03 ("starting up") means it accepts connections."""
    if answer[:1] == b"R":
        return True
    return answer[:1] == b"E" and b"C57P03\0" not in answer


def check(spec: ProcessSpec) -> tuple[bool, str]:
    """``(True, "")`` when ``spec`` is healthy, else ``(False, what the check saw)``."""
    if spec.ready == "postgres":
        answer = postgres_message(spec.host, spec.port)
        if postgres_accepting(answer):
            return True, ""
        return False, "not accepting connections" if answer else "no answer on its port"
    if spec.ready == "http":
        status = http_status(spec.health_url)
        if status == 200:
            return True, ""
        return False, f"HTTP {status}" if status is not None else "no answer"
    if port_open(spec.host, spec.port):
        return True, ""
    return False, "port closed"
