"""The chart with the real helm binaries (Helm 4 and Helm 3): lint, render, schema, security.

Every environment is rendered once per Helm major (module fixture) exactly as ``inv deploy``
renders it, and every object is validated against Kubernetes 1.33 by kubernetes-validate
(strict; it ships its schemas, so this runs offline).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT_NS, run_task
from fakekube import FakeKube
from fixtures_deploy import CHART, ENVIRONMENTS, MANIFESTS, REPO, helm_binary, run_helm

from tasks.deploy.commands import template_argv
from tasks.deploy.manifests import load_manifests
from tasks.deploy.plan import ChartInputs, Target
from tasks.deploy.settings import SCHEMA as DEPLOY_SCHEMA
from tasks.deploy.validate import load_objects, validate_objects

pytestmark = pytest.mark.slow

MAJORS = [4, 3]
ENVS = list(ENVIRONMENTS)
TIMEOUT = 600
CRDS = DEPLOY_SCHEMA.defaults()["crd_allowlist"]


def template_args(env: str, *extra: str) -> list[str]:
    namespace, _, values = ENVIRONMENTS[env]
    argv = template_argv(
        Target(env, namespace, "", "flowlet"),
        ChartInputs(CHART, CHART / values, "flowlet-app", TIMEOUT),
    )
    dash = argv.index("--")  # options before it, the release and chart after
    return [*argv[1:dash], *extra, *argv[dash:]]  # without "helm": run_helm picks the binary


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[int, str], list[dict[str, Any]]]:
    out = {}
    for major in MAJORS:
        for env in ENVS:
            out[major, env] = load_objects(run_helm(major, *template_args(env)).stdout)
    return out


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("major", MAJORS, ids=["helm4", "helm3"])
def test_helm_lint_strict(major: int, env: str) -> None:
    namespace, _, values = ENVIRONMENTS[env]
    result = run_helm(
        major,
        "lint",
        "--strict",
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        str(CHART / values),
    )
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("major", MAJORS, ids=["helm4", "helm3"])
def test_every_object_is_valid_kubernetes_1_33(
    rendered: dict[tuple[int, str], list[dict[str, Any]]], major: int, env: str
) -> None:
    objects = rendered[major, env]
    findings = validate_objects(objects, source=env, kubernetes_version="1.33", crd_allowlist=CRDS)
    assert [str(f) for f in findings if not f.skipped] == []
    assert {f.kind for f in findings} <= set(CRDS)
    kinds = {o["kind"] for o in objects}
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "NetworkPolicy",
        "ServiceAccount",
        "ConfigMap",
    } <= kinds
    assert "Secret" not in kinds, "secrets are referenced (existingSecret), never templated"


def test_helm3_and_helm4_render_the_same(
    rendered: dict[tuple[int, str], list[dict[str, Any]]],
) -> None:
    for env in ENVS:
        assert rendered[3, env] == rendered[4, env]


@pytest.mark.parametrize("env", ENVS)
def test_security_properties(
    rendered: dict[tuple[int, str], list[dict[str, Any]]], env: str
) -> None:
    deployments = by_kind(rendered[4, env], "Deployment")
    assert [d["metadata"]["name"] for d in deployments] == ["flowlet-backend", "flowlet-frontend"]
    for deployment in deployments:
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert spec["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": "flowlet",
            "app.kubernetes.io/instance": "flowlet",
            "app.kubernetes.io/component": component,
        }
        assert spec["progressDeadlineSeconds"] < TIMEOUT
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}
            assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
            assert "livenessProbe" in container
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # nosec
            assert container["image"] == f"ghcr.io/flowlet/{component}:0.1.0"
            assert container["ports"] == [
                {
                    "name": "http",
                    "containerPort": {"backend": 8000, "frontend": 3000}[component],
                    "protocol": "TCP",
                }
            ]
        labels = deployment["metadata"]["labels"]
        for key in ("name", "instance", "version", "component", "part-of", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels
    accounts = by_kind(rendered[4, env], "ServiceAccount")
    hooks = [a for a in accounts if "helm.sh/hook" in a["metadata"].get("annotations", {})]
    assert [a["metadata"]["name"] for a in hooks] == ["flowlet-migrate"]  # the migration Job's
    (account,) = [a for a in accounts if a not in hooks]
    assert all(a["automountServiceAccountToken"] is False for a in accounts)


def test_production_scales_and_guards_disruption(
    rendered: dict[tuple[int, str], list[dict[str, Any]]],
) -> None:
    production, staging = rendered[4, "production"], rendered[4, "staging"]
    assert all("replicas" not in d["spec"] for d in by_kind(production, "Deployment"))
    assert [h["spec"]["minReplicas"] for h in by_kind(production, "HorizontalPodAutoscaler")] == [
        3,
        3,
    ]
    assert [p["spec"]["minAvailable"] for p in by_kind(production, "PodDisruptionBudget")] == [2, 2]
    assert [d["spec"]["replicas"] for d in by_kind(staging, "Deployment")] == [2, 2]
    assert by_kind(staging, "HorizontalPodAutoscaler") == []
    assert by_kind(rendered[4, "development"], "PodDisruptionBudget") == []
    backend = by_kind(production, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert backend["resources"]["requests"]["memory"] == backend["resources"]["limits"]["memory"]


def test_network_policies(rendered: dict[tuple[int, str], list[dict[str, Any]]]) -> None:
    policies = {
        p["metadata"]["name"]: p["spec"] for p in by_kind(rendered[4, "staging"], "NetworkPolicy")
    }
    backend, frontend = policies["flowlet-backend"], policies["flowlet-frontend"]
    assert backend["policyTypes"] == frontend["policyTypes"] == ["Ingress", "Egress"]
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert {"from": [monitoring], "ports": [{"port": "http", "protocol": "TCP"}]} in backend[
        "ingress"
    ]
    frontend_pods = backend["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert frontend_pods["app.kubernetes.io/component"] == "frontend"
    ingress_ns = frontend["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert ingress_ns == {"kubernetes.io/metadata.name": "ingress-nginx"}
    for spec in (backend, frontend):
        dns_ports = [rule["ports"] for rule in spec["egress"] if rule["ports"][0]["port"] == 53]
        assert dns_ports == [[{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]]
    assert {"ipBlock": {"cidr": "10.20.0.0/16"}} in backend["egress"][-1]["to"]
    services = {
        s["metadata"]["name"]: s["spec"]["ports"]
        for s in by_kind(rendered[4, "staging"], "Service")
    }
    assert services["flowlet-backend"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]


@pytest.mark.parametrize("env", ENVS)
def test_helm4_install_dry_run_client(env: str) -> None:
    namespace, _, values = ENVIRONMENTS[env]
    result = run_helm(
        4,
        "install",
        "flowlet",
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        str(CHART / values),
        "--dry-run=client",
        "--output",
        "json",
    )
    release = json.loads(result.stdout)
    assert (release["info"]["status"], release["namespace"]) == ("pending-install", namespace)
    assert "password" not in json.dumps(release["config"]).lower()


@pytest.mark.parametrize("env", ENVS)
def test_helm3_install_dry_run_client(
    env: str, fake_apiserver: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Helm 3 needs a reachable API server even for --dry-run=client (helm/helm#13144): give
    it a read-only fake one. OpenAPI validation is off (the fake serves no OpenAPI documents;
    kubernetes-validate covers schemas above)."""
    requests = fake_apiserver.requests
    monkeypatch.setenv("KUBECONFIG", str(fake_apiserver.kubeconfig))
    namespace, _, values = ENVIRONMENTS[env]
    result = run_helm(
        3,
        "--kube-context",
        "fake",
        "install",
        "flowlet",
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        str(CHART / values),
        "--dry-run=client",
        "--disable-openapi-validation",
        "--output",
        "json",
    )
    release = json.loads(result.stdout)
    assert (release["info"]["status"], release["namespace"]) == ("pending-install", namespace)
    assert "password" not in json.dumps(release["config"]).lower()
    assert all(r.startswith("GET ") for r in requests), "a client dry run must not write"
    assert f"GET /apis/apps/v1/namespaces/{namespace}/deployments/flowlet-backend" in requests


@pytest.mark.parametrize(
    "major,override,field",
    [
        (4, "fronted.replicas=2", "additional properties 'fronted' not allowed"),
        (4, "backend.replicsa=2", "at '/backend': additional properties 'replicsa' not allowed"),
        (4, "backend.replicas=0", "at '/backend/replicas': minimum: got 0, want 1"),
        (4, "image.tag=-latest", "at '/image/tag'"),
        (4, "backend.resources.limits.cpu=lots", "at '/backend/resources/limits/cpu'"),
        (4, "config.logLevel=verbose", "at '/config/logLevel'"),
        (4, "ingress.host=Not_A_Host", "at '/ingress/host'"),
        (4, "dbPassword=hunter2", "additional properties 'dbPassword' not allowed"),
        (4, "monitoring.prometheusRule.errorRateThreshold=2", "errorRateThreshold"),
        (4, "networkPolicy.database.port=99999", "at '/networkPolicy/database/port'"),
        (3, "backend.replicsa=2", "backend: Additional property replicsa is not allowed"),
        (3, "backend.replicas=0", "backend.replicas: Must be greater than or equal to 1"),
    ],
    ids=[
        "typo-top-level",
        "typo-nested",
        "zero-replicas",
        "bad-tag",
        "bad-cpu",
        "bad-log-level",
        "bad-host",
        "secret-value-key",
        "threshold",
        "port-range",
        "helm3-typo",
        "helm3-replicas",
    ],
)
def test_schema_rejects_bad_values(major: int, override: str, field: str) -> None:
    result = run_helm(major, *template_args("staging", "--set", override), check=False)
    assert result.returncode == 1
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


def test_image_tag_and_digest_overrides() -> None:
    digest = "sha256:" + "a" * 64
    text = run_helm(
        4,
        *template_args(
            "staging",
            "--set-string",
            "image.tag=3f2a1bc",
            "--set-string",
            f"frontend.image.digest={digest}",
        ),
    ).stdout
    images = [
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in by_kind(load_objects(text), "Deployment")
    ]
    assert images == ["ghcr.io/flowlet/backend:3f2a1bc", f"ghcr.io/flowlet/frontend@{digest}"]


def test_httproute_is_an_allowlisted_crd() -> None:
    objects = load_objects(
        run_helm(4, *template_args("staging", "--set", "httpRoute.enabled=true")).stdout
    )
    (route,) = by_kind(objects, "HTTPRoute")
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "flowlet-frontend", "port": 80}]
    findings = validate_objects([route], source="x", kubernetes_version="1.33", crd_allowlist=CRDS)
    assert [f.skipped for f in findings] == [True]
    findings = validate_objects([route], source="x", kubernetes_version="1.33", crd_allowlist=[])
    assert [f.skipped for f in findings] == [False]


def test_monitoring_block_for_the_monitoring_templates() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["monitoring"] == {
        "release": "kube-prometheus-stack",
        "serviceMonitor": {"enabled": False, "interval": "30s", "scrapeTimeout": "10s"},
        "prometheusRule": {"enabled": False, "errorRateThreshold": 0.05, "latencyP99Seconds": 1.0},
        "dashboard": {"enabled": False},
    }
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["monitoring"]["additionalProperties"] is False
    assert "$ref" not in json.dumps(schema).replace('"$ref": "#/', "")  # only local refs


@pytest.mark.parametrize("env", ENVS)
def test_namespace_manifests(env: str) -> None:
    namespace = ENVIRONMENTS[env][0]
    objects = load_objects(load_manifests(MANIFESTS, env, namespace))
    assert [o["kind"] for o in objects] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
    ]
    labels = objects[0]["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert all(o["metadata"].get("namespace", namespace) == namespace for o in objects)
    assert objects[3]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert validate_objects(objects, source=env, kubernetes_version="1.33", crd_allowlist=[]) == []


def test_kubernetes_validate_ships_1_33_schemas() -> None:
    import kubernetes_validate

    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert (schemas / "v1.33.0-local-strict" / "deployment-apps-v1.json").is_file()


def test_inv_deploy_lint_and_render(
    tmp_path: Path, closing_pipes: None, capsys: pytest.CaptureFixture[str]
) -> None:
    helm_binary(4)
    config = tmp_path / "invoke.yaml"
    config.write_text((REPO / "invoke.yaml").read_text() + "run:\n  in_stream: false\n")
    ns = ROOT_NS  # the root collection, as tasks.py composes it
    assert run_task(ns, ["deploy.lint"], config_file=config, cwd=REPO) == 0
    out = capsys.readouterr().out
    for env in ENVS:
        assert f"{env}: helm lint --strict ok;" in out
    assert re.search(
        r"^production: helm lint --strict ok; \d+ chart objects \+ 4 manifests", out, re.MULTILINE
    )
    target = tmp_path / "rendered"
    assert (
        run_task(
            ns,
            ["deploy.render", "--output", str(target), "--image-tag", "abc"],
            config_file=config,
            cwd=REPO,
        )
        == 0
    )
    assert sorted(p.name for p in target.iterdir()) == [f"{env}.yaml" for env in sorted(ENVS)]
    assert "ghcr.io/flowlet/backend:abc" in (target / "production.yaml").read_text()


def test_strict_validation_reports_the_field() -> None:
    """Strict mode rejects an unknown field (a typo'd key) and a wrong type, naming the path."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replicas": "two",
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "i",
                            "imagePullPolicy": "Always",
                            "readinessProbes": {},
                        }
                    ]
                },
            },
        },
    }
    findings = validate_objects(
        [deployment, deployment], source="t", kubernetes_version="1.33", crd_allowlist=CRDS
    )
    assert len(findings) == 2 and not any(f.skipped for f in findings)
    assert str(findings[0]).startswith("t: Deployment/x: ")
    unknown_kind = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    (finding,) = validate_objects(
        [unknown_kind], source="t", kubernetes_version="1.33", crd_allowlist=CRDS
    )
    assert "Couldn't find schema for kind Widget" in finding.message and not finding.skipped


def render(
    *extra: str, env: str = "staging", namespace: str = "", release: str = "flowlet"
) -> list[dict[str, Any]]:
    ns, _, values = ENVIRONMENTS[env]
    argv = [
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace or ns,
        "--values",
        str(CHART / values),
        "--set-string",
        "existingSecret=flowlet-app",
        *extra,
    ]
    return load_objects(run_helm(4, *argv).stdout)


def pod_template(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    (deployment,) = [
        o for o in by_kind(objects, "Deployment") if o["metadata"]["name"].endswith(component)
    ]
    return deployment["spec"]["template"]  # type: ignore[no-any-return]


def test_the_secret_digest_rolls_the_backend_only_when_it_changes() -> None:
    """The pod template changes when one Secret value changes, not otherwise (the digest of
    the data, as inv deploy computes it from kubectl's rendering)."""
    from tasks.deploy.secrets import data_digest

    one = data_digest({"FLOWLET_DB_PASSWORD": "b25l", "API_KEY": "a2V5"})
    same = data_digest({"API_KEY": "a2V5", "FLOWLET_DB_PASSWORD": "b25l"})
    two = data_digest({"FLOWLET_DB_PASSWORD": "dHdv", "API_KEY": "a2V5"})
    first, again, changed = (
        render("--set-string", f"secretChecksum={d}") for d in (one, same, two)
    )
    assert pod_template(first, "backend") == pod_template(again, "backend")
    assert pod_template(first, "backend")["metadata"]["annotations"]["checksum/secret"] == one
    assert pod_template(changed, "backend")["metadata"]["annotations"]["checksum/secret"] == two
    assert pod_template(first, "frontend") == pod_template(
        changed, "frontend"
    ), "the frontend does not use it"
    assert "checksum/secret" not in pod_template(render(), "backend")["metadata"]["annotations"]
    bad = run_helm(
        4, "template", "flowlet", str(CHART), "--set-string", "secretChecksum=nope", check=False
    )
    assert bad.returncode == 1 and "secretChecksum" in bad.stderr


def test_pull_policy_follows_the_digest() -> None:
    digest = "sha256:" + "c" * 64
    objects = render("--set-string", f"backend.image.digest={digest}")
    backend = pod_template(objects, "backend")["spec"]["containers"][0]
    frontend = pod_template(objects, "frontend")["spec"]["containers"][0]
    assert (backend["image"], backend["imagePullPolicy"]) == (
        f"ghcr.io/flowlet/backend@{digest}",
        "IfNotPresent",
    )
    assert (frontend["image"], frontend["imagePullPolicy"]) == (
        "ghcr.io/flowlet/frontend:0.1.0",
        "Always",
    )
    pinned = render("--set-string", "image.pullPolicy=Never")
    assert pod_template(pinned, "frontend")["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_the_secret_as_files() -> None:
    objects = render("--set-string", "secretAs=files")
    backend = pod_template(objects, "backend")["spec"]
    container = backend["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "flowlet-backend"}}]
    assert {
        "name": "app-secret",
        "mountPath": "/var/run/secrets/flowlet",
        "readOnly": True,
    } in container["volumeMounts"]
    assert {
        "name": "app-secret",
        "secret": {"secretName": "flowlet-app", "defaultMode": 0o400},
    } in backend["volumes"]
    findings = validate_objects(
        objects, source="files", kubernetes_version="1.33", crd_allowlist=CRDS
    )
    assert [str(f) for f in findings if not f.skipped] == []
    env = pod_template(render(), "backend")["spec"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": "flowlet-app"}} in env


@pytest.mark.parametrize("name", ["null", "123", "yes", "0x1f", "1e3"])
def test_yaml_ambiguous_namespaces_and_release_names_stay_strings(name: str) -> None:
    """Valid namespace and release names that YAML would read as null, numbers or booleans are
    rendered as strings wherever they appear (names, namespaces, labels, selectors)."""
    objects = render(env="production", namespace=name, release=name)
    assert len(objects) > 10
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == name and isinstance(meta["name"], str)
        assert all(isinstance(v, str) for v in (meta.get("labels") or {}).values()), meta
        assert meta["labels"]["app.kubernetes.io/instance"] == name
    accounts = {a["metadata"]["name"]: a for a in by_kind(objects, "ServiceAccount")}
    assert set(accounts) == {name, f"{name}-migrate"}  # the release's, the migration hook's
    (job,) = by_kind(objects, "Job")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == f"{name}-migrate"
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [name]
