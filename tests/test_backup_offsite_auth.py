"""A destination is not trusted: an object fetched with ``--from`` must hash to the sha256 the
local manifest recorded when it was uploaded, whatever its sidecar there says. Forged objects
(with matching forged sidecars) and objects the manifest does not know are refused in one line
by restore, verify (and its restore test), check and ``list --check``; ``--trust-destination``
takes the destination's sidecar, explicitly and saying so. Pure checks of the rule first, then
``inv`` against ``rclone serve s3``."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures_backup import BackupEnv, update_config
from fixtures_s3 import S3Server
from test_backup_offsite import Offsite, use

from tasks.backup import manifest
from tasks.backup.files import sidecar_text
from tasks.backup.source import Source, Untrusted
from tasks.core.errors import ConfigError

NAME = "development-postgres-20260101T000000Z.sql.gz"
GOOD = "a" * 64
EVIL = "b" * 64


class FakeRclone:
    """Only what :meth:`Source.expected_sha256` reads: a sidecar at the destination."""

    def __init__(self, sidecars: dict[str, str]) -> None:
        self.sidecars = sidecars

    def read_small(self, name: str) -> bytes | None:
        digest = self.sidecars.get(name.removesuffix(".sha256"))
        return sidecar_text(name, digest).encode() if digest else None


def source_with(
    tmp_path: Path, recorded: dict[str, str], sidecars: dict[str, str], trust: bool = False
) -> Source:
    for name, digest in recorded.items():
        manifest.append(
            tmp_path / "manifest.jsonl", {"event": "backup", "file": name, "sha256": digest}
        )
    return Source("offsite", tmp_path, FakeRclone(sidecars), trust_destination=trust)


@pytest.mark.parametrize(
    "recorded, sidecar, trust, want",
    [
        ({NAME: GOOD}, GOOD, False, GOOD),
        ({NAME: GOOD}, None, False, GOOD),  # the manifest vouches even without a sidecar
        ({NAME: GOOD}, EVIL, False, "UNTRUSTED (sidecar differs from the manifest)"),
        ({}, EVIL, False, "UNTRUSTED (not in the manifest)"),
        ({}, None, False, "UNTRUSTED (not in the manifest)"),
        ({}, EVIL, True, EVIL),
        ({NAME: GOOD}, EVIL, True, EVIL),
        ({}, None, True, None),  # nothing at all: the caller refuses ("checksum missing")
    ],
    ids=[
        "manifest-and-sidecar-agree",
        "manifest-only",
        "sidecar-disagrees",
        "unknown-object",
        "unknown-no-sidecar",
        "trusted-unknown",
        "trusted-disagreeing",
        "trusted-nothing",
    ],
)
def test_expected_sha256_at_a_destination(
    tmp_path: Path, recorded: dict[str, str], sidecar: str | None, trust: bool, want: str | None
) -> None:
    source = source_with(tmp_path, recorded, {NAME: sidecar} if sidecar else {}, trust)
    if want is not None and want.startswith("UNTRUSTED"):
        with pytest.raises(Untrusted) as caught:
            source.expected_sha256(NAME)
        assert caught.value.state == want
        message = caught.value.message
        assert "\n" not in message and message.startswith(f"{NAME}: ")
        assert message.endswith("(pass --trust-destination if it came from elsewhere)")
    else:
        assert source.expected_sha256(NAME) == want


def test_a_local_source_keeps_its_sidecar(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(b"x")
    (tmp_path / f"{NAME}.sha256").write_text(sidecar_text(NAME, GOOD))
    assert Source("local", tmp_path).expected_sha256(NAME) == GOOD


def test_recorded_sha256s_include_the_globals_companion_and_skip_other_events() -> None:
    records: list[dict[str, Any]] = [
        {"event": "backup", "file": "a", "sha256": GOOD, "globals": {"file": "g", "sha256": EVIL}},
        {"event": "verify", "file": "b", "ok": True},
        {"event": "failed", "error": "x"},
        {"event": "backup", "file": "c"},  # no sha256: vouches for nothing
    ]
    assert manifest.recorded_sha256s(records) == {"a": GOOD, "g": EVIL}


def test_trust_destination_needs_from() -> None:
    from tasks.backup.source import check_trust_flag

    check_trust_flag("offsite", True)
    check_trust_flag(None, False)
    with pytest.raises(ConfigError, match=r"^--trust-destination: only with --from NAME"):
        check_trust_flag(None, True)


# -- from the inv command line, against rclone serve s3 -----------------------------------------

FORGED_MARK = "-- PostgreSQL database dump complete\n"


@pytest.fixture
def offsite(
    pg_backup_env: BackupEnv, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Offsite:
    return use(pg_backup_env, s3_server, monkeypatch)


def inv(offsite: Offsite, *argv: str) -> tuple[int, str, str]:
    proc = offsite.inv(*argv)
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def upload(offsite: Offsite) -> str:
    code, _out, err = inv(
        offsite, "backup.postgres", "--to", "offsite", "--format", "plain", "--compress", "gzip"
    )
    assert code == 0, err
    (name,) = [n for n in offsite.objects() if not n.endswith((".sha256", ".sig"))]
    return name


def plant(offsite: Offsite, name: str, data: bytes) -> None:
    """Write an object and a sidecar that matches it, as whoever can write the bucket can."""
    (offsite.bucket / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (offsite.bucket / f"{name}.sha256").write_text(sidecar_text(name, digest))


def hostile_dump(marker: Path) -> bytes:
    """A plain dump that runs a shell command if psql ever executes it."""
    script = f"\\! touch {marker}\nCREATE TABLE pwned (x int);\n{FORGED_MARK}"
    return gzip.compress(script.encode())


def benign_dump() -> bytes:
    script = f"CREATE TABLE forged (x int);\nINSERT INTO forged VALUES (1);\n{FORGED_MARK}"
    return gzip.compress(script.encode())


def database_exists(env: BackupEnv, name: str) -> bool:
    return env.pg.sql(f"select count(*) from pg_database where datname = '{name}'") == "1"


def refused(err: str, name: str, why: str) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith(f"{name}: ") and why in err, err
    assert err.rstrip("\n").endswith("(pass --trust-destination if it came from elsewhere)"), err


@pytest.mark.slow
def test_forged_object_and_sidecar_are_refused(offsite: Offsite, tmp_path: Path) -> None:
    env = offsite.env
    name = upload(offsite)
    code, _out, err = inv(offsite, "backup.verify", "--latest", "--from", "offsite")
    assert code == 0, err  # the genuine object passes
    marker = tmp_path / "pwned"
    plant(offsite, name, hostile_dump(marker))
    why = "does not match the sha256 the local manifest recorded at upload"

    target = "forged_" + uuid.uuid4().hex[:8]
    code, out, err = inv(offsite, "backup.restore", name, "--from", "offsite", "--database", target)
    assert code == 1 and out == ""
    refused(err, name, why)
    assert not database_exists(env, target)
    for argv in (
        ("backup.verify", "--latest", "--from", "offsite"),
        ("backup.verify", "--file", name, "--from", "offsite"),
        ("backup.verify", "--latest", "--from", "offsite", "--restore-test"),
    ):
        code, _out, err = inv(offsite, *argv)
        assert code == 1, argv
        refused(err, name, why)
    code, out, _err = inv(offsite, "backup.check", "--database", "postgres", "--from", "offsite")
    assert code == 2 and "does NOT verify: " in out and why in out, out
    code, out, err = inv(offsite, "backup.list", "--from", "offsite", "--check")
    assert code == 0 and f"{name}\t" in out, err
    assert "UNTRUSTED (sidecar differs from the manifest)" in out
    assert not marker.exists()  # nothing ran
    assert not [p for p in env.out.iterdir() if ".partial" in p.name]
    lines = (env.out / "manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["ok"] is False  # the refused verification is recorded


@pytest.mark.slow
def test_an_object_the_manifest_does_not_know_is_refused(offsite: Offsite, tmp_path: Path) -> None:
    env = offsite.env
    upload(offsite)
    stranger = "development-postgres-20300101T000000Z.sql.gz"  # newer than any real one
    marker = tmp_path / "pwned"
    plant(offsite, stranger, hostile_dump(marker))
    target = "stranger_" + uuid.uuid4().hex[:8]
    code, _out, err = inv(
        offsite, "backup.restore", stranger, "--from", "offsite", "--database", target
    )
    assert code == 1
    refused(err, stranger, "not in the local manifest")
    code, _out, err = inv(offsite, "backup.verify", "--latest", "--from", "offsite")
    assert code == 1
    refused(err, stranger, "not in the local manifest")
    assert not marker.exists() and not database_exists(env, target)


@pytest.mark.slow
def test_trust_destination_restores_what_the_destination_says(offsite: Offsite) -> None:
    """A benign dump planted at the destination (as another bastion would upload one)."""
    env = offsite.env
    name = upload(offsite)
    plant(offsite, name, benign_dump())
    notice = "--trust-destination: trusting the sha256 sidecars at offsite, not the local manifest"
    code, out, err = inv(offsite, "backup.verify", "--latest", "--from", "offsite")
    assert code == 1  # refused without the flag
    code, out, err = inv(
        offsite, "backup.verify", "--latest", "--from", "offsite", "--trust-destination"
    )
    assert code == 0 and err.startswith(notice) and err.count("\n") == 1, err
    assert f"{name}: sha256 ok" in out
    target = "trusted_" + uuid.uuid4().hex[:8]
    code, out, err = inv(
        offsite,
        "backup.restore",
        name,
        "--from",
        "offsite",
        "--database",
        target,
        "--trust-destination",
    )
    assert code == 0 and err.startswith(notice), err
    assert env.pg.sql("select x from forged", db=target) == "1"


@pytest.mark.slow
def test_trust_destination_is_only_for_a_destination(offsite: Offsite) -> None:
    upload(offsite)
    code, _out, err = inv(offsite, "backup.verify", "--latest", "--trust-destination")
    assert code == 1 and err.startswith("--trust-destination: only with --from NAME"), err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_the_genuine_round_trip_still_passes(offsite: Offsite) -> None:
    env = offsite.env
    name = upload(offsite)
    for path in (env.out / name, env.out / f"{name}.sha256"):
        path.unlink()  # this bastion lost its copy; the manifest still vouches for it
    code, out, err = inv(
        offsite, "backup.verify", "--latest", "--from", "offsite", "--restore-test"
    )
    assert code == 0 and err == "", err
    assert "restore test ok" in out
    target = "genuine_" + uuid.uuid4().hex[:8]
    code, out, err = inv(offsite, "backup.restore", name, "--from", "offsite", "--database", target)
    assert code == 0 and err == "", err
    assert env.pg.checksum(target) == env.pg.checksum("flowlet")
    assert not [p for p in env.out.iterdir() if ".partial" in p.name]


# -- signed sidecars: a second bastion (no manifest line) trusts what an allowed key signed --------


def make_signer(directory: Path) -> tuple[Path, Path]:
    """(an unencrypted ed25519 key, an allowed_signers file naming it ``bastion-a``)."""
    key = directory / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bastion-a", "-f", str(key)],
        check=True,
    )
    public = " ".join(key.with_name("signing_key.pub").read_text().split()[:2])
    allowed = directory / "allowed_signers"
    allowed.write_text(f"bastion-a {public}\n")
    return key, allowed


@pytest.mark.slow
def test_a_signed_backup_is_trusted_by_another_bastion(offsite: Offsite, tmp_path: Path) -> None:
    env = offsite.env
    key, allowed = make_signer(tmp_path)
    update_config(env.config, backup={"signing_key": str(key), "allowed_signers": str(allowed)})
    name = upload(offsite)
    assert sorted(offsite.objects()) == sorted([name, f"{name}.sha256", f"{name}.sha256.sig"])
    local_sig = env.out / f"{name}.sha256.sig"
    assert local_sig.stat().st_mode & 0o777 == 0o600
    assert (offsite.bucket / f"{name}.sha256.sig").read_bytes() == local_sig.read_bytes()
    by_hand = subprocess.run(  # README's manual check
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "bastion-a"]
        + ["-n", "flowlet-backup", "-s", str(local_sig)],
        input=(env.out / f"{name}.sha256").read_bytes(),
        capture_output=True,
    )
    assert by_hand.returncode == 0, by_hand.stderr

    other = tmp_path / "bastion-b"  # another bastion: its own (empty) manifest
    code, out, err = inv(
        offsite, "backup.verify", "--latest", "--from", "offsite", "--output-dir", str(other)
    )
    assert code == 0 and err == "" and f"{name}: sha256 ok" in out, err
    target = "signed_" + uuid.uuid4().hex[:8]
    code, out, err = inv(
        offsite,
        "backup.restore",
        name,
        "--from",
        "offsite",
        "--database",
        target,
        "--output-dir",
        str(other),
    )
    assert code == 0 and err == "", err
    assert env.pg.checksum(target) == env.pg.checksum("flowlet")

    renamed = "development-postgres-20300101T000000Z.sql.gz"  # a signed sidecar of another name
    for suffix in ("", ".sha256", ".sha256.sig"):
        (offsite.bucket / f"{renamed}{suffix}").write_bytes(
            (offsite.bucket / f"{name}{suffix}").read_bytes()
        )
    code, _out, err = inv(
        offsite, "backup.verify", "--latest", "--from", "offsite", "--output-dir", str(other)
    )
    assert code == 1
    refused(err, renamed, "does not verify against backup.allowed_signers")
    for suffix in ("", ".sha256", ".sha256.sig"):
        (offsite.bucket / f"{renamed}{suffix}").unlink()

    marker = tmp_path / "pwned"
    plant(offsite, name, hostile_dump(marker))  # object and sidecar forged, signature kept
    for out_dir in (str(other), str(env.out)):
        code, _out, err = inv(
            offsite, "backup.verify", "--latest", "--from", "offsite", "--output-dir", out_dir
        )
        assert code == 1
        why = "allowed_signers" if out_dir == str(other) else "manifest recorded at upload"
        refused(err, name, why)
    code, _out, err = inv(
        offsite,
        "backup.restore",
        name,
        "--from",
        "offsite",
        "--database",
        "x" + uuid.uuid4().hex[:8],
        "--output-dir",
        str(other),
    )
    assert code == 1
    refused(err, name, "does not verify against backup.allowed_signers")
    assert not marker.exists()
