"""Pure parts of deploy: parsers of helm/kubectl output, validation, planning decisions."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

import pytest
from conftest import fails_with
from fixtures_deploy import MANIFESTS, SAMPLES, helm_binary, history_json

from tasks.core.environments import Environment
from tasks.core.settings import flag
from tasks.deploy import diffs, failures, helmout, lease
from tasks.deploy.manifests import manifest_params, render_manifests
from tasks.deploy.plan import Target, describe_change, progress_deadline
from tasks.deploy.safety import GitState, check_guards, parse_porcelain
from tasks.deploy.secrets import data_digest


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


def _revisions(*rows: tuple[str, str]) -> list[helmout.Revision]:
    return [
        helmout.Revision(n, status, "flowlet-0.1.0", "0.1.0", "2026-11-20T10:00:00Z", why)
        for n, (status, why) in enumerate(rows, start=1)
    ]


OK = ("superseded", "Upgrade complete")
FAILED = ("failed", 'Upgrade "flowlet" failed: context deadline exceeded')


@pytest.mark.parametrize(
    "rows, target, skipped",
    [
        ([OK, FAILED, ("deployed", "Rollback to 1")], 1, ["revision 2: a failed upgrade (failed)"]),
        ([OK, OK, ("deployed", "Upgrade complete")], 2, []),
        (
            [OK, OK, ("superseded", "Upgrade complete"), ("deployed", "Rollback to 2")],
            2,
            ["revision 3: undone by a later rollback"],
        ),
        (
            [OK, FAILED, ("superseded", "Rollback to 1"), FAILED, ("deployed", "Rollback to 3")],
            3,
            ["revision 4: a failed upgrade (failed)"],
        ),
        ([("superseded", "Install complete"), ("deployed", "Upgrade complete")], 1, []),
        (
            [FAILED, ("deployed", "Upgrade complete")],
            None,
            ["revision 1: a failed upgrade (failed)"],
        ),
        ([("deployed", "Install complete")], None, []),
    ],
    ids=[
        "failed-upgrade-helm-rolled-back",
        "plain-previous",
        "skips-a-revision-rolled-back-by-hand",
        "rollback-revision-is-a-target",
        "install",
        "nothing-good",
        "single-revision",
    ],
)
def test_last_good_revision(
    rows: list[tuple[str, str]], target: int | None, skipped: list[str]
) -> None:
    found, why = helmout.last_good_revision(_revisions(*rows))
    assert (found.revision if found else None, why) == (target, skipped)


def test_describe_revision_names_image_chart_git_and_age() -> None:
    (r,) = _revisions(("superseded", f"flowlet-ops deploy env=staging git={'a1' * 20} user=x at=y"))
    manifest = (
        'spec:\n  containers:\n    - name: backend\n      image: "ghcr.io/flowlet/backend:1.0"\n'
        "---\n      image: 'ghcr.io/flowlet/frontend:1.0'\n"
    )
    images = helmout.manifest_images(manifest)
    assert images == ["ghcr.io/flowlet/backend:1.0", "ghcr.io/flowlet/frontend:1.0"]
    now = helmout.parse_time("2026-11-20T10:05:03Z")
    assert now is not None
    assert helmout.describe_revision(r, images, now) == (
        "revision 1 (image tag 1.0, chart flowlet-0.1.0, git a1a1a1a1a1a1, 5m03s old)"
    )
    digest = "ghcr.io/flowlet/backend@sha256:" + "0123456789abcdef" * 4
    assert helmout.image_label([digest, "ghcr.io/flowlet/frontend:2.0"]) == (
        "images backend@0123456789ab, frontend:2.0"
    )
    assert helmout.describe_revision(r, None, now).startswith("revision 1 (chart flowlet-0.1.0")


def test_pending_wait_is_what_is_left_of_the_timeout() -> None:
    (stuck,) = _revisions(("pending-upgrade", "Preparing upgrade"))  # updated 10:00:00
    unknown = helmout.Revision(2, "pending-upgrade", "", "", "", "")
    one, twenty = (datetime(2026, 11, 20, 10, minute, tzinfo=timezone.utc) for minute in (1, 20))
    assert helmout.pending_wait(stuck, one, 600) == 540
    assert helmout.pending_wait(stuck, twenty, 600) == 0
    assert helmout.pending_wait(unknown, twenty, 600) == 600


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
            {
                "metadata": {"name": "ok"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            },
            {
                "metadata": {"name": "crashing"},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                },
            },
            {"metadata": {"name": "pending"}, "status": {"phase": "Pending"}},
        ]
    }
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
def test_timeout_flag(value: str, seconds: int) -> None:
    assert flag("deploy.timeout", value, "--timeout") == seconds


@pytest.mark.parametrize(
    "value", ["", "10", "5 m", "59s", "abc"], ids=["empty", "no-unit", "space", "too-short", "word"]
)
def test_timeout_flag_rejects(value: str) -> None:
    with fails_with(
        r"^--timeout: .* is not valid; valid: a duration like 90s, 10m or 1h30m, at least 60s$"
    ):
        flag("deploy.timeout", value, "--timeout")


def test_progress_deadline_is_below_the_timeout() -> None:
    assert [progress_deadline(s) for s in (60, 600, 7200)] == [48, 480, 3600]


@pytest.mark.parametrize("tag", ["0.1.0", "3f2a1bc", "v1.2.3-rc.1", "main_2026"])
def test_valid_image_tags(tag: str) -> None:
    assert flag("deploy.image_tag", tag, "--image-tag") == tag


@pytest.mark.parametrize("tag", ["-x", ".x", "a:b", "a/b", "x" * 129, "sha256@abc"])
def test_invalid_image_tags(tag: str) -> None:
    with fails_with(r"^--image-tag: .* is not valid; valid: an image tag"):
        flag("deploy.image_tag", tag, "--image-tag")


def test_render_manifests_quotes_every_value() -> None:
    templates = {
        "b.yaml": "kind: B\nmetadata:\n  name: ${namespace}  # the namespace\n",
        "a.yaml": "---\nkind: A\nq: ${q}\nlist:\n  - ${environment}\nprice: $5\n",
    }
    values = manifest_params({"staging": {"q": 3}}, "staging", "ns-1", source="params.yaml")
    assert render_manifests(templates, values) == (
        '---\n# Source: a.yaml\nkind: A\nq: "3"\nlist:\n  - "staging"\nprice: $5\n'
        '---\n# Source: b.yaml\nkind: B\nmetadata:\n  name: "ns-1"  # the namespace\n'
    )
    with fails_with(
        r"^b.yaml:1: unknown placeholder \$\{quota\}; known: environment, namespace, q$"
    ):
        render_manifests({"b.yaml": "x: ${quota}"}, values)
    with fails_with(r"^c.yaml:2: \$\{q\} must be a whole YAML value"):
        render_manifests({"c.yaml": "kind: C\nname: team-${q}\n"}, values)
    with fails_with("params.yaml: no parameters for environment 'qa'; found: staging"):
        manifest_params({"staging": {}}, "qa", "ns", source="params.yaml")
    with fails_with("params.yaml: staging.namespace: namespace is set by the deploy"):
        manifest_params({"staging": {"namespace": "x"}}, "staging", "ns", source="params.yaml")
    with fails_with(r"params.yaml: staging.q: \[1\] is not valid; valid: text or a number"):
        manifest_params({"staging": {"q": [1]}}, "staging", "ns", source="params.yaml")


@pytest.mark.parametrize("namespace", ["null", "123", "yes", "0x1f", "1e3", "true", "0"])
def test_yaml_ambiguous_namespaces_stay_strings(namespace: str) -> None:
    """Valid DNS labels that YAML would read as null, numbers or booleans stay text."""
    from tasks.deploy.manifests import load_manifests
    from tasks.deploy.validate import load_objects

    objects = load_objects(load_manifests(MANIFESTS, "staging", namespace))
    assert [o["metadata"].get("namespace", o["metadata"]["name"]) for o in objects] == [
        namespace
    ] * 4
    assert objects[0]["metadata"]["labels"]["flowlet.io/environment"] == "staging"
    assert objects[1]["spec"]["hard"]["pods"] == "60"


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


ONE_CONFLICT = (
    "Error: UPGRADE FAILED: an error occurred while rolling back the release. original upgrade "
    "error: conflict occurred while applying object flowlet-staging/flowlet-backend apps/v1, "
    'Kind=Deployment: Apply failed with 1 conflict: conflict with "kubectl" with subresource '
    '"scale" using apps/v1: .spec.replicas: conflict occurred while applying object '
    "flowlet-staging/flowlet-backend apps/v1, Kind=Deployment: Apply failed with 1 conflict: "
    'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas\n'
)
MANY_CONFLICTS = (
    "Error: UPGRADE FAILED: release flowlet failed, and has been rolled back due to "
    "rollback-on-failure being set: conflict occurred while applying object "
    "flowlet-staging/flowlet-backend apps/v1, Kind=Deployment: Apply failed with 3 conflicts: "
    'conflicts with "kubectl-edit" using apps/v1:\n- .spec.replicas\n'
    '- .spec.template.spec.containers[name="backend"].image\n'
    'conflicts with "ops-bot":\n- .metadata.labels.team\n'
)


def test_parse_conflicts() -> None:
    (one,) = failures.parse_conflicts(ONE_CONFLICT)
    assert (one.kind, one.name, one.owners) == (
        "Deployment",
        "flowlet-staging/flowlet-backend",
        (('"kubectl" with subresource "scale"', (".spec.replicas",)),),
    )
    (many,) = failures.parse_conflicts(MANY_CONFLICTS)
    assert many.owners == (
        (
            '"kubectl-edit"',
            (".spec.replicas", '.spec.template.spec.containers[name="backend"].image'),
        ),
        ('"ops-bot"', (".metadata.labels.team",)),
    )
    assert failures.parse_conflicts("Error: UPGRADE FAILED: boom") == []


@pytest.mark.parametrize(
    "stderr,major,expected",
    [
        (
            ONE_CONFLICT,
            4,
            "helm upgrade failed (exit 1) on server-side apply conflicts and its automatic "
            "rollback "
            "failed too: the release is left failed: Deployment flowlet-staging/flowlet-backend: "
            '.spec.replicas owned by "kubectl" with subresource "scale"; these fields were changed '
            "outside Helm (kubectl scale/edit/apply): put the change into the chart values if it "
            "should stay, then run inv deploy --env=staging --force-conflicts to take the fields "
            "back",
        ),
        (
            MANY_CONFLICTS,
            4,
            "helm upgrade failed (exit 1) on server-side apply conflicts and was rolled back to "
            "the "
            "previous revision: Deployment flowlet-staging/flowlet-backend: .spec.replicas, "
            '.spec.template.spec.containers[name="backend"].image owned by "kubectl-edit"; '
            '.metadata.labels.team owned by "ops-bot"; these fields were changed outside Helm '
            "(kubectl scale/edit/apply): put the change into the chart values if it should stay, "
            "then run inv deploy --env=staging --force-conflicts to take the fields back",
        ),
        (
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
            3,
            "helm upgrade refused (exit 1): Helm says another operation "
            "(install/upgrade/rollback) is "
            "in progress on flowlet in flowlet-staging, one that does not hold the deploy lock "
            "(helm "
            "run by hand, another tool, or one that was killed); nothing was changed or rolled "
            "back; "
            "see inv deploy.history --env=staging; once it has ended: inv deploy.recover "
            "--env=staging",
        ),
        ("", 3, "helm upgrade failed (exit 1); see inv deploy.history --env=staging"),
    ],
    ids=[
        "one-conflict-rollback-failed",
        "many-conflicts-rolled-back",
        "another-operation",
        "silent",
    ],
)
def test_explain_failure(stderr: str, major: int, expected: str) -> None:
    assert (
        failures.explain_failure(
            "upgrade",
            1,
            stderr,
            release="flowlet",
            namespace="flowlet-staging",
            env="staging",
            helm_major=major,
        )
        == expected
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2026-12-01T07:49:42Z", "2026-12-01T07:49:42+00:00"),
        ("2026-12-01T07:49:42.123456789Z", "2026-12-01T07:49:42.123456+00:00"),
        ("2026-11-21T10:00:00.000000+00:00", "2026-11-21T10:00:00+00:00"),
        ("2026-12-01T09:49:42.5+02:00", "2026-12-01T07:49:42.500000+00:00"),
    ],
    ids=["seconds", "nanoseconds", "offset", "other-zone"],
)
def test_parse_time(text: str, expected: str) -> None:
    parsed = helmout.parse_time(text)
    assert parsed is not None and parsed.isoformat() == expected
    assert helmout.parse_time("yesterday") is None


def test_describe_age() -> None:
    assert [helmout.describe_age(s) for s in (0, 59.9, 60, 185, 7300)] == [
        "0s",
        "59s",
        "1m00s",
        "3m05s",
        "2h01m",
    ]


def test_fallback_diff_redacts_secret_values() -> None:
    def secret(**data: str) -> str:
        lines = "".join(f"  {k}: {v}\n" for k, v in data.items())
        return f"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n{lines}"

    deployed = secret(A="b2xk", B="c2FtZQ==") + "---\nkind: ConfigMap\nmetadata: {name: c}\n"
    rendered = (
        secret(A="bmV3", B="c2FtZQ==", C="YWRkZWQ=") + "---\nkind: ConfigMap\nmetadata: {name: c}\n"
    )
    text = diffs.manifest_diff(deployed, rendered)
    for value in ("b2xk", "bmV3", "c2FtZQ==", "YWRkZWQ="):
        assert value not in text
    assert "-  A: (redacted)\n+  A: (redacted, changed)\n" in text
    assert "   B: (redacted)\n" in text and "+  C: (redacted, changed)\n" in text
    shown = diffs.manifest_diff(deployed, rendered, show_secrets=True)
    assert "-  A: b2xk\n+  A: bmV3\n" in shown
    assert diffs.manifest_diff(deployed, deployed) == ""


def test_secret_digest_follows_the_data_only() -> None:
    base = {"A": "eA==", "B": "eQ=="}
    assert data_digest(base) == data_digest(dict(reversed(list(base.items()))))
    assert data_digest(base) != data_digest({**base, "B": "eg=="})
    assert len(data_digest(base)) == 64


def test_lease_round_trip_and_staleness() -> None:
    from datetime import datetime, timedelta, timezone

    target = Target("staging", "flowlet-staging", "ctx", "flowlet")
    holder = lease.Holder("alice@ci-7", 4242, "deploy", SHA_LIKE, "inv deploy --env=staging")
    start = datetime(2026, 12, 1, 7, 50, tzinfo=timezone.utc)
    text = lease.lease_manifest(
        target, holder, duration=120, acquired=start, renewed=start + timedelta(seconds=30)
    )
    manifest = json.loads(text)
    assert manifest["metadata"]["name"] == "flowlet-ops-lock-flowlet"
    assert manifest["spec"] == {
        "holderIdentity": "alice@ci-7/4242",
        "leaseDurationSeconds": 120,
        "acquireTime": "2026-12-01T07:50:00.000000Z",
        "renewTime": "2026-12-01T07:50:30.000000Z",
    }
    state = lease.parse_lease(
        json.dumps({**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "9"}})
    )
    assert (state.user, state.pid, state.operation, state.resource_version) == (
        "alice@ci-7",
        4242,
        "deploy",
        "9",
    )
    assert not state.stale(start + timedelta(seconds=150))
    assert state.stale(start + timedelta(seconds=151))
    assert state.describe(start + timedelta(seconds=42)) == (
        "alice@ci-7 pid 4242 (inv deploy --env=staging, git 0123456789ab) since "
        "2026-12-01T07:50:00Z, "
        "renewed 12s ago"
    )
    assert state.stale_at() == "2026-12-01T07:52:30Z"
    assert not state.gone_here()  # another host


SHA_LIKE = "0123456789abcdef0123456789abcdef01234567"
