"""Monitoring test fixtures: its config, a recording strict mock context, canned answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT_NS
from invoke import Config, Result

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "monitoring"

HELM_VERSION = "helm version --template '{{.Version}}'"
CONTEXTS = "kubectl config get-contexts -o name"
REPO_LIST = "helm repo list -o json"
ALL_REPOS = [
    {"name": "prometheus-community", "url": "https://prometheus-community.github.io/helm-charts"},
    {"name": "grafana-community", "url": "https://grafana-community.github.io/helm-charts"},
    {"name": "grafana", "url": "https://grafana.github.io/helm-charts"},
    {"name": "jaegertracing", "url": "https://jaegertracing.github.io/helm-charts"},
]
CHARTS = {  # chart ref -> pinned version (as in invoke.yaml)
    "prometheus-community/kube-prometheus-stack": "88.5.3",
    "grafana-community/loki": "18.11.0",
    "grafana/alloy": "1.11.1",
    "jaegertracing/jaeger": "4.11.1",
}
CRDS = (
    "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
    "metadata:\n  name: servicemonitors.monitoring.coreos.com\n"
)


VALUES = REPO / "kubernetes" / "monitoring"
H4 = ["--rollback-on-failure", "--wait=watcher", "--timeout", "10m"]
H3 = ["--atomic", "--wait", "--timeout", "10m"]


def upgrades(context: str, flags: list[str], namespace: str = "monitoring") -> list[str]:
    def one(release: str, chart: str, version: str, values: str, extra: str = "") -> str:
        return (
            f"helm --kube-context {context} upgrade --install {release} {chart} --version "
            f"{version} --namespace {namespace} --values {VALUES / values}{extra} "
            + " ".join(flags)
        )

    return [
        one(
            "kube-prometheus-stack",
            "prometheus-community/kube-prometheus-stack",
            "88.5.3",
            "kube-prometheus-stack.yaml",
            " --set-string grafana.admin.existingSecret=grafana-admin",
        ),
        one("loki", "grafana-community/loki", "18.11.0", "loki.yaml"),
        one("alloy", "grafana/alloy", "1.11.1", "alloy.yaml"),
        one("jaeger", "jaegertracing/jaeger", "4.11.1", "jaeger.yaml"),
    ]


def search_command(chart: str) -> str:
    return f"helm search repo {chart} --version {CHARTS[chart]} -o json"


def search_answer(chart: str, version: str | None = None) -> str:
    """What ``helm search repo`` prints when the local index has ``version`` (None: nothing)."""
    if version is None:
        return "[]"
    return json.dumps([{"name": chart, "version": version, "app_version": "x", "description": ""}])


def canned(helm_version: str = "v4.1.4", overrides: dict[Any, Any] | None = None) -> dict[Any, Any]:
    """Answers of a machine with every repository added and every pinned chart in the index.

    ``overrides`` come first, so they win over the defaults' regular expressions too.
    """
    base: dict[Any, Any] = {
        CONTEXTS: "kind-flowlet\nflowlet-staging\nflowlet-production\n",
        HELM_VERSION: helm_version,
        REPO_LIST: json.dumps(ALL_REPOS),
        **{search_command(chart): search_answer(chart, v) for chart, v in CHARTS.items()},
        re.compile(r"kubectl --context \S+ apply -f -"): "namespace/monitoring configured",
        re.compile(r"kubectl --context \S+ --namespace \S+ get secret grafana-admin -o name"): (
            "secret/grafana-admin"
        ),
        re.compile(r"helm repo (add|update) .*"): "ok",
        re.compile(r"helm show crds .*"): CRDS,
        re.compile(r"kubectl --context \S+ apply --server-side --force-conflicts -f -"): "ok",
        re.compile(r"helm --kube-context \S+ (upgrade|uninstall) .*"): "done",
        re.compile(r"kubectl --context \S+ --namespace \S+ create secret generic .*"): "created",
    }
    answers = dict(overrides or {})
    for key, value in base.items():
        answers.setdefault(key, value)
    return answers


def secret_missing() -> Result:
    return Result(
        stdout="",
        stderr='Error from server (NotFound): secrets "grafana-admin" not found\n',
        exited=1,
    )


@pytest.fixture
def mon_config(tmp_path: Path) -> Callable[..., Config]:
    """A Config with every topic's defaults (registered on the root, as ``inv`` has them) and
    the project's invoke.yaml; ``dry`` and ``overrides`` optional."""

    def make(dry: bool = False, overrides: dict[str, Any] | None = None) -> Config:
        config = Config(defaults={**Config.global_defaults(), **ROOT_NS.configuration()})
        config.set_project_location(str(REPO))
        config.load_project()
        if overrides:
            config.load_overrides(overrides)
        config.run.dry = dry
        return config

    return make


@pytest.fixture
def mon_context(strict_context: type) -> Callable[..., Any]:
    """A StrictMockContext that also records (command, dry, stdin) in ``calls``, each command's
    environment in ``envs``, and runs per-command hooks."""

    class Recording(strict_context):  # type: ignore[misc, valid-type]
        def __init__(self, config: Config, run: dict[Any, Any], hooks: Any = None) -> None:
            super().__init__(config=config, run=run)
            self._set(calls=[], envs=[], hooks=hooks or {})

        def run(self, command: str, **kwargs: Any) -> Result:  # type: ignore[override]
            stream = kwargs.get("in_stream")
            dry = bool(kwargs.get("dry", self.config.run.dry))
            stdin = stream.getvalue() if hasattr(stream, "getvalue") else None
            self.calls.append((command, dry, stdin))
            self.envs.append((command, kwargs.get("env"), kwargs.get("replace_env")))
            result = super().run(command, **kwargs)
            for pattern, hook in self.hooks.items():
                if re.search(pattern, command) and not dry:
                    hook(command)
            return result

    return Recording


def load(name: str) -> str:
    return (DATA / name).read_text()


# -- a writable fake Kubernetes API server, for the real kubectl and helm --------------------
#
# tests/fixtures_deploy.py's fake_apiserver refuses every write (it proves dry runs only read).
# monitoring.setup writes (namespace, Secret, CRDs, Helm releases), so this one stores what it
# is sent and answers like an API server 1.33 closely enough for the real kubectl (client-side
# and server-side apply, create secret, get) and the real helm 3/4 (upgrade --install with
# --wait / --wait=watcher, uninstall): discovery, OpenAPI v3 stubs that say "server-side field
# validation supported" (so kubectl needs no schema), JSON, YAML and the Kubernetes protobuf of
# Secrets/ConfigMaps (typed clients send it), label selectors, and watches (initial events and
# bookmarks, or list+watch).

RESOURCES = {  # group/version -> (plural, kind, namespaced)
    "v1": [("namespaces", "Namespace", False), ("secrets", "Secret", True),
           ("configmaps", "ConfigMap", True), ("services", "Service", True),
           ("pods", "Pod", True), ("serviceaccounts", "ServiceAccount", True)],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True),
                ("daemonsets", "DaemonSet", True)],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", "CustomResourceDefinition", False)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True),
                                 ("prometheusrules", "PrometheusRule", True)],
}  # fmt: skip
FAKE_CONTEXTS = ("kind-flowlet", "flowlet-staging", "flowlet-production")
Key = tuple[str, str, str, str]  # (group/version, plural, namespace, name)


def api_status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code}  # fmt: skip


def merge_patch(base: Any, patch: Any) -> Any:
    """RFC 7386 merge (what a strategic merge or an apply patch amounts to for our objects)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = merge_patch(base.get(key), value)
        return base
    return patch


def _proto_fields(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message as ``{field number: [values]}`` (varints as int, others as bytes)."""
    fields: dict[int, list[Any]] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value = varint()
        elif wire == 2:
            length = varint()
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported")
        fields.setdefault(number, []).append(value)
    return fields


def _proto_text(fields: dict[int, list[Any]], number: int) -> str:
    return fields[number][-1].decode() if number in fields else ""


def _proto_map(entries: list[bytes]) -> dict[str, bytes]:
    pairs = [_proto_fields(entry) for entry in entries]
    return {_proto_text(f, 1): f.get(2, [b""])[-1] for f in pairs}


def decode_k8s_protobuf(raw: bytes) -> dict[str, Any]:
    """The JSON form of a Secret or ConfigMap sent as Kubernetes protobuf (``k8s\\0`` and a
    runtime.Unknown), as typed clients send them (kubectl create secret, Helm's storage)."""
    import base64

    if not raw.startswith(b"k8s\x00"):
        raise ValueError("not Kubernetes protobuf")
    unknown = _proto_fields(raw[4:])
    type_meta = _proto_fields(unknown.get(1, [b""])[0])
    body = _proto_fields(unknown.get(2, [b""])[0])
    meta = _proto_fields(body.get(1, [b""])[0])
    kind = _proto_text(type_meta, 2)
    metadata: dict[str, Any] = {"name": _proto_text(meta, 1)}
    for number, key in ((3, "namespace"), (6, "resourceVersion")):
        if _proto_text(meta, number):
            metadata[key] = _proto_text(meta, number)
    for number, key in ((11, "labels"), (12, "annotations")):
        if number in meta:
            metadata[key] = {k: v.decode() for k, v in _proto_map(meta[number]).items()}
    obj: dict[str, Any] = {"apiVersion": _proto_text(type_meta, 1), "kind": kind}
    obj["metadata"] = metadata
    if kind == "Secret":
        data = _proto_map(body.get(2, []))
        obj["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
        if _proto_text(body, 3):
            obj["type"] = _proto_text(body, 3)
        if 4 in body:
            obj["stringData"] = {k: v.decode() for k, v in _proto_map(body[4]).items()}
    elif kind == "ConfigMap":
        obj["data"] = {k: v.decode() for k, v in _proto_map(body.get(2, [])).items()}
    else:
        raise ValueError(f"protobuf of a {kind} is not supported by the fake API server")
    return obj


class FakeCluster:
    """What ``fake_cluster`` yields: the kubeconfig (contexts kind-flowlet, flowlet-staging,
    flowlet-production), the requests seen (``METHOD path``) and the stored objects."""

    def __init__(self, kubeconfig: Path) -> None:
        import threading

        self.kubeconfig = kubeconfig
        self.requests: list[str] = []
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[tuple[int, str, Key, dict[str, Any]]] = []
        self.version = 1000
        self.lock = threading.Condition()
        self.closing = False

    @staticmethod
    def kind(group_version: str, plural: str) -> tuple[str, bool] | None:
        for name, kind, namespaced in RESOURCES.get(group_version, []):
            if name == plural:
                return kind, namespaced
        return None

    def get(self, group_version: str, plural: str, namespace: str, name: str) -> Any:
        with self.lock:
            return self.objects.get((group_version, plural, namespace, name))

    def names(self, group_version: str, plural: str, namespace: str = "") -> list[str]:
        with self.lock:
            return sorted(k[3] for k in self.objects if k[:3] == (group_version, plural, namespace))

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (a seed object for a test, e.g. a Deployment with its status)."""
        group_version = obj["apiVersion"]
        plural = next(p for p, k, _ in RESOURCES[group_version] if k == obj["kind"])
        with self.lock:
            return self.store(group_version, plural, obj["metadata"].get("namespace", ""), obj)

    def store(
        self, group_version: str, plural: str, namespace: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        """Store (create or replace) under the lock: metadata as an API server fills it in."""
        import base64
        import copy
        import time
        import uuid

        kind, namespaced = self.kind(group_version, plural) or ("", False)
        obj = copy.deepcopy(obj)
        obj.update(apiVersion=group_version, kind=kind)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = meta.get("generateName", "object-") + uuid.uuid4().hex[:5]
        namespace = (namespace or meta.get("namespace") or "default") if namespaced else ""
        if namespaced:
            meta["namespace"] = namespace
        key = (group_version, plural, namespace, meta["name"])
        old = self.objects.get(key)
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        meta["uid"] = (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4())
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        meta["generation"] = int((old or {}).get("metadata", {}).get("generation", 0)) + 1
        if kind == "Secret" and "stringData" in obj:
            extra = {
                k: base64.b64encode(v.encode()).decode() for k, v in obj.pop("stringData").items()
            }
            obj["data"] = {**(obj.get("data") or {}), **extra}
        if kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        if kind == "CustomResourceDefinition":  # served at once (helm waits for Established)
            conditions = [{"type": t, "status": "True"} for t in ("NamesAccepted", "Established")]
            names = (obj.get("spec") or {}).get("names", {})
            obj["status"] = {
                "conditions": conditions,
                "acceptedNames": names,
                "storedVersions": ["v1"],
            }
        self.objects[key] = obj
        self.events.append((self.version, "MODIFIED" if old else "ADDED", key, obj))
        self.lock.notify_all()
        return obj

    def delete(self, key: Key) -> dict[str, Any] | None:
        obj = self.objects.pop(key, None)
        if obj is not None:
            self.version += 1
            self.events.append((self.version, "DELETED", key, obj))
            self.lock.notify_all()
        return obj

    def matching(self, group_version: str, plural: str, namespace: str, query: Any) -> list[Any]:
        """Objects of one resource (all namespaces if ``namespace`` is empty), selected."""
        import copy

        selector = query.get("labelSelector", [""])[0]
        wanted = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
        field = query.get("fieldSelector", [""])[0]
        name = field.split("=", 1)[1] if field.startswith("metadata.name=") else ""
        return [
            copy.deepcopy(obj)
            for (gv, pl, ns, nm), obj in sorted(self.objects.items())
            if (gv, pl) == (group_version, plural)
            and (not namespace or ns == namespace)
            and (not name or nm == name)
            and all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]

    def discovery(self, path: str) -> Any:
        """Discovery and OpenAPI v3 documents (None: not a discovery path)."""
        if path == "/version":
            return {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = []
            for group_version in (gv for gv in RESOURCES if "/" in gv):
                name, version = group_version.split("/")
                preferred = {"groupVersion": group_version, "version": version}
                groups.append(
                    {"name": name, "versions": [preferred], "preferredVersion": preferred}
                )
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if path == "/openapi/v3":
            urls = {gv: f"/openapi/v3{self._prefix(gv)}?hash=fake" for gv in RESOURCES}
            return {
                "paths": {self._prefix(gv)[1:]: {"serverRelativeURL": u} for gv, u in urls.items()}
            }
        if path.startswith("/openapi/v3/"):
            group_version = path.removeprefix("/openapi/v3/").split("/", 1)[1]
            return self._openapi(group_version) if group_version in RESOURCES else None
        group_version = path.removeprefix("/api/").removeprefix("/apis/")
        if group_version in RESOURCES:
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources = [
                {"name": plural, "singularName": kind.lower(), "namespaced": namespaced,
                 "kind": kind, "verbs": verbs}
                for plural, kind, namespaced in RESOURCES[group_version]
            ]  # fmt: skip
            return {
                "kind": "APIResourceList",
                "groupVersion": group_version,
                "resources": resources,
            }
        return None

    @staticmethod
    def _prefix(group_version: str) -> str:
        return "/api/v1" if group_version == "v1" else f"/apis/{group_version}"

    def _openapi(self, group_version: str) -> dict[str, Any]:
        """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself
        (``fieldValidation`` on PATCH), so that it needs no schema of its own."""
        group, _, version = group_version.rpartition("/")
        paths = {}
        for plural, kind, namespaced in RESOURCES[group_version]:
            where = "/namespaces/{namespace}" if namespaced else ""
            gvk = {"group": group, "version": version, "kind": kind}
            param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
            paths[f"{self._prefix(group_version)}{where}/{plural}/{{name}}"] = {
                "patch": {"x-kubernetes-group-version-kind": gvk, "parameters": [param]}
            }
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
                "paths": paths, "components": {"schemas": {}}}  # fmt: skip


def _route(path: str) -> tuple[str, str, str, str] | None:
    """``/api/v1/namespaces/ns/secrets/name`` -> (``v1``, ``secrets``, ``ns``, ``name``)."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group_version, rest = "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 2 or not rest:
        return None  # subresources (status, portforward ...) are not served
    return group_version, rest[0], namespace, rest[1] if len(rest) > 1 else ""


def _handler(cluster: FakeCluster) -> type:
    import json as jsonlib
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import parse_qs, urlsplit

    import yaml

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, code: int, body: Any) -> None:
            data = jsonlib.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def read_body(self) -> Any:
            raw = self.read_raw()
            content_type = self.headers.get("Content-Type", "")
            if not raw:
                return None
            if "protobuf" in content_type:
                return decode_k8s_protobuf(raw)
            try:
                return jsonlib.loads(raw)  # JSON is what clients send, whatever the type says
            except ValueError:
                return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

        def read_raw(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raw = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    raw += self.rfile.read(size)
                    self.rfile.readline()
            else:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return raw

        def target(self) -> tuple[str, str, str, str, dict[str, list[str]], str, bool] | None:
            url = urlsplit(self.path)
            cluster.requests.append(f"{self.command} {url.path}")
            route = _route(url.path)
            found = cluster.kind(*route[:2]) if route else None
            if route is None or found is None:
                self.read_raw()
                message = "the server could not find the requested resource"
                self.reply(404, api_status(404, "NotFound", message))
                return None
            return (*route, parse_qs(url.query), *found)

        def not_found(self, plural: str, name: str) -> None:
            message = f'{plural} "{name}" not found'
            self.reply(404, api_status(404, "NotFound", message, name=name, kind=plural))

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            document = cluster.discovery(path)
            if document is not None:
                cluster.requests.append(f"GET {path}")
                return self.reply(200, document)
            found = self.target()
            if found is None:
                return
            group_version, plural, namespace, name, query, kind, _ = found
            if query.get("watch", [""])[0] in ("true", "1"):
                return self.watch(group_version, plural, namespace, query, kind)
            with cluster.lock:
                if name:
                    obj = cluster.objects.get((group_version, plural, namespace, name))
                    return self.reply(200, obj) if obj else self.not_found(plural, name)
                items = cluster.matching(group_version, plural, namespace, query)
                version = str(cluster.version)
            self.reply(200, {"kind": f"{kind}List", "apiVersion": group_version,
                             "metadata": {"resourceVersion": version}, "items": items})  # fmt: skip

        def watch(
            self, group_version: str, plural: str, namespace: str, query: Any, kind: str
        ) -> None:
            """A watch stream: initial events and a bookmark if asked, then changes, until the
            client goes, its timeout passes, or the server closes."""
            import time

            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def send(event: dict[str, Any]) -> None:
                data = jsonlib.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            deadline = time.monotonic() + min(float(query.get("timeoutSeconds", ["60"])[0]), 60)
            try:
                with cluster.lock:
                    since = int(query.get("resourceVersion", ["0"])[0] or 0)
                    if query.get("sendInitialEvents", [""])[0] == "true":
                        for obj in cluster.matching(group_version, plural, namespace, query):
                            send({"type": "ADDED", "object": obj})
                        since = cluster.version
                        end = {"k8s.io/initial-events-end": "true"}
                        meta = {"resourceVersion": str(since), "annotations": end}
                        bookmark = {"kind": kind, "apiVersion": group_version, "metadata": meta}
                        send({"type": "BOOKMARK", "object": bookmark})
                    elif since == 0:
                        since = cluster.version
                    while not cluster.closing and time.monotonic() < deadline:
                        for version, change, key, obj in cluster.events:
                            if (
                                version > since
                                and key[:2] == (group_version, plural)
                                and (not namespace or key[2] == namespace)
                            ):
                                send({"type": change, "object": obj})
                        since = cluster.version
                        cluster.lock.wait(0.2)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def do_POST(self) -> None:
            found = self.target()
            if found is None:
                return
            group_version, plural, namespace, _, query, _, namespaced = found
            obj = self.read_body() or {}
            name = obj.get("metadata", {}).get("name", "")
            with cluster.lock:
                if namespaced and ("v1", "namespaces", "", namespace) not in cluster.objects:
                    return self.not_found("namespaces", namespace)
                if name and (group_version, plural, namespace, name) in cluster.objects:
                    message = f'{plural} "{name}" already exists'
                    exists = api_status(409, "AlreadyExists", message, name=name, kind=plural)
                    return self.reply(409, exists)
                if query.get("dryRun"):
                    return self.reply(201, obj)
                self.reply(201, cluster.store(group_version, plural, namespace, obj))

        def do_PUT(self) -> None:
            found = self.target()
            if found is None:
                return
            group_version, plural, namespace, name, _, _, _ = found
            obj = self.read_body() or {}
            with cluster.lock:
                if (group_version, plural, namespace, name) not in cluster.objects:
                    return self.not_found(plural, name)
                self.reply(200, cluster.store(group_version, plural, namespace, obj))

        def do_PATCH(self) -> None:
            import copy

            found = self.target()
            if found is None:
                return
            group_version, plural, namespace, name, _, _, namespaced = found
            apply = "apply-patch" in self.headers.get("Content-Type", "")
            patch = self.read_body() or {}
            with cluster.lock:
                current = cluster.objects.get((group_version, plural, namespace, name))
                if current is None and not apply:
                    return self.not_found(plural, name)
                no_namespace = ("v1", "namespaces", "", namespace) not in cluster.objects
                if current is None and namespaced and no_namespace:
                    return self.not_found("namespaces", namespace)
                merged = merge_patch(copy.deepcopy(current or {}), patch)
                merged.setdefault("metadata", {})["name"] = name
                stored = cluster.store(group_version, plural, namespace, merged)
                self.reply(200 if current else 201, stored)

        def do_DELETE(self) -> None:
            found = self.target()
            if found is None:
                return
            group_version, plural, namespace, name, _, _, _ = found
            self.read_raw()  # DeleteOptions (protobuf from typed clients): not needed
            with cluster.lock:
                obj = cluster.delete((group_version, plural, namespace, name))
            return self.reply(200, obj) if obj else self.not_found(plural, name)

    return Handler


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A writable fake Kubernetes API server (see above); ``KUBECONFIG`` points at it."""
    import threading
    from http.server import ThreadingHTTPServer

    cluster = FakeCluster(tmp_path / "fake-cluster-kubeconfig")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cluster.kubeconfig.touch(mode=0o600)  # helm warns about a group-readable kubeconfig
    cluster.kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {"server": f"http://127.0.0.1:{server.server_port}"},
                    }
                ],
                "users": [{"name": "fake", "user": {"token": "fake"}}],
                "contexts": [
                    {"name": name, "context": {"cluster": "fake", "user": "fake"}}
                    for name in FAKE_CONTEXTS
                ],
                "current-context": "kind-flowlet",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    try:
        yield cluster
    finally:
        with cluster.lock:
            cluster.closing = True
            cluster.lock.notify_all()
        server.shutdown()
        server.server_close()
        thread.join()


# -- a local chart repository with the pinned charts (tiny stand-ins) -----------------------

CRD_TEMPLATE = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {{kind: {kind}, listKind: {kind}List, plural: {plural}, singular: {singular}}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
        description: "{padding}"
"""
# The real kube-prometheus-stack CRDs are megabytes of YAML, fed to kubectl's stdin: so are
# the stand-ins' (Invoke feeds an in_stream one character per 10 ms unless the runner helps).
CRD_PADDING = "x" * 600_000
STAND_IN_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-stand-in
  labels:
    app.kubernetes.io/instance: {{ .Release.Name | quote }}
    helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
data:
  values.json: {{ toJson .Values | quote }}
"""


@dataclass
class ChartRepos:
    """What ``chart_repos`` yields: one local HTTP chart repository per configured name."""

    base_url: str
    root: Path

    def url(self, repo: str) -> str:
        return f"{self.base_url}/{repo}"

    def invoke_yaml(self) -> str:
        """A config that points every ``monitoring.repos`` entry at the local repositories."""
        repos = {repo: self.url(repo) for repo in dict.fromkeys(r.split("/")[0] for r in CHARTS)}
        return json.dumps({"monitoring": {"repos": repos}})


@pytest.fixture(scope="session")
def chart_repos(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The four pinned charts (names and versions as in tasks/monitoring/settings.py) as tiny
    stand-ins (one ConfigMap each; kube-prometheus-stack also ships the Prometheus Operator
    CRDs in ``crds/``), packaged by the real ``helm package`` and indexed by ``helm repo index``,
    served over HTTP on 127.0.0.1: ``helm repo add/update/search/show`` work offline."""
    import subprocess
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import yaml

    from tasks.monitoring.settings import SCHEMA

    helm = REPO / ".tools" / "bin" / "helm"
    if not helm.exists():
        from conftest import need

        need("helm")
        helm = Path("helm")
    work = tmp_path_factory.mktemp("chart-repos")
    served = work / "served"

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    server.daemon_threads = True
    base_url = f"http://127.0.0.1:{server.server_port}"
    env = {"HOME": str(work), "PATH": "/usr/bin:/bin"}
    for entry in SCHEMA.defaults()["components"].values():
        source = work / "src" / entry["chart"]
        (source / "templates").mkdir(parents=True)
        chart = {"apiVersion": "v2", "name": entry["chart"], "version": entry["version"],
                 "appVersion": "stand-in", "description": "a test stand-in"}  # fmt: skip
        (source / "Chart.yaml").write_text(yaml.safe_dump(chart))
        (source / "templates" / "stand-in.yaml").write_text(STAND_IN_TEMPLATE)
        if entry["chart"] == "kube-prometheus-stack":
            (source / "crds").mkdir()
            for kind in ("ServiceMonitor", "PrometheusRule"):
                plural = kind.lower() + "s"
                text = CRD_TEMPLATE.format(
                    kind=kind, plural=plural, singular=kind.lower(), padding=CRD_PADDING
                )
                (source / "crds" / f"{plural}.yaml").write_text(text)
        target = served / entry["repo"]
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(helm), "package", str(source), "-d", str(target)], env=env,
                       check=True, capture_output=True, timeout=60)  # fmt: skip
    for target in served.iterdir():
        index = [str(helm), "repo", "index", str(target), "--url", f"{base_url}/{target.name}"]
        subprocess.run(index, env=env, check=True, capture_output=True, timeout=60)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ChartRepos(base_url=base_url, root=served)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def local_chart_repos(chart_repos: ChartRepos) -> ChartRepos:
    """``~/.invoke.yaml`` (HOME is the test's own) points ``monitoring.repos`` at the local
    chart repositories: README's commands then run exactly as written."""
    import os

    (Path(os.environ["HOME"]) / ".invoke.yaml").write_text(chart_repos.invoke_yaml())
    return chart_repos


# -- recording wrappers: helm and kubectl first on PATH ----------------------------------------

WRAPPER = '''#!{python}
"""Test wrapper of {tool}: log argv, environment and pid, then exec the real {tool}
({real}); ``kubectl port-forward`` is answered here (a fake API server cannot stream)."""
import hashlib, json, os, signal, sys, time

argv = sys.argv[1:]
secret_hash = {secret_hash!r}
leaked = [k for k, v in os.environ.items() if hashlib.sha256(v.encode()).hexdigest() == secret_hash]
record = {{"tool": {tool!r}, "argv": argv, "env": sorted(os.environ), "leaked": leaked,
          "pid": os.getpid(), "pgid": os.getpgid(0), "time": time.time()}}
with open({log!r}, "a") as log:
    log.write(json.dumps(record) + "\\n")
if {tool!r} == "kubectl" and "port-forward" in argv:
    local, remote = argv[-1].split(":")
    signal.signal(signal.SIGINT, lambda *a: sys.exit(0))  # kubectl: Ctrl-C ends it cleanly
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # (set before the line that says
    print(f"Forwarding from 127.0.0.1:{{local}} -> {{remote}}", flush=True)  # it is ready)
    while True:
        time.sleep(0.05)
os.execv({real!r}, [{real!r}, *argv])
'''


@dataclass
class Recorder:
    """What ``recording_tools`` yields: the wrapper directory (put it first on PATH) and the
    calls the wrappers logged."""

    bin: Path
    log: Path

    def path(self) -> str:
        import os

        return f"{self.bin}{os.pathsep}{os.environ['PATH']}"

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in rows if tool in (None, r["tool"])]

    def argvs(self, tool: str | None = None) -> list[str]:
        """Each call as a command line (``helm repo list -o json``)."""
        import shlex

        return [shlex.join([r["tool"], *r["argv"]]) for r in self.calls(tool)]


SECRET = "Gr4fana-test-Pa55w0rd"  # nosec B105: the test's Grafana admin password


@pytest.fixture
def recording_tools(tmp_path: Path) -> Callable[..., Recorder]:
    """Make ``helm`` and ``kubectl`` wrappers that log every call (argv, the names of the
    environment variables it got, whether any held the test password ``SECRET``) and exec the
    real binaries (``.tools``; ``helm=`` another helm): what a command ran, as run."""
    import hashlib
    import shutil
    import sys

    from conftest import need

    def make(helm: Path | None = None) -> Recorder:
        need("helm", "kubectl")
        recorder = Recorder(bin=tmp_path / "recording-bin", log=tmp_path / "recorded.jsonl")
        recorder.bin.mkdir(exist_ok=True)
        for tool in ("helm", "kubectl"):
            real = helm if tool == "helm" and helm is not None else shutil.which(tool)
            assert real is not None
            script = recorder.bin / tool
            script.write_text(
                WRAPPER.format(
                    python=sys.executable,
                    tool=tool,
                    real=str(Path(real).resolve()),
                    log=str(recorder.log),
                    secret_hash=hashlib.sha256(SECRET.encode()).hexdigest(),
                )
            )
            script.chmod(0o755)
        return recorder

    return make
