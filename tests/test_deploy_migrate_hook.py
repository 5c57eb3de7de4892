"""The schema migration as a Helm hook Job (kubernetes/flowlet-chart/templates/migrate-job.yaml).

Rendered with the real helm (4 and 3), and deployed with ``inv`` against the in-memory API server
(tests/fakekube.py, whose Jobs finish at once, or fail when told): the Job runs before any
Deployment is written, is deleted when it succeeds, and a failing one stops the deploy with the
old pods' template untouched and the Job kept for its logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import readme, run_inv
from fakekube import FakeKube
from fixtures_deploy import CHART, ENVIRONMENTS, inv_env, run_helm

from tasks.deploy.validate import load_objects

pytestmark = pytest.mark.slow

MAJORS = pytest.mark.parametrize("major", [4, 3], ids=["helm4", "helm3"])
NS = "flowlet-staging"
HOOK = "pre-install,pre-upgrade"


def render(major: int, env: str = "staging", *extra: str) -> list[dict[str, Any]]:
    namespace, _, values = ENVIRONMENTS[env]
    argv = ["template", "flowlet", str(CHART), "--namespace", namespace]
    result = run_helm(major, *argv, "--values", str(CHART / values), *extra)
    return load_objects(result.stdout)


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@MAJORS
def test_the_hook_job_is_rendered_with_its_hook_annotations(major: int) -> None:
    objects = render(major, "staging", "--set", "migrations.activeDeadlineSeconds=120")
    job = named(objects, "Job", "flowlet-migrate")
    assert job["metadata"]["annotations"] == {
        "helm.sh/hook": HOOK,
        "helm.sh/hook-weight": "0",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
    }
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 120)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "flowlet-migrate"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    backend = named(objects, "Deployment", "flowlet-backend")
    (app,) = backend["spec"]["template"]["spec"]["containers"]
    assert container["image"] == app["image"]  # the same image as the pods it migrates for
    assert container["command"] == ["python", "-m", "flowlet_backend.migrate"]
    assert container["envFrom"] == [{"secretRef": {"name": "flowlet-app"}}]
    dsn = {e["name"]: e["value"] for e in container["env"]}["FLOWLET_DB_DSN"]
    config = named(objects, "ConfigMap", "flowlet-backend")["data"]["FLOWLET_DB_DSN"]
    assert dsn == config
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    # its ServiceAccount and NetworkPolicy exist before it (at pre-install nothing else does)
    for kind in ("ServiceAccount", "NetworkPolicy"):
        annotations = named(objects, kind, "flowlet-migrate")["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == HOOK
        assert int(annotations["helm.sh/hook-weight"]) < 0
    policy = named(objects, "NetworkPolicy", "flowlet-migrate")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "migrate"
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "migrate"
    assert [p["port"] for rule in policy["egress"] for p in rule["ports"]] == [53, 53, 5432]


@MAJORS
def test_the_hook_can_be_turned_off_and_bad_values_are_refused(major: int) -> None:
    objects = render(major, "staging", "--set", "migrations.enabled=false")
    assert [o for o in objects if "migrate" in o["metadata"]["name"]] == []
    namespace, _, values = ENVIRONMENTS["staging"]
    bad = run_helm(
        major,
        "template",
        "flowlet",
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        str(CHART / values),
        "--set",
        "migrations.backoffLimit=-1",
        check=False,
    )
    assert bad.returncode != 0
    assert "backoffLimit" in bad.stderr


def test_secret_files_are_mounted_in_the_job_too() -> None:
    objects = render(4, "staging", "--set", "secretAs=files")
    pod = named(objects, "Job", "flowlet-migrate")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "envFrom" not in container
    assert {"name": "app-secret", "mountPath": "/var/run/secrets/flowlet", "readOnly": True} in (
        container["volumeMounts"]
    )


def inv(project: Path, cluster: FakeKube, command: str, major: int) -> Any:
    return run_inv(command, cwd=project, env=inv_env(cluster.kubeconfig, major))


def writes_of(requests: list[str]) -> list[str]:
    """The Job and Deployment writes among ``requests``: ``create Job`` (Helm 3 POSTs a hook,
    Helm 4 applies it server-side: PATCH), ``DELETE Job``, ``PATCH Deployment`` ..."""
    found = []
    for request in requests:
        method, path = request.split(" ", 1)
        if method == "GET":
            continue
        for plural, kind in (("/jobs", "Job"), ("/deployments", "Deployment")):
            if plural + "/" in path or path.endswith(plural):
                create = kind == "Job" and method in ("POST", "PATCH")
                found.append(f"{'create' if create else method} {kind}")
    return found


@MAJORS
def test_the_hook_runs_before_the_deployments_and_is_deleted_on_success(
    major: int, project: Path, cluster: FakeKube
) -> None:
    setup = run_inv(
        "inv setup --env staging",
        cwd=project,
        env=inv_env(cluster.kubeconfig, major, FLOWLET_DB_PASSWORD="pw"),
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    order = writes_of(cluster.requests)
    assert "create Job" in order
    assert order.index("create Job") < min(i for i, w in enumerate(order) if "Deployment" in w)
    assert "DELETE Job" in order  # hook-succeeded
    assert cluster.get("Job", NS, "flowlet-migrate") is None
    assert cluster.get("ServiceAccount", NS, "flowlet-migrate") is None
    assert cluster.get("Deployment", NS, "flowlet-backend") is not None
    # an upgrade runs it again, before the Deployments change
    before = len(cluster.requests)
    deploy = inv(project, cluster, "inv deploy --env=staging --no-diff --image-tag=v2", major)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    order = writes_of(cluster.requests[before:])
    assert "create Job" in order
    assert order.index("create Job") < min(i for i, w in enumerate(order) if "Deployment" in w)
    assert cluster.get("Job", NS, "flowlet-migrate") is None


@MAJORS
@readme("inv deploy --env=staging --no-diff --image-tag=v2")
def test_a_failing_migration_stops_the_deploy_and_leaves_the_old_pods(
    major: int, project: Path, cluster: FakeKube
) -> None:
    setup = run_inv(
        "inv setup --env staging",
        cwd=project,
        env=inv_env(cluster.kubeconfig, major, FLOWLET_DB_PASSWORD="pw"),
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    old = cluster.get("Deployment", NS, "flowlet-backend")
    assert old is not None
    cluster.fail_job(NS, "flowlet-migrate")
    deploy = inv(project, cluster, "inv deploy --env=staging --no-diff --image-tag=v2", major)
    assert deploy.returncode != 0
    output = deploy.stdout + deploy.stderr
    assert "pre-upgrade" in output and "flowlet-migrate" in output, output
    assert "Traceback" not in output
    new = cluster.get("Deployment", NS, "flowlet-backend")
    assert new is not None
    assert new["spec"]["template"] == old["spec"]["template"], "no pod changed"
    job = cluster.get("Job", NS, "flowlet-migrate")
    assert job is not None, "a failed hook Job is kept for its logs"
    assert {c["type"] for c in job["status"]["conditions"]} == {"FailureTarget", "Failed"}
