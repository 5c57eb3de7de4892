"""Every guard refusal: one clear line, exit != 0, before anything changes.

End-to-end ones run ``inv deploy`` in-process with the real helm, kubectl and git (a kubeconfig
pointing at a closed port stands in for clusters); cluster answers use the strict mock context.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import fails_with, run_task
from fixtures_deploy import REPO, helm_env, history_json, need_tools
from invoke import Config, Result

from tasks import deploy as deploy_collection

NS = deploy_collection.ns


@pytest.fixture
def project(tmp_path: Path, closing_pipes: None) -> Path:
    """A clean git checkout with the project's invoke.yaml and kubernetes/ directory."""
    need_tools()
    root = tmp_path / "project"
    root.mkdir()
    # pytest captures stdin: commands must not read ours (in a terminal they may).
    (root / "invoke.yaml").write_text(
        (REPO / "invoke.yaml").read_text() + "run:\n  in_stream: false\n"
    )
    shutil.copytree(REPO / "kubernetes", root / "kubernetes")
    (root / ".gitignore").write_text(".flowlet/\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return root


def inv(project: Path, *argv: str) -> int:
    return run_task(NS, list(argv), config_file=project / "invoke.yaml", cwd=project)


@pytest.mark.slow
def test_context_missing_from_kubeconfig(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "empty-kubeconfig"))
    assert inv(project, "deploy", "--env=staging") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "environments.staging.kube_context: kube context 'flowlet-staging' not found in "
        "kubeconfig; available: none"
    )


@pytest.mark.slow
def test_wrong_context_flag(project: Path, kubeconfig: Path, capsys: Any) -> None:
    assert inv(project, "deploy", "--env=staging", "--context=prod-typo") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "--context: kube context 'prod-typo' not found in kubeconfig; available: "
        "flowlet-production, flowlet-staging, kind-flowlet"
    )


@pytest.mark.slow
def test_dirty_tree_refused_in_production(project: Path, kubeconfig: Path, capsys: Any) -> None:
    (project / "kubernetes" / "flowlet-chart" / "values-production.yaml").write_text("# edited\n")
    assert inv(project, "deploy", "--env=production", "--yes") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "production: the git tree has 1 uncommitted change(s) "
        "(kubernetes/flowlet-chart/values-production.yaml); commit or stash them, or pass "
        "--allow-dirty"
    )


@pytest.mark.slow
def test_allow_dirty_passes_the_guard(project: Path, kubeconfig: Path, capsys: Any) -> None:
    """With --allow-dirty the deploy goes on to the cluster (which is unreachable here)."""
    (project / "untracked.txt").write_text("x")
    code = inv(project, "deploy", "--env=production", "--yes", "--allow-dirty")
    captured = capsys.readouterr()
    assert code != 0
    assert "-dirty (dirty)" in captured.out
    assert captured.err.strip().splitlines()[-1].startswith("helm history failed (exit 1)")


@pytest.mark.slow
def test_no_yes_without_terminal(project: Path, kubeconfig: Path, capsys: Any) -> None:
    assert inv(project, "deploy", "--env=production") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "production: deploying needs confirmation but there is no terminal to ask on; "
        "pass --yes to proceed"
    )


@pytest.mark.slow
def test_not_a_git_checkout_refused_in_production(
    project: Path, kubeconfig: Path, capsys: Any
) -> None:
    shutil.rmtree(project / ".git")
    assert inv(project, "deploy", "--env=production", "--yes") == 1
    assert "production: not a git checkout" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--env=qa"], "--env: unknown environment 'qa'; valid: development, production, staging"),
        (["--timeout=5x"], "--timeout: '5x' is not a duration; valid: e.g. 300s, 10m, 1h30m"),
        (["--timeout=30s"], "--timeout: '30s' is too short; valid: at least 60s"),
        (["--image-tag=-bad"], "--image-tag: '-bad' is not a valid image tag"),
        (["--namespace=Bad_NS"], "--namespace: 'Bad_NS' is not a valid Kubernetes namespace"),
    ],
    ids=["unknown-env", "bad-timeout", "short-timeout", "bad-image-tag", "bad-namespace"],
)
def test_bad_flags(project: Path, argv: list[str], message: str, capsys: Any) -> None:
    assert inv(project, "deploy", *argv) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)


def test_bad_config_key(project: Path, capsys: Any) -> None:
    (project / "invoke.yaml").write_text(
        (project / "invoke.yaml").read_text() + "deploy:\n  history_max: 0\n"
    )
    assert inv(project, "deploy", "--env=staging") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "deploy.history_max: 0 is not valid; valid: an integer >= 1"
    )


def test_pending_release_stops_the_deploy(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    need_tools()
    history = history_json("superseded", "deployed", "pending-upgrade")
    c = strict_context(config=deploy_config, run=cluster_answers("production", history=history))
    with fails_with() as err:
        deploy_collection.deploy(c, env="production", yes=True)
    assert err.value.message == (
        "release flowlet in flowlet-prod is stuck in pending-upgrade (revision 3): another helm "
        "operation is running or was interrupted; if none is running, recover with: "
        "inv deploy.recover --env=production --namespace=flowlet-prod"
    )
    assert not any(re.search(r" (upgrade|apply|rollback) ", cmd) for cmd in c.commands)


def test_unsupported_helm_version(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    need_tools()
    c = strict_context(config=deploy_config, run=cluster_answers("staging", helm_version="v3.17.3"))
    with fails_with(match=r"helm v3\.17\.3 is not supported; supported: v3\.18\.0\+"):
        deploy_collection.deploy(c, env="staging")
    assert c.commands == ["helm version --template '{{.Version}}'"]


def test_history_error_keeps_exit_code(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    need_tools()
    failed = Result(exited=3, stderr="Error: Kubernetes cluster unreachable: connection refused\n")
    c = strict_context(config=deploy_config, run=cluster_answers("staging", history=failed))
    with fails_with() as err:
        deploy_collection.deploy(c, env="staging")
    assert err.value.code == 3
    assert err.value.message == (
        "helm history failed (exit 3): Error: Kubernetes cluster unreachable: connection refused"
    )


@pytest.mark.parametrize(
    "revision,history,message",
    [
        (-1, "[]", "--revision: -1 is not valid; valid: 0 (previous) or a revision >= 1"),
        (
            5,
            history_json("superseded", "deployed"),
            ("--revision: 5 is not in the release " "history; known: 1, 2"),
        ),
        (
            0,
            Result(exited=1, stderr="Error: release: not found"),
            "release flowlet is not installed in flowlet-staging",
        ),
    ],
    ids=["negative", "unknown-revision", "not-installed"],
)
def test_rollback_refusals(
    revision: int,
    history: Any,
    message: str,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    need_tools()
    c = strict_context(config=deploy_config, run=cluster_answers("staging", history=history))
    with fails_with() as err:
        deploy_collection.rollback(c, env="staging", revision=revision)
    assert err.value.message == message
    assert not any(" rollback " in cmd for cmd in c.commands)


def test_production_rollback_needs_yes_without_terminal(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    need_tools()
    answers = cluster_answers("production", history=history_json("superseded", "deployed"))
    c = strict_context(config=deploy_config, run=answers)
    with fails_with(match="refusing: no terminal to confirm on; pass --yes"):
        deploy_collection.rollback(c, env="production")


def test_recover_needs_yes_without_terminal(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    need_tools()
    answers = cluster_answers("staging", history=history_json("deployed", "pending-rollback"))
    c = strict_context(config=deploy_config, run=answers)
    with fails_with(match="pass --yes to proceed"):
        deploy_collection.recover(c, env="staging")
    assert not any(" rollback " in cmd for cmd in c.commands)


@pytest.mark.slow
@pytest.mark.parametrize("major", [4, 3], ids=["helm4", "helm3"])
def test_dry_run_end_to_end_without_a_cluster(
    major: int,
    project: Path,
    kubeconfig: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`inv --dry deploy` with real helm (4 or 3), kubectl, git: every step shown, no cluster."""
    monkeypatch.setenv("PATH", helm_env(major)["PATH"])
    assert inv(project, "--dry", "deploy", "--env=production", "--yes", "--image-tag=abc1234") == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^==> \d+\. ", out, flags=re.MULTILINE)) == 10
    assert f"helm v{major}." in out
    assert "kube context flowlet-production (from environments.production.kube_context)" in out
    assert "helm --kube-context flowlet-production upgrade flowlet" in out
    safety = "--rollback-on-failure --wait=watcher" if major == 4 else "--atomic --wait"
    assert f"--set-string image.tag=abc1234 {safety} --timeout 600s" in out
    assert "(dry run: no audit record written to" in out
    assert not (project / ".flowlet").exists()


def test_missing_tools(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("PATH", str(project / "empty-bin"))
    assert inv(project, "deploy", "--env=staging") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "'kubectl' not found on PATH: install kubectl (see https://kubernetes.io/docs/tasks/tools/)"
    )
