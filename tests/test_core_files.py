"""Files are created safely (tasks/core/files.py): another user's directory is refused before
anything is written, symlinks planted at the names the toolkit writes are never followed, and
the modes README states hold whatever the umask.

From the ``inv`` command line: ``backup.postgres --output-dir`` into a directory owned by
``nobody`` with symlinks planted at the manifest's and the sidecar's names (refused in one line,
the victims untouched), a root-owned 0777 directory (refused), a backup and a lint run under
umask 000 and 077 (the documented modes). The helpers themselves: under both umasks, with
symlinks, FIFOs and hard links planted."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import INV, inv_env, run_inv
from fakekube import FakeKube
from fixtures_backup import BackupEnv
from fixtures_dev import DevProject
from fixtures_lint import LintProject

from tasks.core import files, jsonl
from tasks.core.errors import ConfigError, Refused

VICTIM = b"victim: must stay exactly like this\n"
ONE_LINE_REFUSAL = (
    r"--output-dir: '{dir}' is not valid: {why}; "
    r"valid: a directory owned by you \(or root\), not writable by group or others\n"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask() -> Iterator[Callable[[int], object]]:
    """Set the process umask for one test (restored afterwards)."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.fixture
def nobody() -> int:
    if os.geteuid() != 0:
        pytest.skip("needs root (chown to nobody)")
    return pwd.getpwnam("nobody").pw_uid


def victims(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "victim-1", tmp_path / "victim-2"
    for path in (first, second):
        path.write_bytes(VICTIM)
        path.chmod(0o600)
    return first, second


def plant(directory: Path, names: list[str], target: Path, owner: int) -> None:
    """Symlinks at ``names`` in ``directory`` to ``target``, owned by ``owner`` (as its owner
    would plant them)."""
    for name in names:
        link = directory / name
        link.symlink_to(target)
        os.lchown(link, owner, owner)


def predictable_names() -> list[str]:
    """The names today's code wrote through: the sidecar's ``.partial`` of the backups of the
    next minutes, and the write_atomic temp of a manifest written by a nearby pid."""
    now = datetime.now(timezone.utc)
    names = []
    for second in range(0, 180):
        stamp = (now + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
        names.append(f"development-postgres-{stamp}.dump.sha256.partial")
        names.append(f"development-postgres-{stamp}.sql.gz.sha256.partial")
    return names


# --- from the inv command line --------------------------------------------------------------


def test_output_dir_of_another_user_with_planted_symlinks_is_refused(
    pg_backup_env: BackupEnv, tmp_path: Path, nobody: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chown(shared, nobody, nobody)
    append_victim, overwrite_victim = victims(tmp_path)
    plant(shared, ["manifest.jsonl"], append_victim, nobody)
    plant(shared, predictable_names(), overwrite_victim, nobody)
    before = sorted(os.listdir(shared))
    result = run_inv(
        ["-f", str(pg_backup_env.config), "backup.postgres", "--output-dir", str(shared)]
    )
    assert result.returncode == 1
    why = r"owned by nobody \(uid \d+\), not by root"
    assert re.fullmatch(ONE_LINE_REFUSAL.format(dir=re.escape(str(shared)), why=why), result.stderr)
    assert append_victim.read_bytes() == VICTIM and overwrite_victim.read_bytes() == VICTIM
    assert sorted(os.listdir(shared)) == before  # nothing written
    assert os.stat(shared).st_uid == nobody and mode(shared) == 0o755  # left as it was


def test_root_owned_world_writable_output_dir_is_refused(
    pg_backup_env: BackupEnv, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    result = run_inv(
        ["-f", str(pg_backup_env.config), "backup.postgres", "--output-dir", str(shared)]
    )
    assert result.returncode == 1
    why = r"writable by group or others \(mode 0777\)"
    assert re.fullmatch(ONE_LINE_REFUSAL.format(dir=re.escape(str(shared)), why=why), result.stderr)
    assert os.listdir(shared) == []


def test_output_dir_under_a_parent_of_another_user_is_refused(
    pg_backup_env: BackupEnv, tmp_path: Path, nobody: int
) -> None:
    parent = tmp_path / "theirs"
    parent.mkdir(mode=0o755)
    os.chown(parent, nobody, nobody)
    (parent / "backups").mkdir(mode=0o700)  # ours, but they can rename it away
    out = parent / "backups"
    result = run_inv(["-f", str(pg_backup_env.config), "backup.postgres", "--output-dir", str(out)])
    assert result.returncode == 1
    why = f"its parent {re.escape(str(parent))} is owned by nobody \\(uid \\d+\\)"
    assert re.fullmatch(ONE_LINE_REFUSAL.format(dir=re.escape(str(out)), why=why), result.stderr)
    assert os.listdir(out) == []


@pytest.mark.parametrize(
    "mask,parent_mode", [(0o000, 0o755), (0o077, 0o700)], ids=["umask-000", "umask-077"]
)
def test_backup_files_have_their_modes_whatever_the_umask(
    pg_backup_env: BackupEnv, tmp_path: Path, mask: int, parent_mode: int
) -> None:
    out = tmp_path / "new" / "backups"
    script = f'umask {mask:03o}; exec "$@"'
    argv = [INV, "-f", str(pg_backup_env.config), "backup.postgres", "--output-dir", str(out)]
    result = subprocess.run(  # nosec B603
        ["sh", "-c", script, "sh", *argv], env=inv_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert mode(out.parent) == parent_mode  # a missing parent: 0755, less a stricter umask
    assert mode(out) == 0o700
    made = sorted(out.iterdir())
    assert [p.name for p in made if p.name.endswith(".jsonl")] == ["manifest.jsonl"]
    assert len(made) == 3  # the dump, its sidecar, the manifest: no temp file left
    assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}


@pytest.mark.parametrize("mask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_lint_cache_has_its_modes_whatever_the_umask(lint_project: LintProject, mask: int) -> None:
    script = f'umask {mask:03o}; exec "$@"'
    argv = [sys.executable, "-m", "invoke", "lint.python", "--skip", "bandit"]
    result = subprocess.run(  # nosec B603
        ["sh", "-c", script, "sh", *argv],
        cwd=lint_project.root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cache = lint_project.root / ".flowlet" / "lint-cache"
    assert mode(cache / "results.json") == 0o600
    assert mode(cache) == 0o700
    assert mode(cache.parent) == (0o755 & ~mask)


@pytest.mark.slow
def test_dev_logs_and_state_have_their_modes_under_umask_000(stack_project: DevProject) -> None:
    project = stack_project
    flowlet = project.root / ".flowlet"
    for name in ("logs", "run"):  # nothing runs (the fixture checks): created anew below
        shutil.rmtree(flowlet / name, ignore_errors=True)
    started = run_inv(
        f"umask 000; exec inv -f {project.config} dev.start --detach --name backend",
        cwd=project.root,
    )
    try:
        assert started.returncode == 0, started.stderr
        made = [flowlet / "logs", flowlet / "run"]
        made += [*(flowlet / "logs").iterdir(), *(flowlet / "run").iterdir()]
        assert any(p.name == "backend.log" for p in made)
        want = {p.name: 0o700 if p.is_dir() else 0o600 for p in made}
        assert {p.name: mode(p) for p in made} == want
    finally:
        assert project.inv("dev.stop").returncode == 0


@pytest.mark.slow
def test_setup_refuses_an_audit_log_in_another_users_directory(
    project: Path, cluster: FakeKube, tmp_path: Path, nobody: int
) -> None:
    """Before anything changes in the cluster: the audit record's directory is checked."""
    from fixtures_deploy import inv_env as deploy_env

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chown(shared, nobody, nobody)
    victim, _ = victims(tmp_path)
    plant(shared, ["audit.jsonl"], victim, nobody)
    env = deploy_env(
        cluster.kubeconfig,
        INVOKE_DEPLOY_AUDIT_LOG=str(shared / "audit.jsonl"),
        FLOWLET_DB_PASSWORD="one",
    )
    result = run_inv("inv setup --env staging", cwd=project, env=env)  # today: appends there
    assert result.returncode == 1
    assert re.fullmatch(
        rf"deploy\.audit_log: '{re.escape(str(shared))}' is not valid: owned by nobody "
        r"\(uid \d+\), not by root; valid: a directory owned by you \(or root\), not writable "
        r"by group or others\n",
        result.stderr,
    ), result.stderr
    assert victim.read_bytes() == VICTIM
    assert cluster.get("Lease", "flowlet-staging", "flowlet-ops-lock-flowlet") is None
    assert cluster.get("Namespace", "", "flowlet-staging") is None


# --- the helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_created_files_and_directories_have_their_modes(
    tmp_path: Path, umask: Callable[[int], object], mask: int
) -> None:
    umask(mask)
    files.make_dirs(tmp_path / "a" / "b" / "leaf", 0o700)
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o755 & ~mask
    assert mode(tmp_path / "a" / "b" / "leaf") == 0o700
    files.write_atomic(tmp_path / "secret", "s", 0o600)
    files.write_atomic(tmp_path / "script", "#!/bin/sh\n", 0o755)
    fd, created = files.open_append(tmp_path / "log")
    os.close(fd)
    assert created
    os.close(files.create_new(tmp_path / "new", 0o600))
    got = {n: mode(tmp_path / n) for n in ("secret", "script", "log", "new")}
    assert got == {"secret": 0o600, "script": 0o755, "log": 0o600, "new": 0o600}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "log", "new", "script", "secret"]


@pytest.mark.parametrize("mask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_env_file_logs_cache_and_audit_log_have_the_readme_modes(
    tmp_path: Path, umask: Callable[[int], object], mask: int
) -> None:
    """README: .env.local 0600; dev logs 0600 in a 0700 directory; the lint cache 0600 in a
    0700 directory; the deploy audit log 0600."""
    from tasks.dev.logfiles import RotatingLog
    from tasks.dev.provision import write_private
    from tasks.lint.cache import ResultCache

    umask(mask)
    write_private(tmp_path / ".env.local", "A=1\n")
    log = RotatingLog(tmp_path / ".flowlet" / "logs" / "backend.log", 4096, 1)
    log.write(b"x" * 5000)  # rotated: the new file too
    cache = ResultCache(tmp_path / ".flowlet" / "lint-cache" / "results.json")
    cache.added = cache.entries = {"k": ["ok", []]}
    cache.save()
    jsonl.append(tmp_path / ".flowlet" / "deploy-audit.jsonl", {"result": "ok"})
    flowlet = tmp_path / ".flowlet"
    assert mode(tmp_path / ".env.local") == 0o600
    assert mode(flowlet / "logs") == mode(flowlet / "lint-cache") == 0o700
    assert mode(flowlet / "logs" / "backend.log") == mode(flowlet / "logs" / "backend.log.1")
    assert mode(flowlet / "logs" / "backend.log") == 0o600
    assert mode(flowlet / "lint-cache" / "results.json") == 0o600
    assert mode(flowlet / "deploy-audit.jsonl") == 0o600
    assert mode(flowlet) == 0o755 & ~mask


def test_write_atomic_replaces_a_planted_symlink_without_following_it(tmp_path: Path) -> None:
    victim, _ = victims(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "units.env").symlink_to(victim)
    for pid in range(os.getpid() - 50, os.getpid() + 50):  # today's predictable temp names
        (out / f".units.env.{pid}.tmp").symlink_to(victim)
    files.write_atomic(out / "units.env", "SECRET=1\n", 0o600)
    assert victim.read_bytes() == VICTIM
    assert not (out / "units.env").is_symlink()
    assert (out / "units.env").read_text() == "SECRET=1\n" and mode(out / "units.env") == 0o600


def test_create_new_never_opens_an_existing_name(tmp_path: Path) -> None:
    victim, _ = victims(tmp_path)
    (tmp_path / "a.partial").symlink_to(victim)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("a.partial", "dangling"):
        with pytest.raises(FileExistsError):
            files.create_new(tmp_path / name)
    assert victim.read_bytes() == VICTIM and not (tmp_path / "nowhere").exists()


def test_appends_refuse_symlinks_fifos_and_hard_links(tmp_path: Path) -> None:
    victim, other = victims(tmp_path)
    (tmp_path / "manifest.jsonl").symlink_to(victim)
    (tmp_path / "dangling.jsonl").symlink_to(tmp_path / "created-through-it")
    os.mkfifo(tmp_path / "fifo.jsonl")
    os.link(other, tmp_path / "linked.jsonl")
    expect = {
        "manifest.jsonl": "a symlink",
        "dangling.jsonl": "a symlink",
        "fifo.jsonl": "not a regular file",
        "linked.jsonl": "it has hard links",
    }
    for name, why in expect.items():
        with pytest.raises(Refused) as refused:
            jsonl.append(tmp_path / name, {"event": "backup"})
        assert str(refused.value) == f"{tmp_path / name}: refusing to append to it: {why}"
    assert victim.read_bytes() == VICTIM and other.read_bytes() == VICTIM
    assert not (tmp_path / "created-through-it").exists()
    jsonl.append(tmp_path / "ok.jsonl", {"event": "backup"})
    jsonl.append(tmp_path / "ok.jsonl", {"event": "verify"})
    assert [r["event"] for r in jsonl.read(tmp_path / "ok.jsonl")] == ["backup", "verify"]


def test_private_dir_refuses_what_others_own_or_may_write(tmp_path: Path, nobody: int) -> None:
    def why(path: Path) -> str:
        with pytest.raises(ConfigError) as refused:
            files.private_dir(path, source="--output-dir")
        message = str(refused.value)
        assert "\n" not in message and message.startswith(f"--output-dir: {str(path)!r}")
        return message

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, nobody, nobody)
    assert "owned by nobody" in why(theirs)
    assert "its parent" in why(theirs / "below" / "new")
    assert not (theirs / "below").exists()  # nothing created under their directory
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert "mode 1777" in why(sticky)
    group = tmp_path / "group"
    group.mkdir()
    group.chmod(0o770)
    assert "mode 0770" in why(group)
    link = tmp_path / "link"
    mine = tmp_path / "mine"
    mine.mkdir()
    link.symlink_to(mine)
    os.lchown(link, nobody, nobody)
    assert f"{link} is a symlink owned by nobody" in why(link)
    (tmp_path / "file").write_text("")
    assert "not a directory" in why(tmp_path / "file")
    mine.chmod(0o755)
    files.private_dir(mine, source="--output-dir")  # ours, readable by others: tightened
    assert mode(mine) == 0o700 and os.listdir(mine) == []
    files.private_dir(tmp_path / "new" / "dir", source="--output-dir")
    assert mode(tmp_path / "new" / "dir") == 0o700


def test_manifest_lines_still_append(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    for n in range(3):
        jsonl.append(path, {"n": n})
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1, 2]
