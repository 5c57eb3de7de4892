"""Where one backup file goes while it streams: the local partial file, an upload, the hash.

:class:`Outputs` is the sink of a local pipeline and of a ``--host`` stream alike. The local
``NAME.partial`` exists (locked) even with ``--no-local``, as the marker that this run is
writing ``NAME``; :meth:`Outputs.commit` places the local copy first (so a failed upload keeps
it), then finishes the upload.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from tasks.backup.files import Partial
from tasks.backup.offsite import Rclone, Upload
from tasks.backup.stream import Progress, human
from tasks.core.errors import OpsError


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
        return {"file": self.name, "bytes": self.bytes, "sha256": self.sha256,
                "locations": locations}  # fmt: skip


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

    def discard(self) -> None:
        """Nothing of this file remains: the partial file removed, the upload aborted."""
        self.meter.done()
        self.partial.discard()
        if self.upload is not None:
            self.upload.abort()
