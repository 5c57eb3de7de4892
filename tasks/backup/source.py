"""Where backups are read from: the local directory, or a destination (``--from NAME``)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from invoke import Context

from tasks.backup.files import parse_sidecar, read_sidecar, sha256_file
from tasks.core.errors import OpsError
from tasks.core.settings import Settings


class Source:
    """Where backups are read from: the local directory or a destination (``--from``)."""

    def __init__(self, where: str, out: Path, rclone: Any = None) -> None:
        self.where = where
        self.out = out
        self.rclone = rclone

    @property
    def is_local(self) -> bool:
        return self.rclone is None

    def label(self, name: str) -> str:
        return str(self.out / name) if self.is_local else self.rclone.dest.join(name)

    def expected_sha256(self, name: str) -> str | None:
        if self.is_local:
            return read_sidecar(self.out / name)
        data = self.rclone.read_small(name + ".sha256")
        return parse_sidecar(data.decode("utf-8", "replace")) if data is not None else None

    def sha256(self, name: str) -> str:
        return sha256_file(self.out / name) if self.is_local else str(self.rclone.sha256(name))

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """The file's bytes as a stream (``rclone cat`` for a destination)."""
        if self.is_local:
            with open(self.out / name, "rb") as handle:
                yield handle
            return
        with tempfile.TemporaryFile() as log:
            proc = self.rclone.cat(name, log)
            assert proc.stdout is not None  # nosec B101 - PIPE
            try:
                yield proc.stdout
            finally:
                from tasks.core.runner import stop_group

                proc.stdout.close()
                if proc.poll() is None:
                    try:
                        proc.wait(timeout=600)
                    except subprocess.TimeoutExpired:
                        stop_group(proc)
            if proc.returncode != 0:
                log.seek(0)
                lines = log.read().decode("utf-8", "replace").strip().splitlines()
                raise OpsError(
                    f"{self.where}: reading {name} failed: "
                    f"{lines[-1] if lines else 'rclone exit ' + str(proc.returncode)}"
                )

    def delete(self, name: str) -> None:
        if self.is_local:
            import shutil

            path = self.out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        else:
            self.rclone.delete(name)

    def close(self) -> None:
        if self.rclone is not None:
            self.rclone.close()


def open_source(
    c: Context, settings: Settings, source: str | None, output_dir: Any = None
) -> Source:
    out = output_dir or settings.output_dir
    if source is None:
        return Source("local", out)
    from tasks.backup.offsite import Rclone, resolve_destination
    from tasks.backup.settings import NAME
    from tasks.core.settings import flag

    source = flag(NAME, source, "--from")
    dest = resolve_destination(settings, source, flag="--from")
    return Source(dest.name, out, Rclone(dest).start())
