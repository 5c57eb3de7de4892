"""Pure parts of deploy: parsers of helm/kubectl output, validation, planning decisions."""

from __future__ import annotations

import json
import subprocess

import pytest
from fixtures_deploy import SAMPLES, helm_binary, history_json
from tasks.core.errors import OpsError

from tasks.deploy import helmout
from tasks.deploy.plan import (
    describe_change,
    manifest_params,
    parse_timeout,
    progress_deadline,
    render_manifests,
    validate_image_tag,
)
from tasks.deploy.safety import GitState, check_guards, parse_porcelain
from tasks.core.environments import Environment
from conftest import fails_with


@pytest.mark.parametrize("major", [4, 3], ids=["helm4", "helm3"])
def test_parse_history_sample(major: int) -> None:
    history = helmout.parse_history((SAMPLES / f"helm{major}-history.json").read_text())
    assert [(r.revision, r.status) for r in history] == [
        (1, "superseded"),
        (2, "failed"),
        (3, "deployed"),
        (4, "pending-upgrade"),
    ]
    assert history[2].description == "Rollback to 1"
    assert (history[2].chart, history[2].app_version) == ("flowlet-0.1.0", "0.1.0")
    assert helmout.chart_version(history[2].chart) == "0.1.0"
    assert helmout.stuck_revision(history) == history[3]
    assert helmout.plan_recovery(history).revision == 3


def test_parse_history_sorts_and_handles_empty() -> None:
    shuffled = json.dumps(list(reversed(json.loads(history_json("superseded", "deployed")))))
    assert [r.revision for r in helmout.parse_history(shuffled)] == [1, 2]
    assert helmout.parse_history("") == []
    with fails_with(match="helm history: cannot parse JSON output"):
        helmout.parse_history("Error: not json")


@pytest.mark.parametrize(
    "sample,expected",
    [
        (
            "helm4-install-dry-run.json",
            ("flowlet", "flowlet-staging", 1, "pending-install", "flowlet", "0.1.0", "0.1.0"),
        ),
        ("helm4-status.json", ("flowlet", "flowlet-prod", 3, "deployed", "", "", "")),
        ("helm3-status.json", ("flowlet", "flowlet-prod", 3, "deployed", "", "", "")),
    ],
    ids=["helm4-install-dry-run", "helm4-status", "helm3-status"],
)
def test_parse_status(sample: str, expected: tuple[object, ...]) -> None:
    s = helmout.parse_status((SAMPLES / sample).read_text())
    assert (s.name, s.namespace, s.revision, s.status, s.chart, s.chart_version, s.app_version) == (
        expected
    )


@pytest.mark.parametrize(
    "chart,version",
    [("flowlet-0.1.0", "0.1.0"), ("my-app-1.2.3-rc.1", "1.2.3-rc.1"), ("weird", "")],
    ids=["simple", "dashes-and-prerelease", "no-version"],
)
def test_chart_version(chart: str, version: str) -> None:
    assert helmout.chart_version(chart) == version


@pytest.mark.parametrize(
    "statuses,action,revision",
    [
        (("superseded", "failed", "deployed", "pending-upgrade"), "rollback", 3),
        (("deployed", "pending-rollback"), "rollback", 1),
        (("superseded", "deployed", "failed", "pending-upgrade"), "rollback", 2),
        (("pending-install",), "uninstall", 0),
        (("superseded", "deployed"), "none", 0),
        ((), "none", 0),
    ],
    ids=[
        "pending-upgrade",
        "pending-rollback",
        "skips-failed",
        "never-deployed",
        "healthy",
        "no-release",
    ],
)
def test_plan_recovery(statuses: tuple[str, ...], action: str, revision: int) -> None:
    plan = helmout.plan_recovery(helmout.parse_history(history_json(*statuses) if statuses else ""))
    assert (plan.action, plan.revision) == (action, revision)


def test_plan_recovery_without_live_revision() -> None:
    history = helmout.parse_history(history_json("failed", "pending-upgrade"))
    with fails_with(match="stuck in pending-upgrade .revision 2. and has no deployed"):
        helmout.plan_recovery(history)


@pytest.mark.parametrize("major", [4, 3], ids=["helm4", "helm3"])
def test_parse_real_helm_plugin_list(major: int) -> None:
    binary = helm_binary(major)
    out = subprocess.run(
        [str(binary), "plugin", "list"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert helmout.parse_plugins(out) == []
    assert helmout.parse_plugins(out + "diff\t3.13.1\tPreview helm upgrade changes\n") == ["diff"]


def test_parse_real_kubectl_client_version() -> None:
    binary = helm_binary(4).parent / "kubectl"
    out = subprocess.run(
        [str(binary), "version", "--client", "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert helmout.parse_client_version(out).startswith("v1.33.")


def test_failing_pods() -> None:
    pods = {
        "items": [
            {"metadata": {"name": "ok"}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "crashing"}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False"}]}},
            {"metadata": {"name": "pending"}, "status": {"phase": "Pending"}},
        ]
    }  # fmt: skip
    assert helmout.failing_pods(json.dumps(pods)) == ["crashing", "pending"]
    assert helmout.failing_pods("") == []


@pytest.mark.parametrize(
    "stderr,missing",
    [("Error: release: not found\n", True), ("Error: Kubernetes cluster unreachable", False)],
    ids=["not-found", "unreachable"],
)
def test_release_missing(stderr: str, missing: bool) -> None:
    assert helmout.release_missing(stderr) is missing


@pytest.mark.parametrize(
    "value,seconds",
    [("10m", 600), ("300s", 300), ("1h30m", 5400), ("2m30s", 150)],
    ids=["minutes", "seconds", "hours-minutes", "minutes-seconds"],
)
def test_parse_timeout(value: str, seconds: int) -> None:
    assert parse_timeout(value, source="--timeout") == seconds


@pytest.mark.parametrize(
    "value,message",
    [
        ("", "--timeout: '' is not a duration"),
        ("10", "--timeout: '10' is not a duration"),
        ("5 m", "--timeout: '5 m' is not a duration"),
        ("59s", "--timeout: '59s' is too short; valid: at least 60s"),
    ],
    ids=["empty", "no-unit", "space", "too-short"],
)
def test_parse_timeout_rejects(value: str, message: str) -> None:
    with fails_with() as err:
        parse_timeout(value, source="--timeout")
    assert str(err.value.message).startswith(message)


def test_progress_deadline_is_below_the_timeout() -> None:
    assert [progress_deadline(s) for s in (60, 600, 7200)] == [48, 480, 3600]


@pytest.mark.parametrize("tag", ["0.1.0", "3f2a1bc", "v1.2.3-rc.1", "main_2026"])
def test_valid_image_tags(tag: str) -> None:
    assert validate_image_tag(tag, source="--image-tag") == tag


@pytest.mark.parametrize("tag", ["-x", ".x", "a:b", "a/b", "x" * 129, "sha256@abc"])
def test_invalid_image_tags(tag: str) -> None:
    with fails_with(match="--image-tag: .* is not a valid image tag"):
        validate_image_tag(tag, source="--image-tag")


def test_render_manifests() -> None:
    templates = {"b.yaml": "kind: B\nname: ${namespace}\n", "a.yaml": "---\nkind: A\nq: ${q} $5\n"}
    values = manifest_params({"staging": {"q": 3}}, "staging", "ns-1", source="params.yaml")
    rendered = render_manifests(templates, values)
    assert rendered.text == (
        "---\n# Source: a.yaml\nkind: A\nq: 3 $5\n---\n# Source: b.yaml\nkind: B\nname: ns-1\n"
    )
    with fails_with(match=r"b.yaml: unknown placeholder \$\{quota\}"):
        render_manifests({"b.yaml": "x: ${quota}"}, values)
    with pytest.raises(
        OpsError, match="params.yaml: no parameters for environment 'qa'; found: staging"
    ):
        manifest_params({"staging": {}}, "qa", "ns", source="params.yaml")


def test_describe_change() -> None:
    assert describe_change(environment="production", git_sha="abc", user="u", when="T") == (
        "flowlet-ops deploy env=production git=abc user=u at=T"
    )


def test_parse_porcelain() -> None:
    assert parse_porcelain(" M tasks.py\n?? new file.txt\n") == ("tasks.py", "new file.txt")


def env(name: str, confirm: bool) -> Environment:
    return Environment(name, f"flowlet-{name}", f"ctx-{name}", "flowlet", None, confirm)


@pytest.mark.parametrize(
    "environment,state,flags,message",
    [
        (env("production", True), GitState("a", True, ("x",)), {}, "uncommitted change"),
        (env("production", True), GitState("unknown", False), {}, "not a git checkout"),
        (env("production", True), GitState("a", True), {"yes": False}, "no terminal"),
        (env("staging", True), GitState("a", True), {"yes": False}, "no terminal"),
    ],
    ids=["dirty", "no-git", "no-yes", "confirm-staging"],
)
def test_guards_refuse(
    environment: Environment, state: GitState, flags: dict[str, bool], message: str
) -> None:
    options = {"allow_dirty": False, "yes": True, "interactive": False, **flags}
    with fails_with(match=message):
        check_guards(environment, state, **options)


@pytest.mark.parametrize(
    "environment,state,flags",
    [
        (env("production", True), GitState("a", True, ("x",)), {"allow_dirty": True}),
        (env("production", True), GitState("a", True), {"interactive": True, "yes": False}),
        (env("staging", False), GitState("a", True, ("x",)), {"yes": False}),
    ],
    ids=["allow-dirty", "terminal", "staging-dirty-ok"],
)
def test_guards_pass(environment: Environment, state: GitState, flags: dict[str, bool]) -> None:
    options = {"allow_dirty": False, "yes": True, "interactive": False, **flags}
    check_guards(environment, state, **options)


def test_lint_without_kubernetes_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from tasks.deploy.validate import validate_objects

    monkeypatch.setitem(sys.modules, "kubernetes_validate", None)  # import fails
    with fails_with(match="deploy.lint needs the kubernetes-validate package"):
        validate_objects([], source="x", kubernetes_version="1.33", crd_allowlist=[])
