"""Where one backup file goes while it streams: the local partial file, an upload, the hash.

An :class:`Upload` writes ``NAME.partial`` at the destination (``rclone rcat``), confirms its
size and sha256 there (the backend's own sha256, else by reading it back), moves it to ``NAME``
(never over an existing object) and then writes ``NAME.sha256``.

:class:`Outputs` is the sink of a local pipeline and of a ``--host`` stream alike. The local
``NAME.partial`` exists (locked) even with ``--no-local``, as the marker that this run is
writing ``NAME``; :meth:`Outputs.commit` places the local copy first (so a failed upload keeps
it), then finishes the upload.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.backup.files import Partial
from tasks.backup.stream import Progress, human
from tasks.core import runner
from tasks.core.errors import OpsError

if TYPE_CHECKING:  # pragma: no cover - http.client and json only when uploading
    from tasks.backup.offsite import Rclone


@dataclass
class FileResult:
    """One file of a backup set as written: where its copies really are."""

    name: str
    bytes: int
    sha256: str
    seconds: float
    local: str | None = None
    destinations: dict[str, str] = field(default_factory=dict)
    upload_error: str = ""

    def record(self) -> dict[str, object]:
        locations: dict[str, object] = {}
        if self.local:
            locations["local"] = self.local
        locations.update(self.destinations)
        return {
            "file": self.name,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "locations": locations,
        }


class Outputs:
    def __init__(
        self, final: Path, *, local: bool, rclone: Rclone | None, progress: Progress
    ) -> None:
        self.final = final
        self.local = local
        self.partial = Partial(final)
        self.digest = hashlib.sha256()
        self.size = 0
        self.started = time.monotonic()
        self.meter = progress
        try:
            self.upload = Upload(rclone, final.name) if rclone is not None else None
        except BaseException:
            self.partial.discard()
            raise
        if self.upload is not None:
            upload = self.upload
            self.meter.extra = lambda: f", uploaded {human(upload.sent)}"

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        if self.local:
            self.partial.write(chunk)
        if self.upload is not None:
            self.upload.write(chunk)
        self.meter.update(self.size)

    def commit(self, digest: str | None = None) -> FileResult:
        """Place the local copy, then finish the upload. ``digest``: the sha256 the sender
        computed (a remote stream), which must match ours."""
        self.meter.done()
        ours = self.digest.hexdigest()
        if digest is not None and digest != ours:
            self.discard()
            raise OpsError(f"backup failed: sha256 {ours} received, {digest} sent; nothing written")
        result = FileResult(self.final.name, self.size, ours, time.monotonic() - self.started)
        if self.local:
            self.partial.commit(ours)
            result.local = str(self.final)
        if self.upload is not None:
            try:
                url = self.upload.finish(self.size, ours)
                result.destinations[self.upload.rclone.dest.name] = url
            except OpsError as exc:
                result.upload_error = exc.message
        if not self.local:
            self.partial.discard()
        return result

    @contextmanager
    def failing(self) -> Iterator[None]:
        """On any failure inside: nothing of this file remains; a local write error (disk full)
        becomes one line."""
        try:
            yield
        except OSError as error:
            self.discard()
            raise OpsError(
                f"backup failed writing {self.partial.path}: {error.strerror}; nothing written"
            ) from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Nothing of this file remains: the partial file removed, the upload aborted."""
        self.meter.done()
        self.partial.discard()
        if self.upload is not None:
            self.upload.abort()


class Upload:
    """One object streamed to a destination: ``write`` chunks, then :meth:`finish`."""

    def __init__(self, rclone: Rclone, name: str) -> None:
        self.rclone = rclone
        self.name = name
        self.temp = name + ".partial"
        self.sent = 0
        self.error = ""
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish/abort
        self.proc = rclone.rcat(self.temp, self.log)
        assert self.proc.stdin is not None  # nosec B101 - PIPE
        self.fd = self.proc.stdin.fileno()

    def write(self, chunk: bytes) -> None:
        if self.error:
            return  # the upload failed: the local copy goes on; finish() reports it
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except BrokenPipeError:
            self.error = "rclone stopped reading"
            return
        self.sent += len(chunk)

    def _rcat_error(self) -> str:
        self.log.seek(0)
        from tasks.backup.offsite import tail

        return tail(self.log.read().decode("utf-8", "replace"))

    def finish(self, size: int, digest: str) -> str:
        """Close the stream, confirm size and sha256 on the destination, move the object to its
        final name, write its sidecar; return the object's URL. Any failure: one line."""
        label = f"upload to {self.rclone.dest.name}"
        try:
            assert self.proc.stdin is not None  # nosec B101
            self.proc.stdin.close()
            code = self.proc.wait()
            if code != 0 or self.error:
                raise OpsError(f"{label} failed: {self._rcat_error()}")
            item = self.rclone.stat(self.temp)
            if item is None or int(item.get("Size", -1)) != size:
                found = "nothing" if item is None else f"{item.get('Size')} bytes"
                raise OpsError(f"{label} failed: {self.temp} has {found}, sent {size} bytes")
            remote = self.rclone.sha256(self.temp)
            if remote != digest:
                raise OpsError(f"{label} failed: {self.temp} has sha256 {remote}, sent {digest}")
            if self.rclone.stat(self.name) is not None:
                raise OpsError(f"{label}: {self.name} already exists there; not replaced")
            self.rclone.move(self.temp, self.name)
        except BaseException:
            self.abort()
            raise
        finally:
            self.log.close()
        from tasks.backup.files import sidecar_text

        self.rclone.put_small(self.name + ".sha256", sidecar_text(self.name, digest).encode())
        return self.rclone.dest.join(self.name)

    def abort(self) -> None:
        """Stop the stream and remove the temporary object (best effort: it may be unreachable)."""
        runner.stop_group(self.proc, grace=1.0)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.rclone.delete(self.temp)
        except OpsError:
            pass
        if not self.log.closed:
            self.log.close()
