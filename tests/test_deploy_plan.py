"""The exact ordered commands of inv deploy / setup / rollback / recover / unlock for Helm 3 and
Helm 4, with a strict mock context standing in for the cluster. Local tools are real.

(tests/test_deploy_fakeapi.py runs the same operations with the real helm and kubectl against
the in-memory API server; this file pins the plans command by command.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import fails_with
from fixtures_deploy import (
    CHART,
    ENVIRONMENTS,
    REPO,
    SECRET_JSON,
    SHA,
    history_json,
    need_tools,
)
from invoke import Config, Result

from tasks import deploy as deploy_collection
from tasks.core.environments import resolve_environment
from tasks.deploy import operation, plan
from tasks.deploy import run as deploy_run
from tasks.deploy import secrets
from tasks.deploy.plan import DRY_CHECKSUM, Options, Target

WHEN = "2026-11-27T05:00:00Z"
CATCH_ALL = re.compile(r".*")  # cluster commands that change things: succeed, print nothing
CHECKSUM = secrets.data_digest({"FLOWLET_DB_PASSWORD": "c2VjcmV0"})
LEASE = "flowlet-ops-lock-flowlet"


@pytest.fixture(autouse=True)
def _fixed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    need_tools()
    monkeypatch.setattr(operation, "now", lambda: WHEN)
    monkeypatch.setattr(operation.getpass, "getuser", lambda: "alice")


def expected_deploy(
    env: str,
    major: int,
    *,
    image_tag: str = "",
    setup: bool = False,
    checksum: str = CHECKSUM,
    diff: bool = True,
    extra_upgrade: str = "",
    dry: bool = False,
) -> list[str]:
    namespace, ctx, values = ENVIRONMENTS[env]
    values_args = (
        f"--values {CHART}/{values} --set-string existingSecret=flowlet-app "
        "--set progressDeadlineSeconds=480"
        + (f" --set-string image.tag={image_tag}" if image_tag else "")
        + f" --set-string secretChecksum={checksum}"
    )
    safety = "--rollback-on-failure --wait=watcher" if major == 4 else "--atomic --wait"
    description = f"flowlet-ops deploy env={env} git={SHA} user=alice at={WHEN}"
    kubectl = f"kubectl --context {ctx}"
    helm = f"helm --kube-context {ctx}"
    secret = (
        f"{kubectl} --namespace {namespace} create secret generic flowlet-app "
        "--from-env-file=/dev/stdin --dry-run=client --output yaml"
        if setup
        else f"{kubectl} --namespace {namespace} get secret flowlet-app --output json"
    )
    commands = [
        "helm version --template '{{.Version}}'",
        "kubectl version --client --output json",
        "kubectl config get-contexts -o name",
        f"git -C {REPO} rev-parse HEAD",
        f"git -C {REPO} status --porcelain",
        secret,
    ]
    if diff:
        commands += [
            "helm plugin list",
            f"helm template --no-hooks --namespace {namespace} {values_args} -- flowlet {CHART}",
            f"{helm} get manifest --namespace {namespace} -- flowlet",
        ]
    commands += [
        f"{kubectl} apply --server-side --field-manager=flowlet-ops --filename -",
        f"{kubectl} --namespace {namespace} create --filename - --output json",
        f"{helm} history --namespace {namespace} --max 20 --output json -- flowlet",
    ]
    if setup:
        commands.append(
            f"{kubectl} --namespace {namespace} apply --server-side --force-conflicts "
            "--field-manager=flowlet-ops --filename -"
        )
    return commands + [
        (
            f"{helm} upgrade --install --namespace {namespace} {values_args} "
            f"{safety} --timeout 600s{extra_upgrade} --cleanup-on-fail --history-max 10 "
            f"--description '{description}' -- flowlet {CHART}"
        ),
        f"{kubectl} --namespace {namespace} rollout status deployment/flowlet-backend "
        f"--timeout=600s",
        f"{kubectl} --namespace {namespace} rollout status deployment/flowlet-frontend "
        f"--timeout=600s",
        *(
            []
            if dry
            else [f"{helm} history --namespace {namespace} --max 1 --output json -- flowlet"]
        ),
        f"{kubectl} delete --raw /apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
        f"{LEASE} --filename -",
    ]


DEPLOY_STEPS = [
    "prerequisites: kubectl and helm",
    "context guard",
    "guards: git tree and confirmation",
    "secret flowlet-app: digest of its data (read from the cluster)",
    "diff against the deployed release",
    "confirmation",
    "namespace {ns}: manifests",
    "deploy lock: lease flowlet-ops-lock-flowlet in {ns}",
    "release state: flowlet in {ns}",
    "helm upgrade --install",
    "rollout verification",
    "audit record",
    "deploy lock: release",
]


@pytest.mark.parametrize("major", [3, 4], ids=["helm3", "helm4"])
@pytest.mark.parametrize("env", ["development", "staging", "production"])
def test_deploy_plan(
    env: str,
    major: int,
    recording_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = "v4.1.4" if major == 4 else "v3.18.0"
    answers = cluster_answers(env, helm_version=version, history=history_json("deployed"))
    c = recording_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.deploy(c, env=env, yes=True)
    assert c.commands == expected_deploy(env, major)
    namespace = ENVIRONMENTS[env][0]
    lease = json.loads(
        c.stdin[
            f"kubectl --context {ENVIRONMENTS[env][1]} --namespace {namespace} "
            "create --filename - --output json"
        ]
    )
    assert (lease["kind"], lease["metadata"]["name"], lease["metadata"]["namespace"]) == (
        "Lease",
        LEASE,
        namespace,
    )
    assert (
        lease["spec"]["holderIdentity"].startswith("alice@")
        or "@" in lease["spec"]["holderIdentity"]
    )
    assert lease["metadata"]["annotations"]["flowlet.io/git-sha"] == SHA
    out = capsys.readouterr().out
    steps = re.findall(r"^==> \d+\. (.*)$", out, flags=re.MULTILINE)
    assert steps == [s.format(ns=namespace) for s in DEPLOY_STEPS]
    record = json.loads(Path(deploy_config.deploy.audit_log).read_text().splitlines()[-1])
    assert record | {"duration_seconds": 0} == {
        "action": "deploy",
        "env": env,
        "namespace": namespace,
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


def test_the_plan_is_pure_data() -> None:
    target = Target("staging", "flowlet-staging", "", "flowlet")
    steps = plan.deploy_steps(Options("setup", diff=False), target, secret_name="app", lease=LEASE)
    assert [(s.title, sorted(s.tags)) for s in steps][3:] == [
        ("secret app: digest of its data (rendered from deploy.secret)", ["digest"]),
        ("confirmation", ["confirm"]),
        ("namespace flowlet-staging: manifests", ["namespace"]),
        (f"deploy lock: lease {LEASE} in flowlet-staging", ["lock"]),
        ("release state: flowlet in flowlet-staging", ["state"]),
        ("secret app: server-side apply", ["secret"]),
        ("helm upgrade --install", ["upgrade"]),
        ("rollout verification", ["rollout"]),
        ("audit record", ["audit", "finally"]),
        ("deploy lock: release", ["finally", "unlock"]),
    ]


def test_dry_run_touches_no_cluster_and_needs_no_yes(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under --dry only local probes run; every cluster command (the lock's too) is printed,
    none executed; production without --yes and without a terminal is fine: nothing is asked."""
    deploy_config.run.dry = True
    answers = cluster_answers("production")
    local = {k: v for k, v in answers.items() if isinstance(k, str) and "--context" not in k}
    c = strict_context(config=deploy_config, run=local)  # no cluster answers: they'd raise
    deploy_collection.deploy(c, env="production", image_tag="abc1234")
    assert c.commands == expected_deploy(
        "production", 4, image_tag="abc1234", checksum=DRY_CHECKSUM, dry=True
    )
    assert not Path(deploy_config.deploy.audit_log).exists()
    out = capsys.readouterr().out
    assert "(dry run: would ask) Deploy flowlet in production" in out
    assert "(dry run: the lock is not taken)" in out


def test_setup_cluster_plan_keeps_secrets_out(
    recording_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The value goes only to kubectl's stdin: never on argv, in output, in a file."""
    secret = "s3cr3t-Value-that-must-never-leak"
    monkeypatch.setenv("FLOWLET_DB_PASSWORD", secret)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    c = recording_context(
        config=deploy_config, run={**cluster_answers("production", history="[]"), CATCH_ALL: ""}
    )
    environment = resolve_environment(c, "production", None, require=("values_file",))
    deploy_collection.setup_cluster(c, environment, yes=True, allow_dirty=False, image_tag=None)
    assert c.commands == expected_deploy("production", 4, setup=True)
    create = next(cmd for cmd in c.commands if " create secret generic " in cmd)
    apply = next(cmd for cmd in c.commands if " apply --server-side --force-conflicts " in cmd)
    assert c.stdin[create] == f"FLOWLET_DB_PASSWORD={secret}\n"
    assert c.stdin[apply].startswith("apiVersion: v1\nkind: Secret")
    captured = capsys.readouterr()
    for text in [*c.commands, captured.out, captured.err]:
        assert secret not in text
    assert not any(
        secret in p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
    )
    assert "secret/flowlet-app applied in flowlet-prod (owned by flowlet-ops)" in captured.out
    assert json.loads(Path(deploy_config.deploy.audit_log).read_text())["action"] == "setup"


def test_setup_cluster_dry_run_never_reads_values(
    recording_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("FLOWLET_DB_PASSWORD", raising=False)  # not even needed
    deploy_config.run.dry = True
    c = recording_context(config=deploy_config, run=cluster_answers("staging"))
    environment = resolve_environment(c, "staging", None, require=("values_file",))
    deploy_collection.setup_cluster(c, environment, yes=False, allow_dirty=False, image_tag="abc")
    assert c.commands == expected_deploy(
        "staging", 4, setup=True, checksum=DRY_CHECKSUM, image_tag="abc", dry=True
    )
    assert not any("create secret" in command for command in c.stdin), "no values were read"
    assert "(dry run: the values from environment variables FLOWLET_DB_PASSWORD are not read)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("major", [3, 4], ids=["helm3", "helm4"])
def test_force_conflicts(
    major: int,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    version = "v4.1.4" if major == 4 else "v3.18.0"
    answers = cluster_answers("staging", helm_version=version)
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    if major == 3:
        with fails_with(
            r"^--force-conflicts: needs Helm 4 \(server-side apply\); helm v3\.18\.0 "
            "applies client-side",
            code=1,
        ):
            deploy_collection.deploy(c, env="staging", force_conflicts=True)
        assert c.commands == [
            "helm version --template '{{.Version}}'",
            "kubectl version --client --output json",
        ]
        return
    deploy_collection.deploy(c, env="staging", force_conflicts=True, diff=False)
    assert c.commands == expected_deploy(
        "staging", 4, diff=False, extra_upgrade=" --force-conflicts"
    )


def test_image_digests_pin_images(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    digest = "sha256:" + "b" * 64
    c = strict_context(config=deploy_config, run={**cluster_answers("production"), CATCH_ALL: ""})
    deploy_collection.deploy(
        c, env="production", yes=True, diff=False, image_digest=f"frontend={digest}"
    )
    upgrade = next(cmd for cmd in c.commands if " upgrade " in cmd)
    assert f"--set-string frontend.image.digest={digest} --set-string secretChecksum=" in upgrade


def test_missing_secret_refuses_before_anything_changes(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    missing = Result(
        exited=1, stderr='Error from server (NotFound): secrets "flowlet-app" not found\n'
    )
    c = strict_context(config=deploy_config, run=cluster_answers("staging", secret=missing))
    with fails_with(
        "^secret/flowlet-app does not exist in flowlet-staging: the backend cannot start "
        "without it; create it with inv setup --env staging$",
        code=1,
    ):
        deploy_collection.deploy(c, env="staging")
    assert not any(" apply " in cmd or " create --filename" in cmd for cmd in c.commands)


def test_no_diff_and_timeout_and_context_override(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    kubectl = "kubectl --context flowlet-staging --namespace t1"
    answers = cluster_answers(
        "development",
        extra={
            f"{kubectl} get secret flowlet-app --output json": SECRET_JSON,
            f"{kubectl} create --filename - --output json": "{}",
        },
    )
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.deploy(
        c, env="development", diff=False, timeout="2m", context="flowlet-staging", namespace="t1"
    )
    assert "helm plugin list" not in c.commands
    upgrade = next(cmd for cmd in c.commands if " upgrade " in cmd)
    assert upgrade.startswith("helm --kube-context flowlet-staging upgrade --install ")
    assert upgrade.endswith(f" -- flowlet {CHART}")
    assert "--namespace t1 " in upgrade
    assert "--set progressDeadlineSeconds=96 " in upgrade and "--timeout 120s " in upgrade


def test_failed_rollout_shows_events_and_logs(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
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
    with fails_with("rollout of deployment/flowlet-backend did not finish", code=1):
        deploy_collection.deploy(c, env="staging", diff=False)
    rollout = c.commands.index(
        f"{kubectl} rollout status deployment/flowlet-backend --timeout=600s"
    )
    assert c.commands[rollout + 1 :] == [
        f"{kubectl} describe deployment/flowlet-backend",
        f"{kubectl} get pods --selector=app.kubernetes.io/instance=flowlet,"
        "app.kubernetes.io/component=backend --output json",
        f"{kubectl} logs flowlet-backend-2 --all-containers --tail=40 --prefix",
        "helm --kube-context flowlet-staging history --namespace flowlet-staging --max 1 "
        "--output json -- flowlet",
        "kubectl --context flowlet-staging delete --raw /apis/coordination.k8s.io/v1/namespaces/"
        f"flowlet-staging/leases/{LEASE} --filename -",
    ]
    record = json.loads(Path(deploy_config.deploy.audit_log).read_text())
    assert record["result"] == "failed" and record["revision"] == 2


@pytest.mark.parametrize(
    "stderr,message",
    [
        (
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress\n",
            r"^helm upgrade refused \(exit 1\): Helm says another operation "
            r"\(install/upgrade/rollback\) "
            r"is in progress on flowlet in flowlet-staging, one that does not hold the deploy "
            r"lock .*"
            r"nothing was changed or rolled back; see inv deploy.history --env=staging; once it "
            r"has "
            r"ended: inv deploy.recover --env=staging$",
        ),
        (
            "Error: UPGRADE FAILED: release flowlet failed, and has been rolled back due to "
            "rollback-on-failure being set: context deadline exceeded\n",
            r"^helm upgrade failed \(exit 1\) and was rolled back to the previous revision: "
            r"release "
            r"flowlet failed, and has been rolled back .*: context deadline exceeded; see inv "
            r"deploy.history --env=staging$",
        ),
        (
            "Error: UPGRADE FAILED: boom\n",
            r"^helm upgrade failed \(exit 1\): boom; see inv deploy.history --env=staging$",
        ),
    ],
    ids=["another-operation", "rolled-back", "other"],
)
def test_failed_upgrade_says_what_helm_did(
    stderr: str,
    message: str,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    upgrade = re.compile(r"helm --kube-context flowlet-staging upgrade .*")
    answers = cluster_answers("staging", extra={upgrade: Result(exited=1, stderr=stderr)})
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    with fails_with(message, code=1):
        deploy_collection.deploy(c, env="staging", diff=False)
    assert not any("rollout status" in cmd for cmd in c.commands)
    assert c.commands[-1].startswith("kubectl --context flowlet-staging delete --raw")


def test_failed_upgrade_keeps_helm_exit_code(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    upgrade = re.compile(r"helm --kube-context flowlet-staging upgrade .*")
    answers = cluster_answers("staging", extra={upgrade: Result(exited=7, stderr="boom")})
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    with fails_with(r"helm upgrade failed \(exit 7\): boom", code=7):
        deploy_collection.deploy(c, env="staging", diff=False)


@pytest.mark.parametrize(
    "statuses,expected",
    [
        (("superseded", "deployed", "pending-upgrade"), ["rollback", "flowlet 2"]),
        (("pending-install",), ["uninstall", "flowlet"]),
    ],
    ids=["pending-upgrade-rolls-back", "pending-install-uninstalls"],
)
@pytest.mark.parametrize("major", [3, 4], ids=["helm3", "helm4"])
def test_recover_plan(
    statuses: tuple[str, ...],
    expected: list[str],
    major: int,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    version = "v4.1.4" if major == 4 else "v3.18.0"
    answers = cluster_answers("production", helm_version=version, history=history_json(*statuses))
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.recover(c, env="production", yes=True)  # 2026-11-2x: long ago
    helm, kubectl = "helm --kube-context flowlet-production", "kubectl --context flowlet-production"
    verb, args = expected
    wait = "--wait=watcher" if major == 4 else "--wait"
    tail = f"{wait} --timeout 600s" + (
        " --cleanup-on-fail --history-max 10" if verb == "rollback" else ""
    )
    assert c.commands[3:] == [
        f"{kubectl} --namespace flowlet-prod create --filename - --output json",
        f"{helm} history --namespace flowlet-prod --max 20 --output json -- flowlet",
        f"{helm} {verb} --namespace flowlet-prod {tail} -- {args}",
        f"{helm} history --namespace flowlet-prod --max 1 --output json -- flowlet",
        f"{kubectl} delete --raw "
        f"/apis/coordination.k8s.io/v1/namespaces/flowlet-prod/leases/{LEASE} "
        "--filename -",
    ]
    assert json.loads(Path(deploy_config.deploy.audit_log).read_text())["action"] == "recover"


def test_recover_refuses_a_young_pending_revision(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    from datetime import datetime, timedelta, timezone

    young = (datetime.now(timezone.utc) - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    history = history_json("deployed", "pending-upgrade", updated=young)
    c = strict_context(
        config=deploy_config, run={**cluster_answers("staging", history=history), CATCH_ALL: ""}
    )
    with fails_with(
        r"^deploy.recover: revision 2 is pending-upgrade since \S+ \(1m3\ds old\), younger "
        r"than the deploy timeout \(10m00s\): the operation that left it may still be "
        r"running; wait, or pass --force if you know it has ended$",
        code=1,
    ):
        deploy_collection.recover(c, env="staging", yes=True)
    assert not any(" rollback " in cmd for cmd in c.commands)
    assert c.commands[-1].startswith(
        "kubectl --context flowlet-staging delete --raw"
    )  # lock released
    c = strict_context(
        config=deploy_config, run={**cluster_answers("staging", history=history), CATCH_ALL: ""}
    )
    deploy_collection.recover(c, env="staging", yes=True, force=True)
    assert any(" rollback " in cmd and cmd.endswith(" -- flowlet 1") for cmd in c.commands)


def test_recover_nothing_to_do(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = cluster_answers("staging", history=history_json("superseded", "deployed"))
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.recover(c, env="staging")
    assert "nothing to recover: not stuck (last revision: deployed)" in capsys.readouterr().out
    assert not any(" rollback " in cmd for cmd in c.commands)


@pytest.mark.parametrize(
    "major, revision, statuses",
    [
        (3, "1", ("superseded", "deployed")),
        (4, "1", ("superseded", "deployed")),
        (4, "0", ("superseded", "superseded", "failed", "deployed")),
    ],
    ids=["helm3", "helm4", "default-skips-a-failed-upgrade"],
)
def test_rollback_plan(
    major: int,
    revision: str,
    statuses: tuple[str, ...],
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    version = "v4.1.4" if major == 4 else "v3.18.0"
    answers = cluster_answers("staging", helm_version=version, history=history_json(*statuses))
    c = strict_context(config=deploy_config, run={**answers, CATCH_ALL: ""})
    deploy_collection.rollback(c, env="staging", revision=revision)
    target = int(revision) or len(statuses) - 2  # the newest live revision before the failed one
    wait = "--wait=watcher" if major == 4 else "--wait"
    kubectl = "kubectl --context flowlet-staging"
    helm = "helm --kube-context flowlet-staging"
    history = f"{helm} history --namespace flowlet-staging --max 20 --output json -- flowlet"
    assert c.commands[3:] == [
        history,
        f"{helm} get manifest --namespace flowlet-staging --revision {target} -- flowlet",
        f"{kubectl} --namespace flowlet-staging create --filename - --output json",
        history,
        f"{helm} rollback --namespace flowlet-staging {wait} --timeout 600s "
        f"--cleanup-on-fail "
        f"--history-max 10 -- flowlet {target}",
        f"{kubectl} --namespace flowlet-staging rollout status deployment/flowlet-backend "
        f"--timeout=600s",
        f"{kubectl} --namespace flowlet-staging rollout status deployment/flowlet-frontend "
        f"--timeout=600s",
        f"{helm} history --namespace flowlet-staging --max 1 --output json -- flowlet",
        f"{kubectl} delete --raw "
        f"/apis/coordination.k8s.io/v1/namespaces/flowlet-staging/leases/{LEASE} "
        "--filename -",
    ]


@pytest.mark.parametrize(
    "revision,history,message",
    [
        (
            "5",
            history_json("superseded", "deployed"),
            r"^--revision: 5 is not in the release history; known: 1, 2$",
        ),
        (
            "0",
            Result(exited=1, stderr="Error: release: not found"),
            r"^release flowlet is not installed in flowlet-staging$",
        ),
    ],
    ids=["unknown-revision", "not-installed"],
)
def test_rollback_refusals(
    revision: str,
    history: Any,
    message: str,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    c = strict_context(config=deploy_config, run=cluster_answers("staging", history=history))
    with fails_with(message, code=1):
        deploy_collection.rollback(c, env="staging", revision=revision)
    assert not any(" rollback " in cmd or " create " in cmd for cmd in c.commands)


def test_production_rollback_needs_yes_without_terminal(
    strict_context: type, deploy_config: Config, cluster_answers: Callable[..., dict[Any, Any]]
) -> None:
    answers = cluster_answers("production", history=history_json("superseded", "deployed"))
    c = strict_context(config=deploy_config, run=answers)
    with fails_with("refusing: no terminal to confirm on; pass --yes"):
        deploy_collection.rollback(c, env="production")
    assert not any(" create " in cmd for cmd in c.commands), "no lock is taken before the answer"


def test_ctrl_c_at_the_prompt_exits_130(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(question: str, *, yes: bool) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy_run, "interactive", lambda: True)
    monkeypatch.setattr(operation, "confirm", interrupted)
    c = strict_context(config=deploy_config, run=cluster_answers("production"))
    with fails_with(r"^interrupted \(SIGINT\): deploy stopped$", code=130):
        deploy_collection.deploy(c, env="production", diff=False)
    assert not any(
        " apply " in cmd or " upgrade " in cmd or " create " in cmd for cmd in c.commands
    )


def test_signal_during_upgrade_exits_143_is_audited_and_unlocks(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    """The runner re-raises SIGTERM after helm exited (it forwarded it to helm's group)."""
    from tasks.core.boundary import Signalled

    class Stopped(strict_context):  # type: ignore[misc, valid-type]
        def run(self, command: str, **kwargs: Any) -> Result:
            result = super().run(command, **kwargs)
            if " upgrade " in command:
                raise Signalled(15)
            return result

    c = Stopped(config=deploy_config, run={**cluster_answers("staging"), CATCH_ALL: ""})
    with fails_with(
        r"^interrupted \(SIGTERM\): helm upgrade was asked to stop and has exited; the "
        r"release is at revision 2: deployed \(Upgrade complete\); check inv "
        r"deploy.status --env=staging$",
        code=143,
    ):
        deploy_collection.deploy(c, env="staging", diff=False)
    upgrade = next(i for i, cmd in enumerate(c.commands) if " upgrade " in cmd)
    assert c.commands[upgrade + 1 :] == [  # what helm left, then no rollout check: the lock
        "helm --kube-context flowlet-staging history --namespace flowlet-staging --max 1 "
        "--output json -- flowlet",
        "kubectl --context flowlet-staging delete --raw /apis/coordination.k8s.io/v1/namespaces/"
        f"flowlet-staging/leases/{LEASE} --filename -",
    ]
    record = json.loads(Path(deploy_config.deploy.audit_log).read_text())
    assert (record["result"], record["revision"]) == ("interrupted", None)


def test_unlock_plan(
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubectl = "kubectl --context flowlet-staging"
    get = f"{kubectl} --namespace flowlet-staging get lease {LEASE} --output json"
    stale = json.loads(
        cluster_answers("staging")[
            f"{kubectl} --namespace flowlet-staging create --filename - --output json"
        ]
    )
    stale["spec"].update(
        renewTime="2026-01-01T00:00:00.000000Z", acquireTime="2026-01-01T00:00:00.000000Z"
    )
    c = strict_context(
        config=deploy_config,
        run={**cluster_answers("staging"), get: json.dumps(stale), CATCH_ALL: ""},
    )
    deploy_collection.unlock(c, env="staging", yes=True)
    assert c.commands[3:] == [
        get,
        f"{kubectl} delete --raw /apis/coordination.k8s.io/v1/namespaces/"
        f"flowlet-staging/leases/{LEASE} --filename -",
    ]
    out = capsys.readouterr().out
    assert (
        "deploy lock of flowlet in flowlet-staging: held by alice@host pid 1 (?) since "
        "2026-01-01T00:00:00Z" in out
    )
    assert "(stale)" in out and out.rstrip().endswith(
        "deploy lock of flowlet in flowlet-staging removed"
    )


@pytest.mark.parametrize(
    "flags,plugin_exit,exit_code",
    [({}, 2, None), ({"exit_code": True}, 2, 2), ({"exit_code": True}, 0, None),
     ({"exit_code": True, "show_secrets": True}, 1, 1)],
    ids=["changes-without-exit-code", "changes", "no-changes", "plugin-error"],
)  # fmt: skip
def test_diff_plugin_and_exit_codes(
    flags: dict[str, bool],
    plugin_exit: int,
    exit_code: int | None,
    strict_context: type,
    deploy_config: Config,
    cluster_answers: Callable[..., dict[Any, Any]],
) -> None:
    plugin = re.compile(r"helm --kube-context flowlet-staging diff upgrade .*")
    answers = cluster_answers(
        "staging",
        plugins="NAME\tVERSION\tDESCRIPTION\ndiff\t3.13.1\tx\n",
        extra={
            plugin: Result(exited=plugin_exit, stderr="Error: boom\n" if plugin_exit == 1 else "")
        },
    )
    c = strict_context(config=deploy_config, run=answers)
    if exit_code is None:
        deploy_collection.diff(c, env="staging", image_tag="9f8e7d6", **flags)
    else:
        with fails_with(code=exit_code) as err:
            deploy_collection.diff(c, env="staging", image_tag="9f8e7d6", **flags)
        assert err.value.message == (
            "" if exit_code == 2 else "helm diff failed (exit 1): Error: boom"
        )
    shown = " --show-secrets" if flags.get("show_secrets") else ""
    assert c.commands[-1] == (
        "helm --kube-context flowlet-staging diff upgrade flowlet "
        f"{CHART} --namespace flowlet-staging --allow-unreleased --detailed-exitcode --context 5"
        f"{shown} --values {CHART}/values-staging.yaml --set-string existingSecret=flowlet-app "
        f"--set progressDeadlineSeconds=480 --set-string image.tag=9f8e7d6 "
        f"--set-string secretChecksum={CHECKSUM}"
    )
