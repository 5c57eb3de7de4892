"""The deploy section of README.md (and the ``inv setup --env <cluster>`` row), run as written:
each command line from the ``inv`` command line (``bash -c``), with the real helm and kubectl,
in a scratch git checkout whose kube contexts all point at the in-memory API server."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import readme, run_inv
from fakekube import FakeKube, read_helm_release
from fixtures_deploy import git, helm_env, inv_env, release_object, store_release

pytestmark = pytest.mark.slow

PASSWORD = {"FLOWLET_DB_PASSWORD": "readme-password"}


def inv(
    project: Path, cluster: FakeKube, command: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_inv(command, cwd=project, env=inv_env(cluster.kubeconfig, **env))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" or "level=WARN" not in result.stderr
    return result.stdout


def steps(out: str) -> list[str]:
    return re.findall(r"^==> \d+\. (.*)$", out, flags=re.MULTILINE)


def image(cluster: FakeKube, namespace: str) -> str:
    deployment = cluster.get("Deployment", namespace, "flowlet-backend")
    assert deployment is not None
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


@readme("inv setup --env staging --namespace team-a")
def test_setup_row(project: Path, cluster: FakeKube) -> None:
    out = ok(inv(project, cluster, "inv setup --env staging --namespace team-a", **PASSWORD))
    assert out.startswith(
        "setup: staging: namespace team-a, kube context flowlet-staging, release flowlet\n"
    )
    assert steps(out)[-5:] == [
        "secret flowlet-app: server-side apply",
        "helm upgrade --install",
        "rollout verification",
        "audit record",
        "deploy lock: release",
    ]
    assert cluster.get("Secret", "team-a", "flowlet-app") is not None
    assert image(cluster, "team-a") == "ghcr.io/flowlet/backend:0.1.0"
    assert cluster.names("Lease", "team-a") == []


@readme(
    "inv deploy --env=staging --image-tag=$(git rev-parse --short HEAD)",
    "inv deploy --env=staging",
    "inv deploy.diff --env=staging --exit-code",
    "inv deploy.history --env=staging --max=10",
)
def test_staging_commands(project: Path, cluster: FakeKube) -> None:
    ok(inv(project, cluster, "inv setup --env staging", **PASSWORD))
    sha = git(project, "rev-parse", "--short", "HEAD").strip()
    pending = inv(project, cluster, "inv deploy.diff --env=staging --exit-code --image-tag=" + sha)
    assert (
        pending.returncode == 2
        and f'+          image: "ghcr.io/flowlet/backend:{sha}"' in pending.stdout
    )
    out = ok(
        inv(project, cluster, "inv deploy --env=staging --image-tag=$(git rev-parse --short HEAD)")
    )
    assert steps(out)[0] == "prerequisites: kubectl and helm" and "REVISION: 2" in out
    assert image(cluster, "flowlet-staging") == f"ghcr.io/flowlet/backend:{sha}"
    ok(inv(project, cluster, "inv deploy --env=staging"))
    assert image(cluster, "flowlet-staging") == "ghcr.io/flowlet/backend:0.1.0"
    same = inv(project, cluster, "inv deploy.diff --env=staging --exit-code")
    assert (same.returncode, same.stdout.splitlines()[-1]) == (0, "    no changes")
    history = ok(inv(project, cluster, "inv deploy.history --env=staging --max=10"))
    rows = [line.split() for line in history.splitlines() if re.match(r"^\d+ ", line)]
    assert [(row[0], row[2]) for row in rows] == [
        ("1", "superseded"),
        ("2", "superseded"),
        ("3", "deployed"),
    ]


@readme(
    "inv setup --env production --yes",
    "inv deploy.status --env=production",
    "inv deploy.rollback --env=production --revision=41 --yes",
)
def test_production_commands(project: Path, cluster: FakeKube) -> None:
    """A production release with history: revisions 31-40, then setup (41), a deploy (42), and
    the README's rollback to 41."""
    cluster.namespace("flowlet-prod")
    for revision in range(31, 41):
        store_release(
            cluster,
            release_object(
                revision, "deployed" if revision == 40 else "superseded", "flowlet-prod"
            ),
        )
    out = ok(inv(project, cluster, "inv setup --env production --yes", **PASSWORD))
    assert "    confirmed by --yes" in out and "REVISION: 41" in out
    ok(inv(project, cluster, "inv deploy --env=production --yes --no-diff --image-tag=fortytwo"))
    status = ok(inv(project, cluster, "inv deploy.status --env=production"))
    assert re.search(
        r"^flowlet in flowlet-prod: revision 42 deployed; chart flowlet-0.1.0 \(app 0.1.0\); ",
        status,
        flags=re.MULTILINE,
    )
    assert "deployment.apps/flowlet-backend" in status
    out = ok(inv(project, cluster, "inv deploy.rollback --env=production --revision=41 --yes"))
    assert steps(out) == [
        "prerequisites: kubectl and helm",
        "context guard",
        "release history: flowlet in flowlet-prod",
        "confirmation",
        "deploy lock: lease flowlet-ops-lock-flowlet in flowlet-prod",
        "release state: flowlet in flowlet-prod",
        "helm rollback",
        "rollout verification",
        "audit record",
        "deploy lock: release",
    ]
    secret = cluster.get("Secret", "flowlet-prod", "sh.helm.release.v1.flowlet.v43")
    assert (
        secret is not None and read_helm_release(secret)["info"]["description"] == "Rollback to 41"
    )
    assert image(cluster, "flowlet-prod") == "ghcr.io/flowlet/backend:0.1.0"


@readme("inv --dry deploy --env=production")
def test_dry_production_deploy(project: Path, cluster: FakeKube) -> None:
    out = ok(inv(project, cluster, "inv --dry deploy --env=production"))
    assert cluster.requests == [], "--dry talks to no cluster"
    assert len(steps(out)) == 13 and "(dry run: would ask) Deploy flowlet in production" in out
    assert not (project / ".flowlet").exists()


@readme("inv deploy.recover --env=staging --yes")
def test_recover(project: Path, cluster: FakeKube) -> None:
    cluster.namespace("flowlet-staging")
    store_release(cluster, release_object(1, "deployed", "flowlet-staging"))
    store_release(
        cluster, release_object(2, "pending-upgrade", "flowlet-staging", "Preparing upgrade")
    )
    out = ok(inv(project, cluster, "inv deploy.recover --env=staging --yes"))
    assert re.search(
        r"^    revision 2 is pending-upgrade \(\S+ old\): will roll back to revision 1$",
        out,
        re.MULTILINE,
    )
    secret = cluster.get("Secret", "flowlet-staging", "sh.helm.release.v1.flowlet.v3")
    assert secret is not None and read_helm_release(secret)["info"]["status"] == "deployed"


@readme("inv deploy.unlock --env=staging --yes")
def test_unlock(project: Path, cluster: FakeKube) -> None:
    cluster.namespace("flowlet-staging")
    cluster.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "flowlet-ops-lock-flowlet",
                "namespace": "flowlet-staging",
                "annotations": {"flowlet.io/operation": "deploy"},
            },
            "spec": {
                "holderIdentity": "ci@runner-9/4321",
                "leaseDurationSeconds": 120,
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": "2026-01-01T00:01:00.000000Z",
            },
        }
    )
    out = ok(inv(project, cluster, "inv deploy.unlock --env=staging --yes"))
    held, removed = out.splitlines()[-2:]
    assert re.fullmatch(
        r"deploy lock of flowlet in flowlet-staging: held by ci@runner-9 pid 4321 \(deploy\) "
        r"since 2026-01-01T00:00:00Z, renewed \d+h\d\dm ago \(stale\)",
        held,
    )
    assert removed == "deploy lock of flowlet in flowlet-staging removed"
    assert cluster.get("Lease", "flowlet-staging", "flowlet-ops-lock-flowlet") is None


@readme("inv deploy --env=staging --force-conflicts")
def test_force_conflicts(project: Path, cluster: FakeKube) -> None:
    ok(inv(project, cluster, "inv setup --env staging", **PASSWORD))
    subprocess.run(
        [
            "kubectl",
            "--context",
            "flowlet-staging",
            "--namespace",
            "flowlet-staging",
            "scale",
            "deployment/flowlet-frontend",
            "--replicas=5",
        ],
        env={**helm_env(4), "KUBECONFIG": str(cluster.kubeconfig)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    conflict = inv(project, cluster, "inv deploy --env=staging")
    assert (
        conflict.returncode == 1 and "--force-conflicts to take the fields back" in conflict.stderr
    )
    ok(inv(project, cluster, "inv deploy --env=staging --force-conflicts"))
    frontend = cluster.get("Deployment", "flowlet-staging", "flowlet-frontend")
    assert frontend is not None and frontend["spec"]["replicas"] == 2


@readme("inv deploy.render --output=build/rendered", "inv deploy.lint")
def test_render_and_lint(project: Path, cluster: FakeKube) -> None:
    out = ok(inv(project, cluster, "inv deploy.render --output=build/rendered"))
    assert out.splitlines() == [
        f"{env}: wrote {project}/build/rendered/{env}.yaml"
        for env in ("development", "production", "staging")
    ]
    assert 'namespace: "flowlet-prod"' in (project / "build/rendered/production.yaml").read_text()
    started = time.monotonic()
    out = ok(inv(project, cluster, "inv deploy.lint"))
    assert [line.split(";")[0] for line in out.splitlines() if "helm lint" in line] == [
        f"{env}: helm lint --strict ok" for env in ("development", "production", "staging")
    ]
    assert time.monotonic() - started < 120
    assert cluster.requests == [], "render and lint are local"
