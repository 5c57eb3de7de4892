"""monitoring.setup / uninstall / grafana / jaeger: whole plans with the strict mock context."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT_NS, fails_with, run_task
from fixtures_monitoring import (
    CONTEXTS,
    CRDS,
    H3,
    H4,
    HELM_VERSION,
    REPO,
    REPO_LIST,
    VALUES,
    canned,
    search_answer,
    search_command,
    secret_missing,
    upgrades,
)
from invoke import Result

from tasks import monitoring
from tasks.monitoring.settings import COMPONENTS

pytestmark = pytest.mark.usefixtures("helm_on_path")

SEARCHES = [
    search_command("prometheus-community/kube-prometheus-stack"),
    search_command("grafana-community/loki"),
    search_command("grafana/alloy"),
    search_command("jaegertracing/jaeger"),
]


def test_setup_helm4_up_to_date_machine(mon_config: Any, recording_context: Any) -> None:
    """Repositories present and current: no repo add/update; Secret exists; Helm 4 flags."""
    c = recording_context(mon_config(), canned("v4.1.4"))
    monitoring.setup(c, env="staging")
    ctx = "flowlet-staging"
    assert c.commands == [
        CONTEXTS,
        HELM_VERSION,
        REPO_LIST,
        *SEARCHES,
        f"kubectl --context {ctx} apply -f -",
        f"kubectl --context {ctx} --namespace monitoring get secret grafana-admin -o name",
        "helm show crds --version 88.5.3 -- prometheus-community/kube-prometheus-stack",
        f"kubectl --context {ctx} apply --server-side --force-conflicts -f -",
        *upgrades(ctx, H4),
    ]
    stdin = {cmd: data for cmd, _, data in c.calls}
    assert '"kind": "Namespace"' in stdin[f"kubectl --context {ctx} apply -f -"]
    assert stdin[f"kubectl --context {ctx} apply --server-side --force-conflicts -f -"] == CRDS


def test_setup_helm3_fresh_machine(
    mon_config: Any, recording_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No repositories yet: add all four (no update needed); Secret created with the password
    on kubectl's stdin (not on argv, not in any child's environment); Helm 3 flags."""
    monkeypatch.setenv("GRAFANA_ADMIN_PASSWORD", "s3cr3t-Pa55")
    answers = canned(
        "v3.18.0",
        {
            REPO_LIST: "[]",
            re.compile(r"kubectl .* get secret grafana-admin -o name"): secret_missing(),
        },
    )
    c = recording_context(mon_config(), answers)
    monitoring.setup(c, context="kind-flowlet")
    ctx = "kind-flowlet"
    create = (
        f"kubectl --context {ctx} --namespace monitoring create secret generic grafana-admin "
        "--from-literal=admin-user=admin --from-file=admin-password=/dev/stdin"
    )
    assert c.commands == [
        CONTEXTS,
        HELM_VERSION,
        REPO_LIST,
        "helm repo add -- prometheus-community https://prometheus-community.github.io/helm-charts",
        "helm repo add -- grafana-community https://grafana-community.github.io/helm-charts",
        "helm repo add -- grafana https://grafana.github.io/helm-charts",
        "helm repo add -- jaegertracing https://jaegertracing.github.io/helm-charts",
        f"kubectl --context {ctx} apply -f -",
        f"kubectl --context {ctx} --namespace monitoring get secret grafana-admin -o name",
        create,
        "helm show crds --version 88.5.3 -- prometheus-community/kube-prometheus-stack",
        f"kubectl --context {ctx} apply --server-side --force-conflicts -f -",
        *upgrades(ctx, H3),
    ]
    stdin = {cmd: data for cmd, _, data in c.calls}
    assert stdin[create] == "s3cr3t-Pa55"
    assert [cmd for cmd, _, data in c.calls if data and "s3cr3t" in data] == [create]
    assert not any("s3cr3t" in cmd for cmd in c.commands)
    for command, env, replace in c.envs:  # every child: an explicit environment, no password
        assert replace is True and env is not None, command
        assert "GRAFANA_ADMIN_PASSWORD" not in env, command
        assert not any("s3cr3t" in value for value in env.values()), command


def test_setup_updates_only_stale_repositories(mon_config: Any, recording_context: Any) -> None:
    answers = canned(
        overrides={
            search_command("grafana/alloy"): search_answer("grafana/alloy", "1.10.0"),
            search_command("grafana-community/loki"): "[]",
        }
    )
    c = recording_context(mon_config(), answers)
    monitoring.setup(c, context="kind-flowlet", mon_namespace="observability")
    assert "helm repo update -- grafana-community grafana" in c.commands
    assert not any(cmd.startswith("helm repo add") for cmd in c.commands)
    assert c.commands[-4:] == upgrades("kind-flowlet", H4, namespace="observability")


def test_megabytes_on_stdin_reach_the_command_whole_and_at_once() -> None:
    """setup pipes the chart's CRDs (megabytes) into kubectl through ``c.run``: Invoke reads a
    non-terminal in_stream one character per 10 ms, which would take hours; the runner's feed
    hands it 64 kB at a time (the generous timeout only catches the hours)."""
    from invoke import Context

    from tasks.core.runner import run

    text = "apiVersion: v1\n" * 200_000  # 3 MB, about the size of kube-prometheus-stack's CRDs
    result = run(Context(), ["wc", "-c"], stdin=text, hide=True, timeout=120)
    assert result.stdout.strip() == str(len(text))


def test_setup_dry_touches_no_cluster(
    mon_config: Any, recording_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under --dry only local probes run; every cluster command is printed, not run."""
    c = recording_context(mon_config(dry=True), canned(overrides={REPO_LIST: "[]"}))
    monitoring.setup(c, env="production")  # confirm: true, but --dry changes nothing: no prompt
    for command, dry, _ in c.calls:
        if "--context" in command or "--kube-context" in command or "repo add" in command:
            assert dry, f"ran under --dry: {command}"
    assert not any("get secret" in command for command, _, _ in c.calls)
    out = capsys.readouterr().out.splitlines()
    assert (
        "==> 7. Prometheus Operator CRDs of prometheus-community/kube-prometheus-stack 88.5.3"
        in out
    )
    assert "    (--dry: $GRAFANA_ADMIN_PASSWORD is not set; needed if it is missing)" in out
    assert c.commands[-4:] == upgrades("flowlet-production", H4)


def test_setup_refuses_unknown_context(mon_config: Any, recording_context: Any) -> None:
    c = recording_context(mon_config(), canned(overrides={CONTEXTS: "kind-other\n"}))
    with fails_with() as err:
        monitoring.setup(c, env="staging")
    assert err.value.message == (
        "environments.staging.kube_context: kube context 'flowlet-staging' not found in "
        "kubeconfig; available: kind-other"
    )
    assert c.commands == [CONTEXTS]


def test_setup_production_asks_first(mon_config: Any, recording_context: Any) -> None:
    c = recording_context(mon_config(), canned())
    with fails_with(match="refusing: no terminal to confirm on; pass --yes"):
        monitoring.setup(c, env="production")
    assert not any("upgrade" in cmd or "apply" in cmd for cmd in c.commands)
    c = recording_context(mon_config(), canned())
    monitoring.setup(c, env="production", yes=True)
    assert c.commands[-4:] == upgrades("flowlet-production", H4)


def test_setup_needs_the_password_variable(
    mon_config: Any, recording_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRAFANA_ADMIN_PASSWORD", raising=False)
    answers = canned(overrides={re.compile(r"kubectl .* get secret .*"): secret_missing()})
    c = recording_context(mon_config(), answers)
    with fails_with(match=r"^\$GRAFANA_ADMIN_PASSWORD: not set, and the Grafana admin"):
        monitoring.setup(c, context="kind-flowlet")
    assert not any("upgrade" in cmd for cmd in c.commands)


def test_setup_rejects_a_repository_under_another_url(
    mon_config: Any, recording_context: Any
) -> None:
    repos = '[{"name": "grafana", "url": "https://example.com/charts"}]'
    c = recording_context(mon_config(), canned(overrides={REPO_LIST: repos}))
    with fails_with() as err:
        monitoring.setup(c, context="kind-flowlet")
    assert err.value.message.startswith(
        "monitoring.repos.grafana: helm already has repository 'grafana' at "
        "https://example.com/charts, not https://grafana.github.io/helm-charts"
    )


def test_setup_reports_a_broken_repository_list(mon_config: Any, recording_context: Any) -> None:
    broken = Result(stdout="", stderr="Error: yaml: line 3: could not find expected ':'", exited=1)
    c = recording_context(mon_config(), canned(overrides={REPO_LIST: broken}))
    with fails_with() as err:
        monitoring.setup(c, context="kind-flowlet")
    assert err.value.message == (
        "helm repo list failed (exit 1): Error: yaml: line 3: could not find expected ':'"
    )


def test_setup_skips_disabled_components(mon_config: Any, recording_context: Any) -> None:
    off = {"monitoring": {"components": {"loki": {"enabled": False}, "alloy": {"enabled": False}}}}
    c = recording_context(mon_config(overrides=off), canned())
    monitoring.setup(c, context="kind-flowlet")
    assert [cmd.split()[-2] for cmd in c.commands if " upgrade " in cmd] == [  # after "--"
        "kube-prometheus-stack",
        "jaeger",
    ]


def test_setup_without_prometheus_needs_no_secret_or_crds(
    mon_config: Any, recording_context: Any
) -> None:
    off = {"monitoring": {"components": {"kube_prometheus_stack": {"enabled": False}}}}
    c = recording_context(mon_config(overrides=off), canned())
    monitoring.setup(c, context="kind-flowlet")
    assert not any("secret" in cmd or "crds" in cmd for cmd in c.commands)


def test_setup_ctrl_c_while_creating_the_secret_exits_130(
    mon_config: Any, recording_context: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Ctrl-C in the middle: exit 130, nothing after it runs, and no file ever held the
    password (it only went to kubectl's stdin)."""
    monkeypatch.setenv("GRAFANA_ADMIN_PASSWORD", "pw-in-memory-only")
    monkeypatch.setenv("TMPDIR", str(tmp_path))

    def interrupt(command: str) -> None:
        raise KeyboardInterrupt

    answers = canned(overrides={re.compile(r"kubectl .* get secret .*"): secret_missing()})
    c = recording_context(mon_config(), answers, hooks={"create secret": interrupt})
    with fails_with(match=r"^interrupted \(SIGINT\): setup stopped$", code=130):
        monitoring.setup(c, context="kind-flowlet")
    assert "create secret generic" in c.commands[-1]
    assert c.calls[-1][2] == "pw-in-memory-only"  # on stdin
    assert not any("pw-in-memory-only" in p.read_text(errors="replace")
                   for p in tmp_path.rglob("*") if p.is_file())  # fmt: skip


def test_failed_helm_upgrade_keeps_its_exit_code(mon_config: Any, recording_context: Any) -> None:
    failed = Result(stdout="", stderr="Error: UPGRADE FAILED: timed out", exited=3)
    answers = canned(
        overrides={re.compile(r"helm --kube-context \S+ upgrade --install .* -- loki \S+$"): failed}
    )
    c = recording_context(mon_config(), answers)
    with fails_with(match=r"^helm failed \(exit 3\)$", code=3):
        monitoring.setup(c, context="kind-flowlet")
    assert c.commands[-1].startswith("helm --kube-context kind-flowlet upgrade --install ")
    assert c.commands[-1].endswith(" -- loki grafana-community/loki")
    assert "upgrade --install alloy" not in " ".join(c.commands)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            {"monitoring": {"components": {"loki": {"version": "^18.0"}}}},
            (
                "monitoring.components.loki.version: '^18.0' is not valid; valid: an exact chart "
                "version like 1.2.3 (ranges are not allowed: pinned)"
            ),
        ),
        (
            {"monitoring": {"components": {"jaeger": {"repo": "nope"}}}},
            (
                "monitoring.components.jaeger.repo: 'nope' is not in monitoring.repos; valid: "
                "grafana, grafana-community, jaegertracing, prometheus-community"
            ),
        ),
        (
            {"monitoring": {"components": {"alloy": {"enabled": "yes"}}}},
            "monitoring.components.alloy.enabled: 'yes' is not valid; valid: true or false",
        ),
        (
            {"monitoring": {"timeout": "ten minutes"}},
            (
                "monitoring.timeout: 'ten minutes' is not valid; valid: a duration like 90s, 10m "
                "or 1h30m, at least 1s"
            ),
        ),
        (
            {"monitoring": {"components": {"loki": {"values": "missing.yaml"}}}},
            (
                "monitoring.components.loki.values: 'missing.yaml' is not valid; valid: a file in "
                f"monitoring.values_dir ({VALUES / 'missing.yaml'} does not exist)"
            ),
        ),
        (
            {"monitoring": {"components": {k: {"enabled": False} for k in COMPONENTS}}},
            "monitoring.components: every component is disabled; nothing to install",
        ),
    ],
    ids=[
        "version-range",
        "unknown-repo",
        "enabled-not-bool",
        "bad-timeout",
        "missing-values",
        "all-disabled",
    ],
)
def test_setup_config_errors(
    mon_config: Any, recording_context: Any, overrides: dict[str, Any], message: str
) -> None:
    """Bad config is one exact line, exit 1, before any command runs (not even a probe)."""
    c = recording_context(mon_config(overrides=overrides), canned())
    with fails_with(code=1) as err:
        monitoring.setup(c, context="kind-flowlet")
    assert err.value.message == message
    assert c.commands == []


def test_bad_mon_namespace_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_task(ROOT_NS, ["monitoring.setup", "--mon-namespace", "Bad_NS"], cwd=REPO)
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        "--mon-namespace: 'Bad_NS' is not valid; valid: a DNS-1123 label: lowercase letters, "
        "digits and '-', starting and ending with a letter or digit, at most 63 characters"
    ]


@pytest.mark.parametrize(
    "helm_version,wait",
    [("v4.1.4", "--wait=watcher"), ("v3.18.0", "--wait")],
    ids=["helm4", "helm3"],
)
def test_uninstall_plan(
    mon_config: Any, recording_context: Any, helm_version: str, wait: str
) -> None:
    c = recording_context(mon_config(), canned(helm_version))
    monitoring.uninstall(c, env="staging", yes=True)
    tail = f"--namespace monitoring --ignore-not-found {wait} --timeout 10m"
    assert c.commands == [
        CONTEXTS,
        HELM_VERSION,
        *(
            f"helm --kube-context flowlet-staging uninstall {tail} -- {release}"
            for release in ("jaeger", "alloy", "loki", "kube-prometheus-stack")
        ),
    ]


def test_uninstall_asks_first(mon_config: Any, recording_context: Any) -> None:
    c = recording_context(mon_config(), canned())
    with fails_with() as err:
        monitoring.uninstall(c, env="staging")
    assert err.value.message == (
        "Uninstall kube-prometheus-stack, loki, alloy, jaeger from flowlet-staging/monitoring? "
        "-- refusing: no terminal to confirm on; pass --yes to proceed"
    )
    assert not any("uninstall" in cmd for cmd in c.commands)


def test_uninstall_dry_runs_nothing(mon_config: Any, recording_context: Any) -> None:
    c = recording_context(mon_config(dry=True), canned())
    monitoring.uninstall(c, env="staging")
    assert all(dry for command, dry, _ in c.calls if "uninstall" in command)


def test_grafana_port_forward(
    mon_config: Any, recording_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = canned(overrides={re.compile(r"kubectl .* port-forward .*"): ""})
    c = recording_context(mon_config(), answers)
    monitoring.grafana(c, env="staging", port=3300)
    assert c.commands[-1] == (
        "kubectl --context flowlet-staging --namespace monitoring port-forward "
        "svc/kube-prometheus-stack-grafana 3300:80"
    )
    out = capsys.readouterr().out
    assert out.startswith("http://127.0.0.1:3300/  (user admin; password: kubectl --context ")
    assert "get secret grafana-admin -o 'jsonpath={.data.admin-password}' | base64 -d" in out


def test_jaeger_port_forward_and_ctrl_c(mon_config: Any, recording_context: Any) -> None:
    def interrupt(command: str) -> None:
        raise KeyboardInterrupt

    answers = canned(overrides={re.compile(r"kubectl .* port-forward .*"): ""})
    c = recording_context(mon_config(), answers, hooks={"port-forward": interrupt})
    with fails_with() as err:
        monitoring.jaeger(c, context="kind-flowlet")
    assert err.value.code == 130
    assert c.commands[-1] == (
        "kubectl --context kind-flowlet --namespace monitoring port-forward svc/jaeger 16686:16686"
    )


def test_port_forward_rejects_a_bad_port(mon_config: Any, recording_context: Any) -> None:
    c = recording_context(mon_config(), canned())
    with fails_with(match=r"^--port: 70000 is not valid; valid: a port number \(1-65535\)$"):
        monitoring.jaeger(c, context="kind-flowlet", port=70000)
    assert c.commands == []


@pytest.mark.parametrize("task", ["grafana", "jaeger"])
@pytest.mark.parametrize(
    "port,shown",
    [("abc", "'abc'"), ("70000", "70000"), ("0", "0"), ("-1", "-1"), ("3000.5", "'3000.5'"),
     ("", "''")],
)  # fmt: skip
def test_port_flag_is_text_converted_by_the_schema(
    task: str, port: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--port abc`` is one line naming --port and the value, exit 1, no traceback."""
    code = run_task(ROOT_NS, [f"monitoring.{task}", "--port", port], cwd=REPO)
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err == [f"--port: {shown} is not valid; valid: a port number (1-65535)"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "helm_dir,flags", [(".tools/bin", H4), (".tools/helm3", H3)], ids=["helm4", "helm3"]
)
def test_dry_setup_with_the_real_helm_and_kubectl(
    helm_dir: str, flags: list[str], kubeconfig: Path, tmp_path: Path
) -> None:
    """``inv --dry monitoring.setup`` as a subprocess: real probes (helm version, repo list,
    kubeconfig contexts) on an empty helm home; every change is printed, none is made."""
    from conftest import need

    need("helm", "kubectl")
    if not (REPO / helm_dir / "helm").exists():
        pytest.skip(f"{helm_dir}/helm not installed")
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{REPO / helm_dir}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--dry", "monitoring.setup"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in done.stdout.splitlines()]
    commands = [line for line in lines if not line.startswith(("==>", "    "))]
    assert commands[:4] == [
        "helm repo add -- prometheus-community https://prometheus-community.github.io/helm-charts",
        "helm repo add -- grafana-community https://grafana-community.github.io/helm-charts",
        "helm repo add -- grafana https://grafana.github.io/helm-charts",
        "helm repo add -- jaegertracing https://jaegertracing.github.io/helm-charts",
    ]
    assert commands[-4:] == upgrades("kind-flowlet", flags)
    assert not list(tmp_path.rglob("repositories.yaml")), "--dry must not add repositories"
