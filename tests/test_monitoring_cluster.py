"""README's monitoring commands, run as written by the real ``inv`` against a fake cluster.

What runs for real: ``inv`` (a process), helm 4 (and helm 3 in one test) and kubectl from
``.tools``; ``helm repo add/search/show`` against local chart repositories with the pinned
chart names and versions (``chart_repos``; ``~/.invoke.yaml`` points ``monitoring.repos`` at
them); every kubectl and helm call that talks to a cluster against ``cluster``, the in-memory
API server of tests/fakekube.py (``kubectl apply``, server-side apply, ``create secret``,
``get``; ``helm upgrade --install --wait=watcher``, ``helm uninstall``). Only ``kubectl
port-forward`` is answered by the recording wrapper (a fake API server cannot stream a port).
The wrappers (``recording_tools``, tests/fixtures_kube.py) log every helm/kubectl call: the
whole plan is asserted as run, and so is the environment each child got (never the Grafana
password).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import need, readme, run_inv, start_inv
from fakekube import FakeKube
from fixtures_kube import Recorder
from fixtures_monitoring import H3, H4, REPO, SECRET, ChartRepos, load, upgrades

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("helm", "kubectl")


REPOS = ("prometheus-community", "grafana-community", "grafana", "jaegertracing")
RELEASES = ("kube-prometheus-stack", "loki", "alloy", "jaeger")
PINNED = [("kube-prometheus-stack", "88.5.3"), ("loki", "18.11.0"), ("alloy", "1.11.1"),
          ("jaeger", "4.11.1")]  # fmt: skip
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A log line of a Go tool (klog): helm's client-go sometimes logs "watch ended with error ...
# context canceled" when helm stops watching the CRDs it waited for (a race inside client-go:
# its watch read sees the cancelled context before the watcher is marked done). Not from inv.
KLOG = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")


def environment(tmp_path: Path, recorder: Recorder, **extra: str) -> dict[str, str]:
    """What the user's shell has: the wrappers first on PATH, the exported password."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {"PATH": recorder.path(), "GRAFANA_ADMIN_PASSWORD": SECRET, "TMPDIR": str(tmp), **extra}


def setup_plan(context: str, repos: ChartRepos | None, namespace: str = "monitoring") -> list[str]:
    """Every helm/kubectl call of a first ``monitoring.setup`` (Helm 4), in order."""
    adds = [f"helm repo add -- {repo} {repos.url(repo)}" for repo in REPOS] if repos else []
    kubectl = f"kubectl --context {context}"
    return [
        "kubectl config get-contexts -o name",
        "helm version --template '{{.Version}}'",
        "helm repo list -o json",
        *adds,
        f"{kubectl} apply -f -",
        f"{kubectl} --namespace {namespace} get secret grafana-admin -o name",
        f"{kubectl} --namespace {namespace} create secret generic grafana-admin "
        "--from-literal=admin-user=admin --from-file=admin-password=/dev/stdin",
        "helm show crds --version 88.5.3 -- prometheus-community/kube-prometheus-stack",
        f"{kubectl} apply --server-side --force-conflicts -f -",
        *upgrades(context, H4, namespace),
    ]


SETUP_TITLES = [
    *(f"add chart repository {repo}" for repo in REPOS),
    "namespace {ns} (created if missing)",
    "Grafana admin Secret {ns}/grafana-admin (created from $GRAFANA_ADMIN_PASSWORD if missing)",
    "Prometheus Operator CRDs of prometheus-community/kube-prometheus-stack 88.5.3",
    "apply them server-side",
    "kube-prometheus-stack (prometheus-community/kube-prometheus-stack 88.5.3)",
    "loki (grafana-community/loki 18.11.0)",
    "alloy (grafana/alloy 1.11.1)",
    "jaeger (jaegertracing/jaeger 4.11.1)",
]


def own_lines(stderr: str) -> list[str]:
    """What inv itself wrote on stderr (the tools' klog lines left out)."""
    return [line for line in stderr.splitlines() if not KLOG.match(line)]


def progress(stdout: str) -> list[str]:
    return [line for line in ANSI.sub("", stdout).splitlines() if line.startswith("==> ")]


def titles(namespace: str = "monitoring", first: int = 1) -> list[str]:
    return [
        f"==> {n}. {t.format(ns=namespace)}" for n, t in enumerate(SETUP_TITLES[first - 1 :], 1)
    ]


def assert_no_password_leaked(recorder: Recorder, *outputs: str, roots: tuple[Path, ...]) -> None:
    """No helm/kubectl got the password (or its variable) in its environment or argv; no
    output shows it; no file under ``roots`` holds it."""
    calls = recorder.calls()
    assert calls, "nothing recorded"
    for call in calls:
        assert call["leaked"] == [], call["argv"]
        assert "GRAFANA_ADMIN_PASSWORD" not in call["env"], call["argv"]
        assert not any(SECRET in arg for arg in call["argv"])
    for text in outputs:
        assert SECRET not in text
    encoded = base64.b64encode(SECRET.encode())
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            data = path.read_bytes()
            assert SECRET.encode() not in data and encoded not in data, path


def assert_installed(cluster: FakeKube, namespace: str = "monitoring", revision: int = 1) -> None:
    """The stack as the real helm and kubectl left it in the fake cluster (and as the real
    ``helm list`` reads it back: every release deployed, at its pinned chart version)."""
    assert namespace in cluster.names("Namespace")
    secret = cluster.get("Secret", namespace, "grafana-admin")
    assert secret is not None and secret.get("type", "Opaque") == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "admin-user": "admin",
        "admin-password": SECRET,
    }
    assert cluster.names("CustomResourceDefinition") == [
        "prometheusrules.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
    ]
    for release in RELEASES:
        stored = cluster.get("Secret", namespace, f"sh.helm.release.v1.{release}.v{revision}")
        assert stored is not None, release
        assert stored["metadata"]["labels"]["status"] == "deployed", release
        stand_in = cluster.get("ConfigMap", namespace, f"{release}-stand-in")
        assert stand_in is not None, release
    listed = subprocess.run(
        ["helm", "--kube-context", "kind-flowlet", "list", "--namespace", namespace, "-o", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    releases = {
        r["name"]: (r["chart"], r["status"], r["revision"]) for r in json.loads(listed.stdout)
    }
    assert releases == {
        release: (f"{chart}-{version}", "deployed", str(revision))
        for release, (chart, version) in zip(RELEASES, PINNED)
    }
    kps = json.loads(
        cluster.get("ConfigMap", namespace, "kube-prometheus-stack-stand-in")["data"]["values.json"]
    )
    assert kps["grafana"]["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }


@readme("inv monitoring.setup --env staging")
def test_setup_staging_installs_the_stack(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    """A fresh machine and cluster: the whole plan runs, in order, and leaves the stack (and
    the admin Secret with the exported password) in the cluster; the password went only to
    kubectl's stdin."""
    recorder = recording_tools(SECRET)
    done = run_inv("inv monitoring.setup --env staging", env=environment(tmp_path, recorder))
    assert done.returncode == 0, done.stderr
    assert own_lines(done.stderr) == []
    assert progress(done.stdout) == titles()
    assert recorder.argvs() == setup_plan("flowlet-staging", local_chart_repos)
    assert_installed(cluster)
    assert_no_password_leaked(
        recorder, done.stdout, done.stderr, roots=(tmp_path, Path(os.environ["HOME"]))
    )
    writes = [r for r in cluster.requests if not r.startswith("GET ")]
    assert writes[:3] == [
        "POST /api/v1/namespaces",  # the namespace first,
        "POST /api/v1/namespaces/monitoring/secrets",  # then the admin Secret,
        "PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/"  # then the CRDs
        "prometheusrules.monitoring.coreos.com",
    ]


@readme("inv monitoring.setup")
def test_setup_twice_changes_nothing_the_second_time(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    """``inv monitoring.setup`` (development: kube context kind-flowlet) twice: the second run
    adds and refreshes no repository, keeps the Secret, and upgrades each release once."""
    recorder = recording_tools(SECRET)
    env = environment(tmp_path, recorder)
    first = run_inv("inv monitoring.setup", env=env)
    assert first.returncode == 0, first.stderr
    recorder.log.unlink()
    second = run_inv("inv monitoring.setup", env={**env, "GRAFANA_ADMIN_PASSWORD": ""})
    assert second.returncode == 0, second.stderr
    assert progress(second.stdout) == titles(first=5)
    assert "    exists: kept (the password is never replaced by setup)" in second.stdout
    kubectl = "kubectl --context kind-flowlet"
    assert recorder.argvs() == [
        "kubectl config get-contexts -o name",
        "helm version --template '{{.Version}}'",
        "helm repo list -o json",
        *(f"helm search repo --version {v} -o json -- {ref}" for ref, v in CHART_REFS),
        f"{kubectl} apply -f -",
        f"{kubectl} --namespace monitoring get secret grafana-admin -o name",
        "helm show crds --version 88.5.3 -- prometheus-community/kube-prometheus-stack",
        f"{kubectl} apply --server-side --force-conflicts -f -",
        *upgrades("kind-flowlet", H4),
    ]
    assert_installed(cluster, revision=2)


CHART_REFS = [
    ("prometheus-community/kube-prometheus-stack", "88.5.3"),
    ("grafana-community/loki", "18.11.0"),
    ("grafana/alloy", "1.11.1"),
    ("jaegertracing/jaeger", "4.11.1"),
]


@readme("inv monitoring.setup --env development --mon-namespace observability")
def test_setup_into_another_namespace(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    recorder = recording_tools(SECRET)
    done = run_inv(
        "inv monitoring.setup --env development --mon-namespace observability",
        env=environment(tmp_path, recorder),
    )
    assert done.returncode == 0, done.stderr
    assert progress(done.stdout) == titles("observability")
    assert recorder.argvs() == setup_plan("kind-flowlet", local_chart_repos, "observability")
    assert_installed(cluster, "observability")
    assert "monitoring" not in cluster.names("Namespace")


@readme("inv --dry monitoring.setup --env production")
def test_dry_setup_production_prints_every_step_and_changes_nothing(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    """--dry: only local read-only probes run (kube contexts, helm version, repo list); every
    change is printed, none is made (no repository added, no API request at all); production's
    confirmation is not asked under --dry."""
    recorder = recording_tools(SECRET)
    env = environment(tmp_path, recorder)
    del env["GRAFANA_ADMIN_PASSWORD"]
    done = run_inv("inv --dry monitoring.setup --env production", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = ANSI.sub("", done.stdout).splitlines()
    plan = setup_plan("flowlet-production", local_chart_repos)
    get_secret = next(line for line in plan if " get secret " in line)
    expected = []
    for title, command in zip(titles(), [line for line in plan[3:] if line != get_secret]):
        expected.append(title)
        if "admin Secret" in title:
            expected.append(
                "    the password: $GRAFANA_ADMIN_PASSWORD, on kubectl's stdin (kept if it exists)"
            )
            expected.append(
                "    (--dry: $GRAFANA_ADMIN_PASSWORD is not set; needed if it is missing)"
            )
        expected.append(command)
    assert lines == expected
    assert recorder.argvs() == plan[:3]  # the probes; nothing else ran
    assert cluster.requests == []
    assert not list(Path(os.environ["HOME"]).rglob("repositories.yaml"))


@readme("inv monitoring.setup --env production --yes")
def test_setup_production_needs_yes(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    recorder = recording_tools(SECRET)
    env = environment(tmp_path, recorder)
    refused = run_inv("inv monitoring.setup --env production", env=env)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "Install/upgrade the monitoring stack in flowlet-production/monitoring? -- refusing: no "
        "terminal to confirm on; pass --yes to proceed"
    ]
    assert [r for r in cluster.requests if not r.startswith("GET ")] == []
    done = run_inv("inv monitoring.setup --env production --yes", env=env)
    assert done.returncode == 0, done.stderr
    assert progress(done.stdout) == titles()
    assert_installed(cluster)


def test_setup_with_helm3(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    """The same install with Helm 3: ``--atomic --wait`` instead of Helm 4's spelling."""
    helm3 = REPO / ".tools" / "helm3" / "helm"
    if not helm3.exists():
        pytest.skip(f"{helm3} not installed (.ci/install provides it)")
    recorder = recording_tools(SECRET, helm=helm3)
    done = run_inv("inv monitoring.setup --env staging", env=environment(tmp_path, recorder))
    assert done.returncode == 0, done.stderr
    assert recorder.argvs()[-4:] == upgrades("flowlet-staging", H3)
    assert_installed(cluster)


def test_setup_without_the_password_stops_before_installing(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    recorder = recording_tools(SECRET)
    env = environment(tmp_path, recorder, GRAFANA_ADMIN_PASSWORD="")
    done = run_inv("inv monitoring.setup --env staging", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "$GRAFANA_ADMIN_PASSWORD: not set, and the Grafana admin Secret monitoring/grafana-admin "
        "does not exist yet; export it (e.g. read -rs GRAFANA_ADMIN_PASSWORD; export "
        "GRAFANA_ADMIN_PASSWORD) and run again"
    ]
    assert not any(" upgrade " in argv for argv in recorder.argvs())
    assert cluster.names("Secret", "monitoring") == []


def seed(cluster: FakeKube, sample: str, namespace: str | None = None) -> None:
    """Store the objects of a kubectl List sample (tests/data/monitoring) in the cluster."""
    for obj in json.loads(load(sample))["items"]:
        if namespace is not None:
            obj["metadata"]["namespace"] = namespace
        cluster.put(obj, controller=False)  # its namespace too; the sample's status kept


AGE = r"\d+[smhdy]\S*"


@readme("inv monitoring.status --env staging")
def test_status_staging_table_and_exit_code(cluster: FakeKube) -> None:
    """kubectl against the cluster: the app's crash-looping frontend makes it exit 1."""
    seed(cluster, "app-workloads.json")
    seed(cluster, "app-pods.json")
    seed(cluster, "monitoring-workloads.json")
    seed(cluster, "monitoring-pods.json")
    done = run_inv("inv monitoring.status --env staging")
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["1 not ready"]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"NAMESPACE +KIND +NAME +READY +RESTARTS +AGE +STATUS", lines[0])
    assert len(lines) == 1 + 2 + 9
    assert re.fullmatch(
        rf"flowlet-staging +Deployment +flowlet-backend +2/2 +3 +{AGE} +ok", lines[1]
    )
    assert re.fullmatch(
        rf"flowlet-staging +Deployment +flowlet-frontend +1/2 +7 +{AGE} +NOT READY", lines[2]
    )
    assert all(line.endswith(" ok") for line in lines[3:])
    assert {line.split()[0] for line in lines[3:]} == {"monitoring"}
    gets = [r for r in cluster.requests if "/namespaces/" in r]
    assert all(r.startswith("GET ") for r in cluster.requests)
    assert "GET /apis/apps/v1/namespaces/flowlet-staging/daemonsets" in gets
    assert "GET /api/v1/namespaces/monitoring/pods" in gets


@readme("inv monitoring.status --env staging --app-namespace team-a --json")
def test_status_json_of_another_app_namespace(cluster: FakeKube) -> None:
    seed(cluster, "monitoring-workloads.json", namespace="team-a")
    seed(cluster, "monitoring-pods.json", namespace="team-a")
    seed(cluster, "monitoring-workloads.json")
    seed(cluster, "monitoring-pods.json")
    done = run_inv("inv monitoring.status --env staging --app-namespace team-a --json")
    assert (done.returncode, done.stderr) == (0, "")
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["empty_namespaces"] == []
    assert [w["namespace"] for w in report["workloads"]] == ["team-a"] * 9 + ["monitoring"] * 9
    loki = next(w for w in report["workloads"] if w["name"] == "loki")
    assert (loki["kind"], loki["ready"], loki["desired"], loki["restarts"]) == (
        "StatefulSet",
        1,
        1,
        2,
    )


@readme("inv monitoring.status")
def test_status_of_an_empty_cluster(cluster: FakeKube) -> None:
    """Development, nothing installed: both namespaces are reported empty; exit 1."""
    done = run_inv("inv monitoring.status")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "flowlet-dev: no workloads found (not installed?)",
        "monitoring: no workloads found (not installed?)",
    ]
    assert done.stderr.splitlines() == ["2 not ready"]


def wait_for_line(child: subprocess.Popen[str], pattern: str) -> list[str]:
    """Lines of ``child``'s stdout up to the first matching ``pattern``."""
    assert child.stdout is not None
    seen: list[str] = []
    for line in child.stdout:
        seen.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} in {seen}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def forward_and_stop(
    command: str, env: dict[str, str], recorder: Recorder, signum: int
) -> tuple[list[str], str, int]:
    """Start a port-forward task, wait until kubectl forwards, send ``signum`` to inv only (as a
    terminal's Ctrl-C reaches inv, and inv forwards it to its child's process group)."""
    child = start_inv(command, env=env)
    try:
        lines = wait_for_line(child, r"^Forwarding from ")
        (forward,) = [c for c in recorder.calls("kubectl") if "port-forward" in c["argv"]]
        assert forward["pgid"] != os.getpgid(child.pid)  # its own process group
        os.kill(child.pid, signum)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert not alive(forward["pid"]), "the port-forward outlived inv"
    assert "Traceback" not in out + err
    return lines + out.splitlines(), err, child.returncode


KUBECTL = "kubectl --context flowlet-staging --namespace monitoring"
FORWARDS = {
    "grafana": (
        "inv monitoring.grafana --env staging",
        signal.SIGINT,
        [
            f"http://127.0.0.1:3000/  (user admin; password: {KUBECTL} get secret grafana-admin "
            "-o 'jsonpath={.data.admin-password}' | base64 -d; Ctrl-C stops)",
            f"{KUBECTL} port-forward svc/kube-prometheus-stack-grafana 3000:80",
            "Forwarding from 127.0.0.1:3000 -> 80",
        ],
    ),
    "jaeger": (
        "inv monitoring.jaeger --env staging --port 16687",
        signal.SIGTERM,
        [
            "http://127.0.0.1:16687/  (Jaeger UI; OTLP: 4317/4318; Ctrl-C stops)",
            f"{KUBECTL} port-forward svc/jaeger 16687:16686",
            "Forwarding from 127.0.0.1:16687 -> 16686",
        ],
    ),
}


@pytest.mark.signals
@readme("inv monitoring.grafana --env staging", "inv monitoring.jaeger --env staging --port 16687")
@pytest.mark.parametrize("ui", sorted(FORWARDS))
def test_port_forward_runs_until_a_signal(
    ui: str, cluster: FakeKube, recording_tools: Any, tmp_path: Path
) -> None:
    """The URL line, then kubectl port-forward (its own process group) until Ctrl-C (grafana)
    or SIGTERM (jaeger) reaches inv: kubectl stops with it, exit 130 / 143, one line."""
    command, signum, shown = FORWARDS[ui]
    recorder = recording_tools(SECRET)
    lines, err, code = forward_and_stop(command, environment(tmp_path, recorder), recorder, signum)
    assert code == 128 + signum
    assert err.splitlines() == [f"interrupted ({signal.Signals(signum).name}): {ui} stopped"]
    assert [ANSI.sub("", line) for line in lines[:3]] == shown
    assert recorder.argvs() == ["kubectl config get-contexts -o name", shown[1]]
    assert_no_password_leaked(recorder, *lines, err, roots=())


@readme("inv monitoring.uninstall --env staging")
def test_uninstall_asks_first_then_removes_the_releases(
    cluster: FakeKube,
    local_chart_repos: ChartRepos,
    recording_tools: Any,
    tmp_path: Path,
) -> None:
    """Without a terminal it refuses (scripts pass --yes); answered "y" on a terminal, it
    uninstalls every release in reverse order and keeps the namespace, Secret and CRDs."""
    import pty

    recorder = recording_tools(SECRET)
    env = environment(tmp_path, recorder)
    assert run_inv("inv monitoring.setup --env staging", env=env).returncode == 0
    refused = run_inv("inv monitoring.uninstall --env staging", env=env)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "Uninstall kube-prometheus-stack, loki, alloy, jaeger from flowlet-staging/monitoring? "
        "-- refusing: no terminal to confirm on; pass --yes to proceed"
    ]
    assert_installed(cluster)
    recorder.log.unlink()
    terminal, user = pty.openpty()
    try:
        child = start_inv("inv monitoring.uninstall --env staging", env=env, stdin=user)
        os.write(terminal, b"y\n")
        out, err = child.communicate(timeout=120)
    finally:
        os.close(terminal)
        os.close(user)
    assert child.returncode == 0, err
    assert "[y/N]" in out
    tail = "--namespace monitoring --ignore-not-found --wait=watcher --timeout 10m"
    assert recorder.argvs()[2:] == [
        f"helm --kube-context flowlet-staging uninstall {tail} -- {release}"
        for release in reversed(RELEASES)
    ]
    assert not [n for n in cluster.names("Secret", "monitoring") if "helm" in n]
    assert cluster.names("ConfigMap", "monitoring") == []
    assert cluster.names("Secret", "monitoring") == ["grafana-admin"]
    assert "monitoring" in cluster.names("Namespace")
    assert len(cluster.names("CustomResourceDefinition")) == 2
