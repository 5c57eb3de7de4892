"""Every guard refusal: one clear line, exit != 0, before anything changes.

End-to-end ones run ``inv deploy`` in-process (the root collection, as ``inv`` loads it) with
the real helm, kubectl and git in a scratch git checkout (a kubeconfig pointing at a closed port
stands in for clusters); cluster answers use the strict mock context.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT_NS, fails_with, run_task
from fixtures_deploy import helm_env, history_json
from invoke import Config, Result

from tasks import deploy as deploy_collection


def inv(project: Path, *argv: str) -> int:
    """``inv <argv>`` in ``project``, in-process: its invoke.yaml given with ``-f`` (an
    in-process run loads no project file), pytest's stdin not forwarded to commands."""
    config = project.parent / "runtime.yaml"
    config.write_text((project / "invoke.yaml").read_text() + "run:\n  in_stream: false\n")
    return run_task(ROOT_NS, list(argv), config_file=config, cwd=project)


def last_error(capsys: Any) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.slow
def test_context_missing_from_kubeconfig(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "empty-kubeconfig"))
    assert inv(project, "deploy", "--env=staging") == 1
    assert last_error(capsys) == (
        "environments.staging.kube_context: kube context 'flowlet-staging' not found in "
        "kubeconfig; available: none"
    )


@pytest.mark.slow
def test_wrong_context_flag(project: Path, kubeconfig: Path, capsys: Any) -> None:
    assert inv(project, "deploy", "--env=staging", "--context=prod-typo") == 1
    assert last_error(capsys) == (
        "--context: kube context 'prod-typo' not found in kubeconfig; available: "
        "flowlet-production, flowlet-staging, kind-flowlet"
    )


@pytest.mark.slow
def test_dirty_tree_refused_in_production(project: Path, kubeconfig: Path, capsys: Any) -> None:
    (project / "kubernetes" / "flowlet-chart" / "values-production.yaml").write_text("# edited\n")
    assert inv(project, "deploy", "--env=production", "--yes") == 1
    assert last_error(capsys) == (
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
    assert (
        captured.err.strip()
        .splitlines()[-1]
        .startswith("kubectl get secret flowlet-app failed (exit 1)")
    )


@pytest.mark.slow
def test_no_yes_without_terminal(project: Path, kubeconfig: Path, capsys: Any) -> None:
    assert inv(project, "deploy", "--env=production") == 1
    assert last_error(capsys) == (
        "production: deploying needs confirmation but there is no terminal to ask on; "
        "pass --yes to proceed"
    )


@pytest.mark.slow
def test_not_a_git_checkout_refused_in_production(
    project: Path, kubeconfig: Path, capsys: Any
) -> None:
    shutil.rmtree(project / ".git")
    assert inv(project, "deploy", "--env=production", "--yes") == 1
    assert "production: not a git checkout" in last_error(capsys)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--env=qa"], "--env: 'qa' is not valid; valid: development, production, staging"),
        (
            ["--timeout=5x"],
            "--timeout: '5x' is not valid; valid: a duration like 90s, 10m or 1h30m, at least 60s",
        ),
        (
            ["--timeout=30s"],
            "--timeout: '30s' is not valid; valid: a duration like 90s, 10m or 1h30m, at least 60s",
        ),
        (["--image-tag=-bad"], "--image-tag: '-bad' is not valid; valid: an image tag"),
        (["--namespace=Bad_NS"], "--namespace: 'Bad_NS' is not valid; valid: a DNS-1123 label"),
        (
            ["--image-digest=backend=sha256:xyz"],
            "--image-digest: 'backend=sha256:xyz' is not valid; valid: COMPONENT=sha256",
        ),
    ],
    ids=[
        "unknown-env",
        "bad-timeout",
        "short-timeout",
        "bad-image-tag",
        "bad-namespace",
        "bad-digest",
    ],
)
def test_bad_flags(project: Path, argv: list[str], message: str, capsys: Any) -> None:
    assert inv(project, "deploy", *argv) == 1
    assert last_error(capsys).startswith(message)


def test_bad_config_key(project: Path, capsys: Any) -> None:
    with (project / "invoke.yaml").open("a") as handle:
        handle.write("deploy:\n  history_max: 0\n")
    assert inv(project, "deploy", "--env=staging") == 1
    assert re.fullmatch(
        r"deploy\.history_max: 0 is not valid \(set in -f \S+\.yaml\); valid: an integer >= 1",
        last_error(capsys),
    )


@pytest.mark.usefixtures("helm_on_path")
def test_pending_release_stops_the_deploy_under_the_lock(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    history = history_json("superseded", "deployed", "pending-upgrade")
    answers = cluster_answers("production", history=history)
    c = strict_context(config=deploy_config, run={**answers, re.compile(r".*"): ""})
    with fails_with() as err:
        deploy_collection.deploy(c, env="production", yes=True, diff=False)
    assert err.value.message == (
        "release flowlet in flowlet-prod is stuck in pending-upgrade (revision 3) although no "
        "flowlet-ops operation holds the deploy lock: a helm run by hand is in progress, or one "
        "was interrupted; if none is running, recover with: inv deploy.recover --env=production "
        "--namespace=flowlet-prod"
    )
    assert not any(re.search(r" (upgrade|rollback) ", cmd) for cmd in c.commands)
    assert c.commands[-1].startswith(
        "kubectl --context flowlet-production delete --raw"
    ), "unlocked"


@pytest.mark.usefixtures("helm_on_path")
def test_unsupported_helm_version(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    c = strict_context(config=deploy_config, run=cluster_answers("staging", helm_version="v3.17.3"))
    with fails_with(match=r"helm v3\.17\.3 is not supported; supported: v3\.18\.0\+"):
        deploy_collection.deploy(c, env="staging")
    assert c.commands == ["helm version --template '{{.Version}}'"]


@pytest.mark.usefixtures("helm_on_path")
def test_history_error_keeps_exit_code(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    failed = Result(exited=3, stderr="Error: Kubernetes cluster unreachable: connection refused\n")
    answers = cluster_answers("staging", history=failed)
    c = strict_context(config=deploy_config, run={**answers, re.compile(r".*"): ""})
    with fails_with(code=3) as err:
        deploy_collection.deploy(c, env="staging", diff=False)
    assert err.value.message == (
        "helm history failed (exit 3): Error: Kubernetes cluster unreachable: connection refused"
    )


@pytest.mark.usefixtures("helm_on_path")
def test_recover_needs_yes_without_terminal(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    answers = cluster_answers("staging", history=history_json("deployed", "pending-rollback"))
    c = strict_context(config=deploy_config, run={**answers, re.compile(r".*"): ""})
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
    """`inv --dry deploy` with real helm (4 or 3), kubectl, git: every step shown, no cluster,
    no --yes needed (nothing is asked), no audit record, no lock."""
    monkeypatch.setenv("PATH", helm_env(major)["PATH"])
    assert inv(project, "--dry", "deploy", "--env=production", "--image-tag=abc1234") == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^==> \d+\. ", out, flags=re.MULTILINE)) == 13
    assert f"helm v{major}." in out
    assert "kube context flowlet-production (from environments.production.kube_context)" in out
    assert "helm --kube-context flowlet-production upgrade --install " in out
    assert re.search(r" -- flowlet /\S+/flowlet-chart\b", out)
    safety = "--rollback-on-failure --wait=watcher" if major == 4 else "--atomic --wait"
    assert (
        f"--set-string image.tag=abc1234 --set-string secretChecksum=SHA256_OF_THE_SECRET_DATA "
        f"{safety}" in out
    )
    assert (
        "kubectl --context flowlet-production --namespace flowlet-prod create --filename - "
        "--output json" in out
    )
    assert "(dry run: no audit record written to" in out
    assert not (project / ".flowlet").exists()


def test_missing_tools(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("PATH", str(project / "empty-bin"))
    assert inv(project, "deploy", "--env=staging") == 1
    assert last_error(capsys) == (
        "'kubectl' not found on PATH: install kubectl (see https://kubernetes.io/docs/tasks/tools/)"
    )
