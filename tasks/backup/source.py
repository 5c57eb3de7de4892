"""Where backups are read from: the local directory, or a destination (``--from NAME``).

A destination is not trusted: whoever can write an object there can write its sidecar too. An
object read from one is checked against the sha256 the local manifest recorded when this
bastion uploaded it (:meth:`Source.expected_sha256`); an object the manifest does not know, or
whose sidecar there disagrees with the manifest, is refused (:class:`Untrusted`) unless its
sidecar is signed by a key of ``backup.allowed_signers`` (:mod:`tasks.backup.signing`: a backup
another bastion made) or ``--trust-destination`` says explicitly to take the destination's
sidecar instead.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from invoke import Context

from tasks.backup.files import parse_sidecar, read_sidecar, sha256_file
from tasks.core.errors import ConfigError, OpsError
from tasks.core.settings import Settings

TRUST_HINT = "pass --trust-destination if it came from elsewhere"


class Untrusted(OpsError):
    """An object at a destination that the local manifest does not vouch for; ``state`` is the
    short form ``backup.list --check`` shows."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class Source:
    """Where backups are read from: the local directory or a destination (``--from``)."""

    def __init__(
        self,
        where: str,
        out: Path,
        rclone: Any = None,
        *,
        manifest: str = "manifest.jsonl",
        trust_destination: bool = False,
        allowed_signers: Path | None = None,
    ) -> None:
        self.where = where
        self.out = out
        self.rclone = rclone
        self.manifest = manifest  # file name under ``out``: the sha256s recorded at upload
        self.trust_destination = trust_destination
        self.allowed_signers = allowed_signers  # keys whose signed sidecars are trusted too
        self._recorded: dict[str, str] | None = None

    @property
    def is_local(self) -> bool:
        return self.rclone is None

    def label(self, name: str) -> str:
        return str(self.out / name) if self.is_local else self.rclone.dest.join(name)

    def expected_sha256(self, name: str) -> str | None:
        """The sha256 ``name`` must have: locally its sidecar; at a destination the one the
        local manifest recorded at upload, else the one its sidecar there says if a key of
        ``backup.allowed_signers`` signed that sidecar (raises :class:`Untrusted` for an object
        neither vouches for, or whose sidecar disagrees with the manifest), or with
        ``--trust-destination`` the destination's sidecar. None: no checksum at all (the
        caller refuses the file)."""
        if self.is_local:
            return read_sidecar(self.out / name)
        data = self.rclone.read_small(name + ".sha256")
        sidecar = parse_sidecar(data.decode("utf-8", "replace")) if data is not None else None
        if self.trust_destination:
            return sidecar
        recorded = self.recorded_sha256(name)
        if recorded is None and self.allowed_signers is not None and data is not None:
            recorded = self.signed_sha256(name, data)
        if recorded is None:
            raise Untrusted(
                f"{name}: not in the local manifest ({self.out / self.manifest})"
                f"{'' if self.allowed_signers is None else ' nor signed'}, so nothing "
                f"vouches for this object at {self.where}; refusing it ({TRUST_HINT})",
                "UNTRUSTED (not in the manifest)",
            )
        if sidecar is not None and sidecar != recorded:
            raise Untrusted(
                f"{name}: its sidecar at {self.where} does not match the sha256 the local "
                f"manifest recorded at upload; refusing it ({TRUST_HINT})",
                "UNTRUSTED (sidecar differs from the manifest)",
            )
        return recorded

    def signed_sha256(self, name: str, sidecar: bytes) -> str | None:
        """The digest of a sidecar signed by a key of ``backup.allowed_signers`` for this very
        object; None when it has no signature; :class:`Untrusted` when its signature or its
        name is wrong."""
        from tasks.backup.signing import SIG_SUFFIX, verify

        assert self.allowed_signers is not None  # nosec B101 - checked by the caller
        signature = self.rclone.read_small(name + SIG_SUFFIX)
        if signature is None:
            return None
        words = sidecar.decode("utf-8", "replace").split()
        principal = verify(self.allowed_signers, sidecar, signature)
        if principal is None or len(words) != 2 or words[1].lstrip("*") != name:
            raise Untrusted(
                f"{name}: its signed sidecar at {self.where} does not verify against "
                f"backup.allowed_signers ({self.allowed_signers}) for this object; refusing it "
                f"({TRUST_HINT})",
                "UNTRUSTED (bad signature)",
            )
        return parse_sidecar(sidecar.decode("utf-8", "replace"))

    def recorded_sha256(self, name: str) -> str | None:
        """The sha256 the local manifest recorded for ``name`` when it was backed up."""
        if self._recorded is None:
            from tasks.backup import manifest

            self._recorded = manifest.recorded_sha256s(manifest.read(self.out / self.manifest))
        return self._recorded.get(name)

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


def check_trust_flag(source: str | None, trust_destination: bool) -> None:
    if trust_destination and source is None:
        raise ConfigError(
            "--trust-destination: only with --from NAME (a local backup is checked against its "
            "sidecar on this disk)"
        )


def open_source(
    c: Context,
    settings: Settings,
    source: str | None,
    output_dir: Any = None,
    *,
    trust_destination: bool = False,
) -> Source:
    out = output_dir or settings.output_dir
    check_trust_flag(source, trust_destination)
    if source is None:
        return Source("local", out, manifest=settings.manifest)
    from tasks.backup.offsite import Rclone, resolve_destination
    from tasks.backup.settings import NAME
    from tasks.core.settings import flag

    source = flag(NAME, source, "--from")
    dest = resolve_destination(settings, source, flag="--from")
    if trust_destination:
        print(
            f"--trust-destination: trusting the sha256 sidecars at {dest.name}, not the local "
            "manifest (objects this bastion did not upload are accepted)",
            file=sys.stderr,
            flush=True,
        )
    return Source(
        dest.name,
        out,
        Rclone(dest).start(),
        manifest=settings.manifest,
        trust_destination=trust_destination,
        allowed_signers=settings.allowed_signers,
    )
