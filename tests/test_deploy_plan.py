"""The exact ordered commands of inv deploy / setup / rollback / recover, with a strict mock
context standing in for the cluster (no cluster can run here). Local tools are real."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures_deploy import CHART, ENVIRONMENTS, REPO, SHA, history_json, need_tools
from invoke import Config, Result

from tasks import deploy as deploy_collection
from tasks.deploy import execute, setup_cluster
from tasks.deploy.secrets import DRY_ENV_FILE
from tasks.core.environments import resolve_environment
from conftest import fails_with

WHEN = "2026-11-27T05:00:00Z"
CATCH_ALL = re.compile(r".*")  # cluster commands that change things: succeed, print nothing


@pytest.fixture(autouse=True)
def _fixed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    need_tools()
    monkeypatch.setattr(execute, "now", lambda: WHEN)
    monkeypatch.setattr(execute.getpass, "getuser", lambda: "alice")


def expected_deploy(
    env: str, major: int, *, image_tag: str = "", secret_file: str | None = None
) -> list[str]:
    namespace, ctx, values = ENVIRONMENTS[env]
    values_args = (
        f"--values {CHART}/{values} --set-string existingSecret=flowlet-app "
        "--set progressDeadlineSeconds=480"
    ) + (f" --set-string image.tag={image_tag}" if image_tag else "")
    safety = "--rollback-on-failure --wait=watcher" if major == 4 else "--atomic --wait"
    description = f"flowlet-ops deploy env={env} git={SHA} user=alice at={WHEN}"
    kubectl = f"kubectl --context {ctx}"
    helm = f"helm --kube-context {ctx}"
    commands = [
        "helm version --template '{{.Version}}'",
        "kubectl version --client --output json",
        "kubectl config get-contexts -o name",
        f"git -C {REPO} rev-parse HEAD",
        f"git -C {REPO} status --porcelain",
        f"{helm} history flowlet --namespace {namespace} --max 20 --output json",
        "helm plugin list",
        f"helm template flowlet {CHART} --namespace {namespace} {values_args}",
        f"{helm} get manifest flowlet --namespace {namespace}",
        f"{kubectl} apply --server-side --field-manager=flowlet-ops --filename -",
    ]
    if secret_file is not None:
        commands += [
            (
                f"{kubectl} --namespace {namespace} create secret generic flowlet-app "
                f"--from-env-file={secret_file} --dry-run=client --output yaml"
            ),
            (
                f"{kubectl} --namespace {namespace} apply --server-side "
                "--field-manager=flowlet-ops --filename -"
            ),
        ]
    return commands + [
        (
            f"{helm} upgrade flowlet {CHART} --install --namespace {namespace} {values_args} "
            f"{safety} --timeout 600s --cleanup-on-fail --history-max 10 --description "
            f"'{description}'"
        ),
        (
            f"{kubectl} --namespace {namespace} rollout status deployment/flowlet-backend "
            "--timeout=600s"
        ),
        (
            f"{kubectl} --namespace {namespace} rollout status deployment/flowlet-frontend "
            "--timeout=600s"
        ),
        f"{helm} history flowlet --namespace {namespace} --max 1 --output json",
    ]


@pytest.mark.parametrize("major", [3, 4], ids=["helm3", "helm4"])
@pytest.mark.parametrize("env", ["development", "staging", "production"])
def test_deploy_plan(
    env: str,
    major: int,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = "v4.1.4" if major == 4 else "v3.18.0"
    answers = cluster_answers(env, helm_version=version, history=history_json("deployed"))
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.deploy(c, env=env, yes=True)
    assert c.commands == expected_deploy(env, major)
    out = capsys.readouterr().out
    steps = re.findall(r"^==> \d+\. (.*)$", out, flags=re.MULTILINE)
    assert steps == [
        "prerequisites: kubectl and helm",
        "context guard",
        "guards: git tree and confirmation",
        f"release state: flowlet in {ENVIRONMENTS[env][0]}",
        "diff against the deployed release",
        "confirmation",
        f"namespace {ENVIRONMENTS[env][0]}: manifests",
        "helm upgrade --install",
        "rollout verification",
        "audit record",
    ]
    record = json.loads(Path(deploy_config.deploy.audit_log).read_text().splitlines()[-1])
    assert record | {"duration_seconds": 0} == {
        "action": "deploy",
        "env": env,
        "namespace": ENVIRONMENTS[env][0],
        "context": ENVIRONMENTS[env][1],
        "release": "flowlet",
        "revision": 2,
        "chart_version": "0.1.0",
        "image_tag": "0.1.0",
        "git_sha": SHA,
        "user": "alice",
        "result": "succeeded",
        "duration_seconds": 0,
        "started_at": WHEN,
        "helm_version": version,
        "detail": "",
    }


def test_dry_run_touches_no_cluster(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    """Under --dry only local probes run; every cluster command is printed, none executed."""
    deploy_config.run.dry = True
    answers = cluster_answers("production")
    local = {k: v for k, v in answers.items() if "--kube-context" not in k}
    c = strict_context(config=deploy_config, run=local)  # no cluster answers: they'd raise
    deploy_collection.deploy(c, env="production", yes=True, image_tag="abc1234")
    assert c.commands == expected_deploy("production", 4, image_tag="abc1234")
    assert not Path(deploy_config.deploy.audit_log).exists()


def test_dry_run_does_not_prompt(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deploy_config.run.dry = True
    monkeypatch.setattr(execute, "interactive", lambda: True)
    c = strict_context(config=deploy_config, run=cluster_answers("production"))
    deploy_collection.deploy(c, env="production", diff=False)
    assert "(dry run: would ask) Deploy flowlet in production" in capsys.readouterr().out


def test_diff_plugin_is_used_when_installed(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    answers = cluster_answers("staging", plugins="NAME\tVERSION\tDESCRIPTION\ndiff\t3.13.1\tx\n")
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.diff(c, env="staging", image_tag="9f8e7d6")
    assert c.commands[-1] == (
        "helm --kube-context flowlet-staging diff upgrade flowlet "
        f"{CHART} --namespace flowlet-staging --allow-unreleased --context 5 --values "
        f"{CHART}/values-staging.yaml --set-string existingSecret=flowlet-app "
        "--set progressDeadlineSeconds=480 --set-string image.tag=9f8e7d6"
    )


def test_no_diff_and_timeout_and_context_override(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    answers = cluster_answers("development")
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.deploy(
        c, env="development", diff=False, timeout="2m", context="flowlet-staging", namespace="t1"
    )
    assert "helm plugin list" not in c.commands
    upgrade = next(cmd for cmd in c.commands if " upgrade " in cmd)
    assert upgrade.startswith("helm --kube-context flowlet-staging upgrade flowlet")
    assert "--namespace t1 " in upgrade
    assert "--set progressDeadlineSeconds=96 " in upgrade and "--timeout 120s " in upgrade


def test_setup_cluster_plan_keeps_secrets_out(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "s3cr3t-Value-that-must-never-leak"
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", secret)
    answers = cluster_answers("production", history="[]")
    create = re.compile(r"kubectl .* create secret generic flowlet-app --from-env-file=(\S+) .*")
    seen: list[str] = []

    class Recording(strict_context):  # type: ignore[misc, valid-type]
        def run(self, command: str, **kwargs: Any) -> Result:
            match = create.fullmatch(command)
            if match:  # the temp env file exists, is private, and holds the value
                env_file = Path(match.group(1))
                assert oct(env_file.stat().st_mode & 0o777) == "0o600"
                assert env_file.read_text() == f"FLOWLET_DB_PASSWORD={secret}\n"
                seen.append(str(env_file))
            return super().run(command, **kwargs)

    c = Recording(config=deploy_config, run={**answers, CATCH_ALL: "kind: Secret\n"})
    environment = resolve_environment(c, "production", None, require=("values_file",))
    setup_cluster(c, environment, yes=True, allow_dirty=False, image_tag=None)
    assert c.commands == expected_deploy("production", 4, secret_file=seen[0])
    assert not Path(seen[0]).exists(), "the temporary env file must be deleted"
    captured = capsys.readouterr()
    for text in [*c.commands, captured.out, captured.err]:
        assert secret not in text
    assert "secret/flowlet-app applied in flowlet-prod" in captured.out
    assert json.loads(Path(deploy_config.deploy.audit_log).read_text())["action"] == "setup"


def test_setup_cluster_dry_run_never_reads_values(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", "dry-secret-value")
    deploy_config.run.dry = True
    c = strict_context(config=deploy_config, run=cluster_answers("staging"))
    environment = resolve_environment(c, "staging", None, require=("values_file",))
    setup_cluster(c, environment, yes=True, allow_dirty=False, image_tag="abc")
    secret_commands = [cmd for cmd in c.commands if "secret" in cmd]
    assert secret_commands[0].endswith(
        f"--from-env-file={DRY_ENV_FILE} --dry-run=client --output yaml"
    )
    assert "dry-secret-value" not in capsys.readouterr().out + "".join(c.commands)


def test_failed_rollout_shows_events_and_logs(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    pods = {
        "items": [
            {
                "metadata": {"name": "flowlet-backend-1"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            },
            {
                "metadata": {"name": "flowlet-backend-2"},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                },
            },
        ]
    }
    kubectl = "kubectl --context flowlet-staging --namespace flowlet-staging"
    answers = cluster_answers(
        "staging",
        extra={
            f"{kubectl} rollout status deployment/flowlet-backend --timeout=600s": Result(
                exited=1, stderr="error: deployment exceeded its progress deadline"
            ),
            f"{kubectl} get pods --selector=app.kubernetes.io/instance=flowlet,"
            "app.kubernetes.io/component=backend --output json": json.dumps(pods),
        },
    )
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    with fails_with() as err:
        deploy_collection.deploy(c, env="staging", diff=False)
    assert err.value.code == 1
    assert "rollout of deployment/flowlet-backend did not finish" in str(err.value.message)
    rollout = c.commands.index(
        f"{kubectl} rollout status deployment/flowlet-backend --timeout=600s"
    )
    assert c.commands[rollout + 1 :] == [
        f"{kubectl} describe deployment/flowlet-backend",
        (
            f"{kubectl} get pods --selector=app.kubernetes.io/instance=flowlet,"
            "app.kubernetes.io/component=backend --output json"
        ),
        f"{kubectl} logs flowlet-backend-2 --all-containers --tail=40 --prefix",
        (
            "helm --kube-context flowlet-staging history flowlet --namespace flowlet-staging "
            "--max 1 --output json"
        ),
    ]
    record = json.loads(Path(deploy_config.deploy.audit_log).read_text())
    assert record["result"] == "failed" and record["revision"] == 2


def test_failed_upgrade_keeps_helm_exit_code(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    upgrade = re.compile(r"helm --kube-context flowlet-staging upgrade .*")
    answers = cluster_answers("staging", extra={upgrade: Result(exited=7, stderr="boom")})
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    with fails_with() as err:
        deploy_collection.deploy(c, env="staging", diff=False)
    assert err.value.code == 7
    assert "helm upgrade failed (exit 7)" in str(err.value.message)
    assert not any("rollout status" in cmd for cmd in c.commands)


@pytest.mark.parametrize(
    "statuses,expected",
    [
        (("superseded", "deployed", "pending-upgrade"), ["rollback", "flowlet 2"]),
        (("pending-install",), ["uninstall", "flowlet"]),
    ],
    ids=["pending-upgrade-rolls-back", "pending-install-uninstalls"],
)
def test_recover_plan(
    statuses: tuple[str, ...],
    expected: list[str],
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    answers = cluster_answers("production", history=history_json(*statuses))
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.recover(c, env="production", yes=True)
    helm = "helm --kube-context flowlet-production"
    verb, args = expected
    tail = (
        "--wait=watcher --timeout 600s --cleanup-on-fail --history-max 10"
        if verb == "rollback"
        else "--wait=watcher --timeout 600s"
    )
    assert c.commands[3:] == [
        f"{helm} history flowlet --namespace flowlet-prod --max 20 --output json",
        f"git -C {REPO} rev-parse HEAD",
        f"git -C {REPO} status --porcelain",
        f"{helm} {verb} {args} --namespace flowlet-prod {tail}",
        f"{helm} history flowlet --namespace flowlet-prod --max 1 --output json",
    ]
    assert json.loads(Path(deploy_config.deploy.audit_log).read_text())["action"] == "recover"


def test_recover_nothing_to_do(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = cluster_answers("staging", history=history_json("superseded", "deployed"))
    c = strict_context(config=deploy_config, run=answers)
    deploy_collection.recover(c, env="staging")
    assert "nothing to recover: not stuck (last revision: deployed)" in capsys.readouterr().out


@pytest.mark.parametrize("major", [3, 4], ids=["helm3", "helm4"])
def test_rollback_plan(
    major: int,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    version = "v4.1.4" if major == 4 else "v3.18.0"
    answers = cluster_answers(
        "staging", helm_version=version, history=history_json("superseded", "deployed")
    )
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.rollback(c, env="staging", revision=1)
    wait = "--wait=watcher" if major == 4 else "--wait"
    assert (
        "helm --kube-context flowlet-staging rollback flowlet 1 --namespace flowlet-staging "
        f"{wait} --timeout 600s --cleanup-on-fail --history-max 10"
    ) in c.commands
    assert c.commands[-2:] == [
        (
            "kubectl --context flowlet-staging --namespace flowlet-staging rollout status "
            "deployment/flowlet-backend --timeout=600s"
        ),
        (
            "kubectl --context flowlet-staging --namespace flowlet-staging rollout status "
            "deployment/flowlet-frontend --timeout=600s"
        ),
    ]


def test_status_and_history_output(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = cluster_answers("staging", history=history_json("superseded", "deployed"))
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.status(c, env="staging")
    deploy_collection.history(c, env="staging")
    out = capsys.readouterr().out
    assert "flowlet in flowlet-staging: revision 2 deployed; chart flowlet-0.1.0 (app 0.1.0)" in out
    assert re.search(
        r"^2\s+2026-11-22T10:00:00\s+deployed\s+flowlet-0.1.0\s+0.1.0\s+Upgrade",
        out,
        flags=re.MULTILINE,
    )
    assert c.commands[-1] == (
        "helm --kube-context flowlet-staging history flowlet --namespace flowlet-staging "
        "--max 20 --output json"
    )


def test_ctrl_c_at_the_prompt_exits_130(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(question: str, *, yes: bool) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "interactive", lambda: True)
    monkeypatch.setattr(execute, "confirm", interrupted)
    c = strict_context(config=deploy_config, run=cluster_answers("production"))
    with fails_with() as err:
        deploy_collection.deploy(c, env="production", diff=False)
    assert (err.value.code, err.value.message) == (130, "interrupted (SIGINT): deploy stopped")
    assert not any(" apply " in cmd or " upgrade " in cmd for cmd in c.commands)


def test_signal_during_upgrade_exits_143_and_is_audited(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def helm_stopped(c: Any, argv: list[str]) -> tuple[Result, int]:
        c.run(" ".join(argv[:4]))
        return Result(exited=1), signal.SIGTERM

    monkeypatch.setattr(execute, "run_forwarding_signals", helm_stopped)
    c = strict_context(config=deploy_config, run={**cluster_answers("staging"), CATCH_ALL: ""})
    with fails_with() as err:
        deploy_collection.deploy(c, env="staging", diff=False)
    assert err.value.code == 143
    assert err.value.message == (
        "interrupted (SIGTERM): helm was asked to stop and exited 1; check inv deploy.status"
    )
    assert c.commands[-1] == "helm --kube-context flowlet-staging upgrade"  # no rollout, no status
    record = json.loads(Path(deploy_config.deploy.audit_log).read_text())
    assert (record["result"], record["revision"]) == ("interrupted", None)
