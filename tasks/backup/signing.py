"""Signed sidecars (``backup.signing_key``, ``backup.allowed_signers``): ``ssh-keygen -Y``.

README's promise: a backup made on one bastion can be authenticated on another, which has no
manifest line for it. At backup time the sidecar's line (``DIGEST  NAME``, the ``sha256sum``
format) is signed with an SSH key in the namespace ``flowlet-backup`` and stored beside it as
``NAME.sha256.sig`` (locally and at every destination the file reached). With ``--from``, an
object the local manifest does not know is trusted when its sidecar's signature verifies
against ``backup.allowed_signers`` (``ssh-keygen -Y find-principals`` / ``-Y verify``) and the
sidecar names that very object. The crypto is OpenSSH's; this module only runs it. By hand:
``ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n flowlet-backup -s NAME.sha256.sig <
NAME.sha256 && sha256sum -c NAME.sha256``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tasks.core import runner
from tasks.core.errors import OpsError

NAMESPACE = "flowlet-backup"
SIG_SUFFIX = ".sha256.sig"


def sign_argv(key: Path) -> list[str]:
    """Signs stdin, writes the signature to stdout."""
    return ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE]


def sign(key: Path, message: bytes) -> bytes:
    """The armored SSH signature of ``message`` (one line on failure, naming the key)."""
    done = runner.capture(
        sign_argv(key), env=runner.child_env(), input=message.decode("utf-8"), timeout=60
    )
    if not done.ok or "BEGIN SSH SIGNATURE" not in done.stdout:
        raise OpsError(
            f"backup.signing_key: signing with {key} failed: "
            f"{runner_tail(done.stderr) or 'no signature written'} (an unencrypted key, or one "
            "loaded in ssh-agent)"
        )
    return done.stdout.encode("utf-8")


def verify(allowed_signers: Path, message: bytes, signature: bytes) -> str | None:
    """The principal whose key in ``allowed_signers`` made ``signature`` over ``message``
    (namespace ``flowlet-backup``), or None when no allowed key did."""
    from tasks.core.secrets import run_dir

    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        return None  # not a sidecar this toolkit wrote
    fd, name = tempfile.mkstemp(prefix="sig-", dir=run_dir())
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(signature)
        found = runner.capture(
            ["ssh-keygen", "-Y", "find-principals", "-s", name, "-f", str(allowed_signers)],
            env=runner.child_env(),
            timeout=60,
        )
        for principal in found.stdout.splitlines() if found.ok else []:
            checked = runner.capture(
                [
                    "ssh-keygen",
                    "-Y",
                    "verify",
                    "-f",
                    str(allowed_signers),
                    "-I",
                    principal.strip(),
                    "-n",
                    NAMESPACE,
                    "-s",
                    name,
                ],
                env=runner.child_env(),
                input=text,
                timeout=60,
            )
            if checked.ok:
                return principal.strip()
        return None
    finally:
        os.unlink(name)


def runner_tail(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
