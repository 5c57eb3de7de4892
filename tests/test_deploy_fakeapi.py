"""``inv`` from the command line with the real helm (4 and 3) and kubectl, against the in-memory
API server (tests/fakekube.py): setup, deploy, the deploy lock, Secrets that roll the pods,
Helm 4 conflicts, status, history, rollback, recover, unlock, diff --exit-code.

Each test runs ``inv`` as a real process in a scratch git checkout (fixture ``project``), with
``KUBECONFIG`` pointing every context at the fake server.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import INV
from conftest import inv_env as conftest_inv_env
from conftest import readme, run_inv, start_inv
from fakekube import FakeKube, read_helm_release
from fixtures_deploy import (
    ENVIRONMENTS,
    helm_env,
    inv_env,
    release_object,
    run_helm,
    store_release,
)

from tasks.deploy import diffs, helmout, secrets

pytestmark = pytest.mark.slow

NS = "flowlet-staging"
LEASE = "flowlet-ops-lock-flowlet"
MAJORS = pytest.mark.parametrize("major", [4, 3], ids=["helm4", "helm3"])


def inv(
    project: Path, cluster: FakeKube, command: str, *, major: int = 4, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_inv(command, cwd=project, env=inv_env(cluster.kubeconfig, major, **env))


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def release(cluster: FakeKube, revision: int) -> dict[str, Any]:
    secret = cluster.get("Secret", NS, f"sh.helm.release.v1.flowlet.v{revision}")
    assert secret is not None, f"no revision {revision}"
    return read_helm_release(secret)


def template(cluster: FakeKube, kind: str, name: str) -> dict[str, Any]:
    obj = cluster.get(kind, NS, name)
    assert obj is not None
    return obj


def assert_lines(actual: list[str], expected: list[Any]) -> None:
    """Each expected item is one line: a str (exact), a compiled regex (full match), or a list
    of lines (an exact block)."""
    flat: list[Any] = []
    for item in expected:
        flat.extend(item if isinstance(item, list) else [item])
    for number, (line, want) in enumerate(zip(actual, flat), start=1):
        ok = want.fullmatch(line) if isinstance(want, re.Pattern) else line == want
        assert ok, f"line {number}: {line!r} does not match {want!r}"
    assert len(actual) == len(
        flat
    ), f"{len(actual)} lines, expected {len(flat)}: {actual[len(flat):]}"


def helm_block(
    major: int,
    revision: int,
    *,
    installing: bool,
    env: str = "staging",
    namespace: str = NS,
    host: str = "staging.flowlet.example.com",
) -> list[Any]:
    first = (
        ['Release "flowlet" does not exist. Installing it now.']
        if installing
        else ['Release "flowlet" has been upgraded. Happy Helming!']
    )
    description = re.compile(
        rf"DESCRIPTION: flowlet-ops deploy env={env} git=[0-9a-f]{{40}} user=\S+ at=\S+Z"
    )
    return first + [
        "NAME: flowlet",
        re.compile(r"LAST DEPLOYED: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"),
        f"NAMESPACE: {namespace}",
        "STATUS: deployed",
        f"REVISION: {revision}",
        *([description] if major == 4 else []),  # Helm 3 does not print the description
        "TEST SUITE: None",
        "NOTES:",
        f"Flowlet 0.1.0 is deployed as release flowlet in namespace {namespace}.",
        "Backend:  flowlet-backend (port 8000: /healthz, /metrics)",
        f"Frontend: flowlet-frontend at https://{host}/",
    ]


@MAJORS
@pytest.mark.parametrize("env", ["staging", "production"])
def test_setup_end_to_end(env: str, major: int, project: Path, cluster: FakeKube) -> None:
    """``inv setup --env staging`` and ``inv setup --env production --yes``: every step, the
    whole output, what ends up in the cluster."""
    password = "correct-horse-battery-staple"
    ns, context, values_file = ENVIRONMENTS[env]
    command = "inv setup --env staging" if env == "staging" else "inv setup --env production --yes"
    result = inv(project, cluster, command, major=major, FLOWLET_DB_PASSWORD=password)
    assert (result.returncode, result.stderr) == (0, "")
    chart = project / "kubernetes/flowlet-chart"
    data = {"FLOWLET_DB_PASSWORD": base64.b64encode(password.encode()).decode()}
    digest = secrets.data_digest(data)
    rendered = run_helm(major, "template", "--no-hooks", "flowlet", str(chart), "--namespace",
                        ns, "--values",
                        str(chart / values_file), "--set-string", "existingSecret=flowlet-app",
                        "--set", "progressDeadlineSeconds=480",
                        "--set-string", f"secretChecksum={digest}").stdout  # fmt: skip
    safety = "--rollback-on-failure --wait=watcher" if major == 4 else "--atomic --wait"
    version = "4.1.4" if major == 4 else "3.18.0"
    confirm = "required" if env == "production" else "not required"
    host = "app.flowlet.example.com" if env == "production" else "staging.flowlet.example.com"
    assert_lines(result.stdout.splitlines(), [
        f"setup: {env}: namespace {ns}, kube context {context}, release flowlet",
        "==> 1. prerequisites: kubectl and helm",
        re.compile(rf"    kubectl v1\.33\.\d+; helm v{version} \(Helm {major}: "
                   + re.escape(safety) + r"\)"),
        "==> 2. context guard",
        f"    kube context {context} (from environments.{env}.kube_context), passed explicitly "
        "to every kubectl/helm call",
        "==> 3. guards: git tree and confirmation",
        re.compile(rf"    git [0-9a-f]{{40}} \(clean\); confirmation {confirm}"),
        "==> 4. secret flowlet-app: digest of its data (rendered from deploy.secret)",
        f"    from environment variables FLOWLET_DB_PASSWORD: sha256 {digest[:12]}... (the "
        "backend's pods roll when it changes)",
        "==> 5. diff against the deployed release",
        "    helm-diff plugin not installed: comparing helm template with helm get manifest",
        diffs.manifest_diff("", rendered).splitlines(),
        "==> 6. confirmation",
        "    confirmed by --yes" if env == "production" else "    not required for staging",
        f"==> 7. namespace {ns}: manifests",
        f"    Namespace, ResourceQuota, LimitRange, NetworkPolicy for namespace {ns} "
        "(server-side apply)",
        f"namespace/{ns} serverside-applied",
        "resourcequota/flowlet-quota serverside-applied",
        "limitrange/flowlet-limits serverside-applied",
        "networkpolicy.networking.k8s.io/default-deny-all serverside-applied",
        f"==> 8. deploy lock: lease {LEASE} in {ns}",
        re.compile(r"    taken: \S+@\S+/\d+ \(setup\), renewed every 40s, stale after 120s"),
        f"==> 9. release state: flowlet in {ns}",
        "    not installed yet",
        "==> 10. secret flowlet-app: server-side apply",
        f"    secret/flowlet-app applied in {ns} (owned by flowlet-ops)",
        "==> 11. helm upgrade --install",
        helm_block(major, 1, installing=True, env=env, namespace=ns, host=host),
        "==> 12. rollout verification",
        'deployment "flowlet-backend" successfully rolled out',
        'deployment "flowlet-frontend" successfully rolled out',
        "==> 13. audit record",
        f"    succeeded: revision 1 recorded in {project}/.flowlet/deploy-audit.jsonl",
        "==> 14. deploy lock: release",
        "    released",
    ])  # fmt: skip
    assert password not in result.stdout + result.stderr
    secret = cluster.get("Secret", ns, "flowlet-app")
    assert secret is not None and secret["data"] == data
    managers = cluster.managers("Secret", ns, "flowlet-app")
    assert managers == {"flowlet-ops": [".data.FLOWLET_DB_PASSWORD"]}
    backend = cluster.get("Deployment", ns, "flowlet-backend")
    assert backend is not None
    assert backend["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] == digest
    stored = cluster.get("Secret", ns, "sh.helm.release.v1.flowlet.v1")
    assert stored is not None and read_helm_release(stored)["info"]["status"] == "deployed"
    assert cluster.get("Lease", ns, LEASE) is None, "the lock was released"
    record = json.loads((project / ".flowlet" / "deploy-audit.jsonl").read_text())
    assert (record["action"], record["result"], record["revision"]) == ("setup", "succeeded", 1)


@readme("inv --dry setup --env production")
def test_dry_setup_production_touches_no_cluster(project: Path, cluster: FakeKube) -> None:
    """``inv --dry setup --env production``: every step and command printed (the whole output),
    nothing asked (no terminal, no --yes), no value read (none is even set), no lock, not one
    request to the cluster, no audit record."""
    result = inv(project, cluster, "inv --dry setup --env production")
    assert (result.returncode, result.stderr) == (0, "")
    assert cluster.requests == []
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # Invoke echoes --dry commands in bold
    chart, kubectl = project / "kubernetes/flowlet-chart", "kubectl --context flowlet-production"
    values = (
        f"--values {chart}/values-production.yaml --set-string existingSecret=flowlet-app "
        "--set progressDeadlineSeconds=480 --set-string secretChecksum=SHA256_OF_THE_SECRET_DATA"
    )
    ns = "--namespace flowlet-prod"
    assert_lines(out.splitlines(), [
        "setup: production: namespace flowlet-prod, kube context flowlet-production, release "
        "flowlet",
        "==> 1. prerequisites: kubectl and helm",
        "    kubectl v1.33.9; helm v4.1.4 (Helm 4: --rollback-on-failure --wait=watcher)",
        "==> 2. context guard",
        "    kube context flowlet-production (from environments.production.kube_context), passed "
        "explicitly to every kubectl/helm call",
        "==> 3. guards: git tree and confirmation",
        re.compile(r"    git [0-9a-f]{40} \(clean\); confirmation required"),
        "==> 4. secret flowlet-app: digest of its data (rendered from deploy.secret)",
        f"{kubectl} {ns} create secret generic flowlet-app --from-env-file=/dev/stdin "
        "--dry-run=client --output yaml",
        "    (dry run: the values from environment variables FLOWLET_DB_PASSWORD are not read)",
        "==> 5. diff against the deployed release",
        "    helm-diff plugin not installed: comparing helm template with helm get manifest",
        f"helm template --no-hooks {ns} {values} -- flowlet {chart}",
        f"helm --kube-context flowlet-production get manifest {ns} -- flowlet",
        "==> 6. confirmation",
        "    (dry run: would ask) Set up and deploy flowlet in production (namespace flowlet-prod, "
        "context flowlet-production)?",
        "==> 7. namespace flowlet-prod: manifests",
        "    Namespace, ResourceQuota, LimitRange, NetworkPolicy for namespace flowlet-prod "
        "(server-side apply)",
        f"{kubectl} apply --server-side --field-manager=flowlet-ops --filename -",
        f"==> 8. deploy lock: lease {LEASE} in flowlet-prod",
        f"{kubectl} {ns} create --filename - --output json",
        "    (dry run: the lock is not taken)",
        "==> 9. release state: flowlet in flowlet-prod",
        f"helm --kube-context flowlet-production history {ns} --max 20 --output json -- flowlet",
        "    (dry run: release history not read)",
        "==> 10. secret flowlet-app: server-side apply",
        f"{kubectl} {ns} apply --server-side --force-conflicts --field-manager=flowlet-ops "
        "--filename -",
        "    secret/flowlet-app would be applied in flowlet-prod",
        "==> 11. helm upgrade --install",
        re.compile(re.escape(
            f"helm --kube-context flowlet-production upgrade --install {ns} "
            f"{values} --rollback-on-failure --wait=watcher --timeout 600s --cleanup-on-fail "
            "--history-max 10 --description 'flowlet-ops deploy env=production git="
        ) + r"[0-9a-f]{40} user=\S+ at=\S+Z' -- flowlet " + re.escape(str(chart))),
        "==> 12. rollout verification",
        f"{kubectl} {ns} rollout status deployment/flowlet-backend --timeout=600s",
        f"{kubectl} {ns} rollout status deployment/flowlet-frontend --timeout=600s",
        "==> 13. audit record",
        f"    (dry run: no audit record written to {project}/.flowlet/deploy-audit.jsonl)",
        "==> 14. deploy lock: release",
        f"{kubectl} delete --raw /apis/coordination.k8s.io/v1/namespaces/flowlet-prod/leases/"
        f"{LEASE} --filename -",
    ])  # fmt: skip
    assert not (project / ".flowlet").exists()


@MAJORS
def test_a_changed_secret_rolls_the_backend_and_nothing_else(
    major: int, project: Path, cluster: FakeKube
) -> None:
    assert (
        inv(
            project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="one"
        ).returncode
        == 0
    )
    first = template(cluster, "Deployment", "flowlet-backend")
    frontend = template(cluster, "Deployment", "flowlet-frontend")
    # an unchanged Secret: deploy (digest read from the cluster) and setup leave both templates
    assert inv(project, cluster, "inv deploy --env=staging --no-diff", major=major).returncode == 0
    assert (
        inv(
            project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="one"
        ).returncode
        == 0
    )
    assert template(cluster, "Deployment", "flowlet-backend")["spec"] == first["spec"]
    # one changed value: the backend's pod template changes, the frontend's does not
    assert (
        inv(
            project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="two"
        ).returncode
        == 0
    )
    second = template(cluster, "Deployment", "flowlet-backend")
    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert second["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] != (
        first["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
    )
    assert template(cluster, "Deployment", "flowlet-frontend")["spec"] == frontend["spec"]
    assert (
        base64.b64decode(template(cluster, "Secret", "flowlet-app")["data"]["FLOWLET_DB_PASSWORD"])
        == b"two"
    )


def test_the_secret_is_taken_back_from_a_hand_edit(project: Path, cluster: FakeKube) -> None:
    """Someone edited the app Secret with plain kubectl (another field manager): setup still
    applies it (--force-conflicts for the Secret this toolkit owns) and owns it again."""
    assert (
        inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="one").returncode == 0
    )
    cluster.edit(
        "Secret", NS, "flowlet-app", {"data": {"FLOWLET_DB_PASSWORD": "aGFuZA=="}}, "kubectl-edit"
    )
    assert cluster.managers("Secret", NS, "flowlet-app") == {
        "kubectl-edit": [".data.FLOWLET_DB_PASSWORD"]
    }
    result = inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="one")
    assert result.returncode == 0, result.stderr
    assert cluster.managers("Secret", NS, "flowlet-app") == {
        "flowlet-ops": [".data.FLOWLET_DB_PASSWORD"]
    }
    assert template(cluster, "Secret", "flowlet-app")["data"]["FLOWLET_DB_PASSWORD"] == "b25l"


def test_helm4_conflict_is_explained_and_forced(project: Path, cluster: FakeKube) -> None:
    """After ``kubectl scale`` (staging renders replicas: 2) Helm 4's server-side apply
    conflicts: one line names the field manager and the field and what to do;
    ``--force-conflicts`` takes the field back."""
    assert inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="x").returncode == 0
    scale = subprocess.run(
        [
            "kubectl",
            "--context",
            "flowlet-staging",
            "--namespace",
            NS,
            "scale",
            "deployment/flowlet-backend",
            "--replicas=3",
        ],
        env=helm_env(4),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scale.returncode == 0, scale.stderr
    result = inv(project, cluster, "inv deploy --env=staging --no-diff")
    assert result.returncode == 1
    assert error_line(result) == (
        "helm upgrade failed (exit 1) on server-side apply conflicts and its automatic rollback "
        f"failed too: the release is left failed: Deployment {NS}/flowlet-backend: .spec.replicas "
        'owned by "kubectl" with subresource "scale"; these fields were changed outside Helm '
        "(kubectl scale/edit/apply): put the change into the chart values if it should stay, then "
        "run inv deploy --env=staging --force-conflicts to take the fields back"
    )
    assert cluster.get("Lease", NS, LEASE) is None
    forced = inv(project, cluster, "inv deploy --env=staging --no-diff --force-conflicts")
    assert forced.returncode == 0, forced.stderr
    assert template(cluster, "Deployment", "flowlet-backend")["spec"]["replicas"] == 2
    assert "kubectl" not in cluster.managers("Deployment", NS, "flowlet-backend")


def test_helm3_has_no_conflicts_and_refuses_force_conflicts(
    project: Path, cluster: FakeKube
) -> None:
    assert (
        inv(
            project, cluster, "inv setup --env staging", major=3, FLOWLET_DB_PASSWORD="x"
        ).returncode
        == 0
    )
    cluster.edit("Deployment", NS, "flowlet-backend", {"spec": {"replicas": 3}}, "kubectl-edit")
    result = inv(project, cluster, "inv deploy --env=staging --no-diff --force-conflicts", major=3)
    assert (result.returncode, error_line(result)) == (
        1,
        (
            "--force-conflicts: needs Helm 4 (server-side apply); helm v3.18.0 applies "
            "client-side, "
            "where there are no field-manager conflicts to force"
        ),
    )
    assert inv(project, cluster, "inv deploy --env=staging --no-diff", major=3).returncode == 0
    assert template(cluster, "Deployment", "flowlet-backend")["spec"]["replicas"] == 2


def started_upgrade(cluster: FakeKube, before: int, timeout: float = 60) -> None:
    """Wait until helm has written the backend Deployment (after ``before`` such writes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        writes = [r for r in cluster.writes() if r.endswith("/deployments/flowlet-backend")]
        if len(writes) > before:
            return
        time.sleep(0.1)
    raise AssertionError("helm did not start the upgrade")


def backend_writes(cluster: FakeKube) -> int:
    return len([r for r in cluster.writes() if r.endswith("/deployments/flowlet-backend")])


def test_two_deploys_started_together(project: Path, cluster: FakeKube) -> None:
    """Exactly one proceeds; the other refuses with one line naming the holder and since when."""
    assert inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="x").returncode == 0
    cluster.hold_rollout(NS, "flowlet-backend")  # the winner waits in helm --wait, holding the lock
    env = inv_env(cluster.kubeconfig)
    first, second = (
        start_inv(
            ["deploy", "--env=staging", "--no-diff", f"--image-tag=t{i}"], cwd=project, env=env
        )
        for i in (1, 2)
    )
    pids = {first.pid: first, second.pid: second}
    deadline = time.monotonic() + 120
    loser = None
    while loser is None and time.monotonic() < deadline:
        loser = next((p for p in pids.values() if p.poll() is not None), None)
        time.sleep(0.1)
    assert loser is not None, "neither deploy refused"
    winner = second if loser is first else first
    out, err = loser.communicate()
    assert loser.returncode == 1, err
    assert re.fullmatch(
        r"deploy: the deploy lock of flowlet in flowlet-staging is held by \S+@\S+ pid "
        rf"{winner.pid} \(inv deploy --env=staging --no-diff --image-tag=t\d, git [0-9a-f]{{12}}\) "
        r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, renewed \d+s ago; wait for it to finish; if that "
        r"process is gone it goes stale at \S+Z \(deploy.lock_stale_after\), or remove it with inv "
        r"deploy.unlock --env=staging\n",
        err,
    )
    assert "helm --kube-context" not in out and "==> 8. release state" not in out
    cluster.hold_rollout(NS, "flowlet-backend", held=False)
    out, err = winner.communicate(timeout=300)
    assert winner.returncode == 0, err
    assert "==> 12. deploy lock: release\n    released\n" in out
    assert cluster.get("Lease", NS, LEASE) is None
    records = [
        json.loads(line)
        for line in (project / ".flowlet/deploy-audit.jsonl").read_text().splitlines()
    ]
    assert [r["result"] for r in records] == [
        "succeeded",
        "succeeded",
    ], "a refused lock is not an operation"


def wait_until(predicate: Any, what: str, timeout: float = 120) -> None:
    """Wait for an event (``predicate()`` true), failing with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def rolling_back(cluster: FakeKube) -> bool:
    """helm has written revision 3: its rollback to 1 after the interrupted revision 2."""
    return cluster.get("Secret", NS, "sh.helm.release.v1.flowlet.v3") is not None


@MAJORS
@pytest.mark.signals
def test_kill_9_of_inv_sends_helm_sigterm_which_rolls_back(
    major: int, project: Path, cluster: FakeKube
) -> None:
    """kill -9 of inv (OOM, a CI runner ending the job) during helm's wait: helm's death signal
    is SIGTERM (never SIGKILL), so helm rolls back on its own, with nobody left to read its
    output; the lock goes stale and the next deploy takes it over and proceeds."""
    assert (
        inv(
            project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="x"
        ).returncode
        == 0
    )
    cluster.hold_rollout(NS, "flowlet-backend")
    env = {**inv_env(cluster.kubeconfig, major), "INVOKE_DEPLOY_LOCK_STALE_AFTER": "12s"}
    before = backend_writes(cluster)
    victim = start_inv(
        ["deploy", "--env=staging", "--no-diff", "--image-tag=killed"], cwd=project, env=env
    )
    started_upgrade(cluster, before)
    children = [
        int(p) for p in Path(f"/proc/{victim.pid}/task/{victim.pid}/children").read_text().split()
    ]
    assert children and all(os.getsid(child) == child for child in children), "own session"
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    wait_until(lambda: rolling_back(cluster), "helm rolls back after inv was killed")
    assert any(alive(child) for child in children), "helm outlives inv while rolling back"
    cluster.hold_rollout(NS, "flowlet-backend", held=False)
    wait_until(lambda: not any(alive(child) for child in children), "helm exits when done")
    rolled_back = release(cluster, 3)["info"]
    assert (rolled_back["status"], rolled_back["description"]) == ("deployed", "Rollback to 1")
    assert release(cluster, 2)["info"]["status"] == "failed"
    lease = cluster.get("Lease", NS, LEASE)
    assert lease is not None and lease["spec"]["holderIdentity"].endswith(f"/{victim.pid}")
    # a live-looking lock refuses the next deploy, naming the dead holder
    refused = inv(
        project,
        cluster,
        "inv deploy --env=staging --no-diff",
        major=major,
        INVOKE_DEPLOY_LOCK_STALE_AFTER="12s",
    )
    assert refused.returncode == 1 and f"pid {victim.pid} (inv deploy --env=staging" in error_line(
        refused
    )
    # after the stale time without renewal the next deploy takes it over and proceeds: the
    # release is consistent, nothing to --force
    renewed = lease["spec"]["renewTime"]
    idle = time.time() - helmout.parse_time(renewed).timestamp()  # type: ignore[union-attr]
    time.sleep(max(0.0, 13 - idle))  # the lock's stale time is wall-clock time by design
    taken = inv(
        project,
        cluster,
        "inv deploy --env=staging --no-diff --image-tag=after",
        major=major,
        INVOKE_DEPLOY_LOCK_STALE_AFTER="12s",
    )
    assert taken.returncode == 0, taken.stderr
    assert re.search(
        rf"    taken over from a stale lock \(\S+ pid {victim.pid} \(inv deploy --env=staging "
        r"--no-diff --image-tag=killed, git [0-9a-f]{12}\) since \S+, renewed 1\ds ago\): ",
        taken.stdout,
    )
    assert "    revision 3: deployed\n" in taken.stdout
    assert release(cluster, 4)["info"]["status"] == "deployed"
    assert cluster.get("Lease", NS, LEASE) is None


def test_a_pending_release_refuses_until_recovered(project: Path, cluster: FakeKube) -> None:
    """A revision left pending (a helm run by hand, or killed with SIGKILL): the deploy refuses
    and names the recovery; recover refuses a pending revision younger than the deploy timeout
    (its helm may still run) unless --force, then rolls back."""
    assert inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="x").returncode == 0
    pending = release(cluster, 1)
    pending["version"], pending["info"]["status"] = 2, "pending-upgrade"
    pending["info"]["last_deployed"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    store_release(cluster, pending)
    refused = inv(project, cluster, "inv deploy --env=staging --no-diff")
    assert refused.returncode == 1
    assert error_line(refused).startswith(
        "release flowlet in flowlet-staging is stuck in pending-upgrade (revision 2) although no "
        "flowlet-ops operation holds the deploy lock"
    )
    assert cluster.get("Lease", NS, LEASE) is None, "released after the refusal"
    young = inv(project, cluster, "inv deploy.recover --env=staging --yes")
    assert young.returncode == 1
    assert re.fullmatch(
        r"deploy.recover: revision 2 is pending-upgrade since \S+ \(\d+s old\), younger than the "
        r"deploy timeout \(10m00s\): .* pass --force if you know it has ended",
        error_line(young),
    )
    forced = inv(project, cluster, "inv deploy.recover --env=staging --yes --force")
    assert forced.returncode == 0, forced.stderr
    assert (
        "revision 2 is pending-upgrade" in forced.stdout
        and "will roll back to revision 1" in forced.stdout
    )
    assert release(cluster, 3)["info"]["status"] == "deployed"


@MAJORS
def test_a_release_left_pending_by_a_stale_locks_holder_is_recovered_under_the_same_lock(
    major: int, project: Path, cluster: FakeKube
) -> None:
    """The holder of a stale lock died with the release pending-upgrade, longer ago than the
    deploy timeout (its helm died too: a lost machine): the deploy that takes the lock over
    rolls the release back under that same lock and goes on, no second manual step."""
    setup = inv(project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="x")
    assert setup.returncode == 0, setup.stderr
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 300))
    pending = release(cluster, 1)
    pending["version"], pending["info"]["status"] = 2, "pending-upgrade"
    pending["info"]["last_deployed"] = old
    store_release(cluster, pending)
    cluster.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": LEASE,
                "namespace": NS,
                "annotations": {"flowlet.io/operation": "deploy"},
            },
            "spec": {
                "holderIdentity": "ci@runner-3/77",
                "leaseDurationSeconds": 120,
                "acquireTime": old,
                "renewTime": old,
            },
        }
    )
    result = inv(project, cluster, "inv deploy --env=staging --no-diff --timeout=60s", major=major)
    assert result.returncode == 0, result.stderr
    assert re.search(r"    taken over from a stale lock \(ci@runner-3 pid 77 ", result.stdout)
    assert (
        "    revision 2 is pending-upgrade, left by the stale lock's holder (ci@runner-3 pid 77) "
        "and older than the deploy timeout (1m00s): rolling back to revision 1 under this same "
        "lock\n" in result.stdout
    )
    assert release(cluster, 3)["info"]["description"] == "Rollback to 1"
    assert release(cluster, 4)["info"]["status"] == "deployed"
    assert cluster.get("Lease", NS, LEASE) is None


def test_unlock_removes_the_lock_of_a_killed_deploy(project: Path, cluster: FakeKube) -> None:
    assert inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="x").returncode == 0
    cluster.hold_rollout(NS, "flowlet-backend")
    before = backend_writes(cluster)
    victim = start_inv(
        ["deploy", "--env=staging", "--no-diff", "--image-tag=killed"],
        cwd=project,
        env=inv_env(cluster.kubeconfig),
    )
    started_upgrade(cluster, before)
    children = [
        int(p) for p in Path(f"/proc/{victim.pid}/task/{victim.pid}/children").read_text().split()
    ]
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    cluster.hold_rollout(NS, "flowlet-backend", held=False)  # helm's own rollback finishes
    wait_until(lambda: not any(alive(child) for child in children), "helm exits when done")
    result = inv(project, cluster, "inv deploy.unlock --env=staging --yes")
    assert result.returncode == 0, result.stderr
    assert re.search(
        rf"deploy lock of flowlet in flowlet-staging: held by \S+ pid {victim.pid} .* \(holder "
        rf"gone\)",
        result.stdout,
    )
    assert result.stdout.endswith("deploy lock of flowlet in flowlet-staging removed\n")
    assert cluster.get("Lease", NS, LEASE) is None
    again = inv(project, cluster, "inv deploy.unlock --env=staging --yes")
    assert again.stdout.endswith("flowlet in flowlet-staging is not locked\n")


def test_unlock_refuses_a_live_lock_without_force(project: Path, cluster: FakeKube) -> None:
    cluster.namespace(NS)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cluster.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": LEASE,
                "namespace": NS,
                "annotations": {"flowlet.io/operation": "deploy"},
            },
            "spec": {
                "holderIdentity": "bob@ci-runner-7/4242",
                "leaseDurationSeconds": 120,
                "acquireTime": now,
                "renewTime": now,
            },
        }
    )
    result = inv(project, cluster, "inv deploy.unlock --env=staging --yes")
    assert result.returncode == 1
    assert re.fullmatch(
        r"deploy.unlock: the lock of flowlet in flowlet-staging is live \(renewed \ds ago by "
        r"bob@ci-runner-7 pid 4242\); if that process is gone \(kill -9, a lost machine\) "
        r"wait until \S+Z or pass --force",
        error_line(result),
    )
    assert cluster.get("Lease", NS, LEASE) is not None
    no_terminal = inv(project, cluster, "inv deploy.unlock --env=staging --force")
    assert no_terminal.returncode == 1 and "no terminal to confirm on; pass --yes" in error_line(
        no_terminal
    )
    assert inv(project, cluster, "inv deploy.unlock --env=staging --force --yes").returncode == 0
    assert cluster.get("Lease", NS, LEASE) is None


SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"]
)


@MAJORS
@SIGNALS
@pytest.mark.signals
def test_a_signal_reaches_helm_as_sigterm_which_rolls_back(
    major: int, signum: int, project: Path, cluster: FakeKube
) -> None:
    """SIGTERM, SIGHUP (a closed terminal, a dropped SSH session) or SIGINT to inv during the
    upgrade: helm gets SIGTERM (never SIGHUP, which would kill it outright, nor SIGKILL), cancels
    and rolls back on its own while inv waits; then inv exits 128+N naming the release's state,
    records it, releases the lock, and the next deploy proceeds."""
    assert (
        inv(
            project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="x"
        ).returncode
        == 0
    )
    cluster.hold_rollout(NS, "flowlet-backend")
    before = backend_writes(cluster)
    child = start_inv(
        ["deploy", "--env=staging", "--no-diff", "--image-tag=new"],
        cwd=project,
        # a hang ends with every thread's stack on stderr (SIGABRT below)
        env={**inv_env(cluster.kubeconfig, major), "PYTHONFAULTHANDLER": "1"},
    )
    started_upgrade(cluster, before)
    child.send_signal(signum)
    wait_until(lambda: rolling_back(cluster), "helm rolls back")
    assert child.poll() is None, "inv waits for helm's own rollback"
    cluster.hold_rollout(NS, "flowlet-backend", held=False)
    try:
        out, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGABRT)
        out, err = child.communicate(timeout=30)
        raise AssertionError(f"inv did not exit after helm's rollback\n{out}\n{err}") from None
    assert child.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert error_line(subprocess.CompletedProcess([], 128 + signum, out, err)) == (
        f"interrupted ({name}): helm upgrade was asked to stop and has exited; the release is at "
        "revision 3: deployed (Rollback to 1); check inv deploy.status --env=staging"
    )
    assert "==> 11. deploy lock: release\n    released\n" in out
    assert cluster.get("Lease", NS, LEASE) is None
    record = json.loads((project / ".flowlet/deploy-audit.jsonl").read_text().splitlines()[-1])
    assert record["result"] == "interrupted"
    again = inv(project, cluster, "inv deploy --env=staging --no-diff --image-tag=new", major=major)
    assert again.returncode == 0, again.stderr
    assert release(cluster, 4)["info"]["status"] == "deployed"


@MAJORS
@pytest.mark.signals
def test_sighup_during_the_first_install_leaves_no_pending_install(
    major: int, project: Path, cluster: FakeKube
) -> None:
    """SIGHUP to ``inv setup`` while helm installs: helm gets SIGTERM and removes the release
    it could not finish (Helm's rollback of an install), never a ``pending-install``; the next
    setup installs without deploy.recover."""
    cluster.hold_rollout(NS, "flowlet-backend")
    child = start_inv(
        ["setup", "--env=staging"],
        cwd=project,
        env=inv_env(cluster.kubeconfig, major, FLOWLET_DB_PASSWORD="x"),
    )
    wait_until(
        lambda: cluster.get("Deployment", NS, "flowlet-backend") is not None,
        "helm creates the backend Deployment",
    )
    child.send_signal(signal.SIGHUP)
    wait_until(
        lambda: any(r.startswith("DELETE ") and "/deployments/" in r for r in cluster.requests),
        "helm removes what it installed",
    )
    cluster.hold_rollout(NS, "flowlet-backend", held=False)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 129, err
    assert error_line(subprocess.CompletedProcess([], 129, out, err)).startswith(
        "interrupted (SIGHUP): helm upgrade was asked to stop and has exited"
    )
    assert cluster.get("Secret", NS, "sh.helm.release.v1.flowlet.v1") is None, "no pending-install"
    assert cluster.get("Lease", NS, LEASE) is None
    again = inv(project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="x")
    assert again.returncode == 0, again.stderr
    assert release(cluster, 1)["info"]["status"] == "deployed"


def start_in_terminal(argv: list[str], project: Path, env: dict[str, str]) -> tuple[Any, int]:
    """``inv`` leading a session whose controlling terminal is a new pty (an SSH login): returns
    the process and the pty's master end."""
    master, slave = os.openpty()

    def login() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(  # nosec B603
        [INV, *argv],
        cwd=project,
        env=conftest_inv_env(env),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=login,
    )
    os.close(slave)
    return child, master


@MAJORS
@pytest.mark.signals
def test_a_closed_terminal_rolls_back_and_releases_the_lock(
    major: int, project: Path, cluster: FakeKube
) -> None:
    """The terminal of inv goes away mid-upgrade (a closed window, a dropped SSH session): inv
    gets SIGHUP, and every write to its terminal fails from then on. helm still gets SIGTERM
    and rolls back, inv waits for it, and releases the lock; the next deploy proceeds."""
    setup = inv(project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="x")
    assert setup.returncode == 0, setup.stderr
    cluster.hold_rollout(NS, "flowlet-backend")
    before = backend_writes(cluster)
    child, master = start_in_terminal(
        ["deploy", "--env=staging", "--no-diff", "--image-tag=new"],
        project,
        inv_env(cluster.kubeconfig, major),
    )
    seen = bytearray()
    stop = threading.Event()

    def drain() -> None:  # what a terminal does: read everything inv writes
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                try:
                    seen.extend(os.read(master, 65536))
                except OSError:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        started_upgrade(cluster, before)
    finally:
        stop.set()
        reader.join()
        os.close(master)  # the hangup: SIGHUP to inv, EIO on its every write from now on
    wait_until(lambda: rolling_back(cluster), "helm rolls back")
    assert child.poll() is None, "inv waits for helm's own rollback"
    cluster.hold_rollout(NS, "flowlet-backend", held=False)
    assert child.wait(timeout=120) == 128 + signal.SIGHUP, seen.decode(errors="replace")
    rolled_back = release(cluster, 3)["info"]
    assert (rolled_back["status"], rolled_back["description"]) == ("deployed", "Rollback to 1")
    assert cluster.get("Lease", NS, LEASE) is None, "the lock is released without a terminal"
    record = json.loads((project / ".flowlet/deploy-audit.jsonl").read_text().splitlines()[-1])
    assert record["result"] == "interrupted"
    again = inv(project, cluster, "inv deploy --env=staging --no-diff", major=major)
    assert again.returncode == 0, again.stderr


def test_status_history_and_the_errors_of_each_query(project: Path, cluster: FakeKube) -> None:
    assert inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="x").returncode == 0
    status = inv(project, cluster, "inv deploy.status --env=staging")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert re.fullmatch(
        r"flowlet in flowlet-staging: revision 1 deployed; chart flowlet-0.1.0 \(app 0.1.0\); "
        r"deployed \S+; flowlet-ops deploy env=staging git=[0-9a-f]{40} user=\S+ at=\S+",
        lines[1],
    )
    assert (
        "deployment.apps/flowlet-backend" in status.stdout
        and "poddisruptionbudget.policy/flowlet-frontend" in status.stdout
    )
    assert (
        inv(project, cluster, "inv deploy --env=staging --no-diff --image-tag=two").returncode == 0
    )
    history = inv(project, cluster, "inv deploy.history --env=staging --max=1")
    assert history.returncode == 0
    table = [line.split() for line in history.stdout.splitlines() if not line.startswith("    ")]
    assert table[0] == ["REVISION", "UPDATED", "STATUS", "CHART", "APP", "VERSION", "DESCRIPTION"]
    assert [(row[0], row[2], row[3]) for row in table[1:]] == [("2", "deployed", "flowlet-0.1.0")]
    cluster.fail("GET /apis/policy/v1/namespaces/flowlet-staging/poddisruptionbudgets", 403)
    failed = inv(project, cluster, "inv deploy.status --env=staging")
    assert failed.returncode == 1
    assert error_line(failed).startswith(
        "kubectl get deployments,pods,hpa,pdb failed (exit 1): Error from server (Forbidden)"
    )
    cluster.fail("GET /api/v1/namespaces/flowlet-staging/secrets", 500)
    failed = inv(project, cluster, "inv deploy.status --env=staging")
    assert failed.returncode == 1
    assert error_line(failed).startswith("helm status failed (exit 1): Error: ")
    unreachable = run_inv(
        "inv deploy.status --env=staging",
        cwd=project,
        env=inv_env(Path(cluster.kubeconfig).with_name("closed"), 4),
    )
    assert unreachable.returncode == 1
    assert error_line(unreachable).startswith(
        "environments.staging.kube_context: kube context 'flowlet-staging' not found"
    )


@MAJORS
def test_rollback_to_a_revision(major: int, project: Path, cluster: FakeKube) -> None:
    assert (
        inv(
            project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="x"
        ).returncode
        == 0
    )
    assert (
        inv(
            project, cluster, "inv deploy --env=staging --no-diff --image-tag=second", major=major
        ).returncode
        == 0
    )
    image = template(cluster, "Deployment", "flowlet-backend")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == "ghcr.io/flowlet/backend:second"
    result = inv(project, cluster, "inv deploy.rollback --env=staging --revision=1", major=major)
    assert result.returncode == 0, result.stderr
    assert release(cluster, 3)["info"]["description"] == "Rollback to 1"
    image = template(cluster, "Deployment", "flowlet-backend")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == "ghcr.io/flowlet/backend:0.1.0"
    assert 'deployment "flowlet-frontend" successfully rolled out' in result.stdout


@MAJORS
def test_a_default_rollback_after_a_failed_deploy_lands_on_the_last_good_revision(
    major: int, project: Path, cluster: FakeKube
) -> None:
    """A deploy that failed and that Helm rolled back (1 superseded, 2 failed, 3 "Rollback to
    1"): Helm's "previous revision" is the broken 2; the default target is 1, named with its
    image, chart, git SHA and age before the prompt and after the rollback."""
    setup = inv(project, cluster, "inv setup --env staging", major=major, FLOWLET_DB_PASSWORD="x")
    assert setup.returncode == 0, setup.stderr
    cluster.fail(f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/flowlet-backend", 500, times=1)
    broken = inv(
        project, cluster, "inv deploy --env=staging --no-diff --image-tag=1.1.0-broken", major=major
    )
    assert broken.returncode != 0
    assert release(cluster, 2)["info"]["status"] == "failed"
    assert release(cluster, 3)["info"]["description"] == "Rollback to 1"
    result = inv(project, cluster, "inv deploy.rollback --env=staging --yes", major=major)
    assert result.returncode == 0, result.stderr
    target = r"revision 1 \(image tag 0\.1\.0, chart flowlet-0\.1\.0, git [0-9a-f]{12}, \d+s old\)"
    assert "    skipped revision 2: a failed upgrade (failed)\n" in result.stdout
    assert re.search(
        rf"^    current: revision 3 \(deployed\); target: {target}$", result.stdout, re.M
    )
    assert re.search(rf"^    rolled back to {target}$", result.stdout, re.M)
    assert release(cluster, 4)["info"]["description"] == "Rollback to 1"
    image = template(cluster, "Deployment", "flowlet-backend")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == "ghcr.io/flowlet/backend:0.1.0"


def test_recover_refuses_while_the_lock_is_live(project: Path, cluster: FakeKube) -> None:
    cluster.namespace(NS)
    for revision, status in ((1, "deployed"), (2, "pending-upgrade")):
        store_release(cluster, release_object(revision, status, NS))
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cluster.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": LEASE,
                "namespace": NS,
                "annotations": {
                    "flowlet.io/operation": "deploy",
                    "flowlet.io/command": "inv deploy --env=staging",
                },
            },
            "spec": {
                "holderIdentity": "ci@runner-3/77",
                "leaseDurationSeconds": 120,
                "acquireTime": now,
                "renewTime": now,
            },
        }
    )
    result = inv(project, cluster, "inv deploy.recover --env=staging --yes --force")
    assert result.returncode == 1
    assert error_line(result).startswith(
        "recover: the deploy lock of flowlet in flowlet-staging is held by ci@runner-3 pid 77 "
        "(inv deploy --env=staging) since "
    )
    assert not any("rollback" in r for r in cluster.requests)


def test_diff_exit_code(project: Path, cluster: FakeKube) -> None:
    assert inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="x").returncode == 0
    same = inv(project, cluster, "inv deploy.diff --env=staging --exit-code")
    assert (same.returncode, same.stderr) == (0, "")
    assert same.stdout.endswith(
        "    helm-diff plugin not installed: comparing helm template with helm get manifest\n"
        "    no changes\n"
    )
    changed = inv(project, cluster, "inv deploy.diff --env=staging --exit-code --image-tag=abc")
    assert (changed.returncode, changed.stderr) == (2, "")
    assert (
        '-          image: "ghcr.io/flowlet/backend:0.1.0"\n'
        '+          image: "ghcr.io/flowlet/backend:abc"\n' in changed.stdout
    )
    plain = inv(project, cluster, "inv deploy.diff --env=staging --image-tag=abc")
    assert plain.returncode == 0
    # a Secret it may not read: an error (1), never "changes pending" (2)
    cluster.fail(f"GET /api/v1/namespaces/{NS}/secrets/flowlet-app", 403, times=1)
    forbidden = inv(project, cluster, "inv deploy.diff --env=staging --exit-code")
    assert forbidden.returncode == 1, forbidden.stdout
    assert error_line(forbidden).startswith(
        "kubectl get secret flowlet-app failed (exit 1): Error from server (Forbidden): "
    )
    cluster.fail("GET /api/v1/namespaces/flowlet-staging/secrets", 500)
    broken = inv(project, cluster, "inv deploy.diff --env=staging --exit-code")
    assert broken.returncode == 1 and error_line(broken).startswith(
        "helm get manifest failed (exit 1): Error: "
    )


def test_children_never_get_the_password(
    project: Path, cluster: FakeKube, recording_tools: Any
) -> None:
    """helm and kubectl children do not get FLOWLET_DB_PASSWORD (the runner strips configured
    secret variables): the recording wrappers log each child's environment, then run the real
    binary."""
    password = "never-in-a-child-environment"
    recorder = recording_tools(password)
    env = inv_env(cluster.kubeconfig, FLOWLET_DB_PASSWORD=password)
    env["PATH"] = recorder.path(env["PATH"])
    result = run_inv("inv setup --env staging", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    children = recorder.calls()
    assert len(children) >= 10
    assert {tuple(c["argv"][:1]) for c in children} >= {("--context",), ("--kube-context",)}
    assert [c["argv"] for c in children if "FLOWLET_DB_PASSWORD" in c["env"]] == []
    assert [c["argv"] for c in children if c["leaked"]] == []  # in no variable's value
    assert not any(password in json.dumps(c) for c in children)
    assert (
        base64.b64decode(
            template(cluster, "Secret", "flowlet-app")["data"]["FLOWLET_DB_PASSWORD"]
        ).decode()
        == password
    )


def test_the_lock_is_renewed_while_the_operation_runs(project: Path, cluster: FakeKube) -> None:
    assert inv(project, cluster, "inv setup --env staging", FLOWLET_DB_PASSWORD="x").returncode == 0
    cluster.hold_rollout(NS, "flowlet-backend")
    env = {**inv_env(cluster.kubeconfig), "INVOKE_DEPLOY_LOCK_STALE_AFTER": "10s"}
    before = backend_writes(cluster)
    child = start_inv(
        ["deploy", "--env=staging", "--no-diff", "--image-tag=slow"], cwd=project, env=env
    )
    started_upgrade(cluster, before)
    first = cluster.get("Lease", NS, LEASE)
    assert first is not None and first["spec"]["leaseDurationSeconds"] == 10
    time.sleep(8)  # renewed every 10/3 s
    second = cluster.get("Lease", NS, LEASE)
    assert second is not None
    assert second["spec"]["renewTime"] > first["spec"]["renewTime"]
    assert second["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert second["spec"]["holderIdentity"] == first["spec"]["holderIdentity"]
    cluster.hold_rollout(NS, "flowlet-backend", held=False)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert cluster.get("Lease", NS, LEASE) is None
