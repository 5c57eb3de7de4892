"""A small in-memory Kubernetes API server for the real helm and kubectl binaries.

It is not a cluster: no scheduler, no pods, no admission. It is an API server that stores
objects and answers the way kube-apiserver 1.33 does for what this toolkit's commands use:

- discovery (``/version``, ``/api``, ``/apis``, each group version, with short names such as
  ``hpa``, ``pdb``, ``sts`` and ``crd``: core, apps with StatefulSets and DaemonSets,
  CustomResourceDefinitions, the Prometheus Operator's kinds ...), and OpenAPI v3 documents
  just detailed enough to tell kubectl and helm that the server validates fields itself
  (``fieldValidation``), so they send objects as they are instead of downloading schemas;
- bodies as JSON, YAML or the Kubernetes protobuf of Secrets, ConfigMaps and Namespaces
  (client-go's typed clients: Helm's release storage, ``kubectl create secret``);
- create (409 ``AlreadyExists``), get, list (label and field selectors), watch (chunked
  events; initial events and a bookmark for a streaming list), replace (409 on a stale
  ``resourceVersion``), delete (with ``preconditions``);
- patches: server-side apply (``application/apply-patch+yaml``) with field managers and
  409 conflicts naming them exactly as kube-apiserver does (``--force-conflicts`` takes the
  fields over), strategic merge patch (lists of named items merged by ``name``), JSON merge
  patch; other writers (``kubectl scale``, ``kubectl edit``) become field managers too;
- a "controller" that makes each written Deployment rolled out and available at once (status,
  and a ReplicaSet owned by it, which Helm 3's waiter looks for), gives Services a cluster IP,
  PodDisruptionBudgets a healthy status and CustomResourceDefinitions the Established
  condition (Helm waits for it); Jobs (Helm hooks) run until a client watches them, then end
  ``Complete`` or, for a name given to ``fail_job``, ``Failed``; ``hold_rollout`` keeps a
  Deployment progressing;
  ``put(obj, controller=False)`` seeds an object with the status it was captured with;
- ``/scale`` of Deployments (``kubectl scale``); a Secret's ``stringData`` merged into
  ``data``.

``requests`` records ``METHOD path`` of every request. The fixtures (``fake_apiserver``,
``cluster``) are in tests/fixtures_kube.py; the deploy and monitoring tests use them.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Resource:
    group_version: str
    plural: str
    kind: str
    namespaced: bool = True
    short: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()


RESOURCES = [
    Resource("v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    Resource("v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("v1", "secrets", "Secret"),
    Resource("v1", "services", "Service", True, ("svc",), ("status",)),
    Resource("v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource("v1", "pods", "Pod", True, ("po",), ("status", "log")),
    Resource("v1", "events", "Event", True, ("ev",)),
    Resource("v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    Resource("v1", "limitranges", "LimitRange", True, ("limits",)),
    Resource("apps/v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale")),
    Resource("apps/v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale")),
    Resource("apps/v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale")),
    Resource("apps/v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    Resource("batch/v1", "jobs", "Job", True, (), ("status",)),
    Resource("networking.k8s.io/v1", "ingresses", "Ingress", True, ("ing",), ("status",)),
    Resource("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    Resource(
        "policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)
    ),
    Resource(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("hpa",),
        ("status",),
    ),
    Resource("coordination.k8s.io/v1", "leases", "Lease"),
    Resource(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        ("status",),
    ),
    Resource("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor", True, ("smon",)),
    Resource("monitoring.coreos.com/v1", "prometheusrules", "PrometheusRule", True, ("promrule",)),
]
BY_PATH = {(r.group_version, r.plural): r for r in RESOURCES}
# Fields the server owns: never part of a field manager's set.
SERVER_FIELDS = {"apiVersion", "kind", "status"}
SERVER_METADATA = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


# -- field paths (server-side apply) --------------------------------------------------------------


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value)
    )


def leaves(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf; lists of named items are keyed by name, other lists atomic."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from leaves(value, (*prefix, key))
    elif _named_list(obj):
        for item in obj:
            key = f'[name="{item["name"]}"]'
            for sub, value in leaves({k: v for k, v in item.items()}, (*prefix, key)):
                yield sub, value
    else:
        yield prefix, obj


def owned_leaves(obj: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    body = {k: v for k, v in obj.items() if k not in SERVER_FIELDS}
    meta = {k: v for k, v in (body.pop("metadata", None) or {}).items() if k not in SERVER_METADATA}
    if meta:
        body["metadata"] = meta
    return dict(leaves(body))


def path_text(path: tuple[str, ...]) -> str:
    return "".join(p if p.startswith("[") else "." + p for p in path)


def get_path(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if key.startswith("["):
            name = key[len('[name="') : -2]
            obj = next(
                (i for i in obj or [] if isinstance(i, dict) and i.get("name") == name), None
            )
        elif isinstance(obj, dict):
            obj = obj.get(key)
        else:
            return None
        if obj is None:
            return None
    return obj


def merge_named(current: list[Any], patch: list[Any]) -> list[Any]:
    """Strategic merge of two lists of named items (order of the patch, then the rest)."""
    by_name = {i["name"]: i for i in current if isinstance(i, dict) and "name" in i}
    merged = []
    for item in patch:
        if item.get("$patch") == "delete":
            by_name.pop(item.get("name"), None)
            continue
        base = by_name.pop(item["name"], None)
        merged.append(merge(base, item, strategic=True) if base is not None else strip(item))
    return merged + list(by_name.values())


def strip(value: Any) -> Any:
    """A patch value without strategic-merge directives ($setElementOrder, $patch ...)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def merge(current: Any, patch: Any, *, strategic: bool = False) -> Any:
    """JSON merge patch (null deletes); with ``strategic``, named lists merge by name."""
    if not isinstance(patch, dict) or not isinstance(current, dict):
        return copy.deepcopy(strip(patch))
    result = copy.deepcopy(current)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif strategic and _named_list(value) and _named_list(result.get(key)):
            result[key] = merge_named(result[key], value)
        else:
            result[key] = merge(result.get(key), value, strategic=strategic)
    return result


def remove_path(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    parent: Any = get_path(obj, path[:-1]) if len(path) > 1 else obj
    last = path[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and last.startswith("["):
        name = last[len('[name="') : -2]
        parent[:] = [i for i in parent if not (isinstance(i, dict) and i.get("name") == name)]


# -- label and field selectors --------------------------------------------------------------------


def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in parts + [current] if p.strip()]


def matches_labels(labels: dict[str, str], selector: str) -> bool:
    for term in _split_selector(selector):
        if " notin " in term or " in " in term:
            key, op, values = term.partition(" notin " if " notin " in term else " in ")
            choices = {v.strip() for v in values.strip().strip("()").split(",")}
            inside = labels.get(key.strip()) in choices
            if inside != (op.strip() == "in"):
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def matches_fields(obj: dict[str, Any], selector: str) -> bool:
    for term in _split_selector(selector):
        negate = "!=" in term
        key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
        actual = get_path(obj, tuple(key.strip().split(".")))
        if (str(actual) == value.strip()) == negate:
            return False
    return True


# -- the store ------------------------------------------------------------------------------------

Key = tuple[str, str, str, str]  # group version, plural, namespace ("" for cluster), name


class Store:
    """Objects, their field managers, and the event log watches read."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[Key, dict[str, Any]] = {}
        # key -> {manager entry (manager, operation, apiVersion, subresource): {path: value}}
        self.managers: dict[Key, dict[tuple[str, str, str, str], set[tuple[str, ...]]]] = {}
        self.events: list[tuple[int, str, Key, dict[str, Any]]] = []
        self.revision = 1000
        self.held_rollouts: set[tuple[str, str]] = set()  # (namespace, deployment name)
        self.failing_jobs: set[tuple[str, str]] = set()  # (namespace, job name)
        self.cluster_ips = 0

    def next_revision(self) -> str:
        self.revision += 1
        return str(self.revision)

    def record(self, kind: str, key: Key, obj: dict[str, Any]) -> None:
        self.events.append((int(obj["metadata"]["resourceVersion"]), kind, key, copy.deepcopy(obj)))
        self.changed.notify_all()

    # writes ------------------------------------------------------------------------------

    def create(
        self,
        resource: Resource,
        namespace: str,
        obj: dict[str, Any],
        manager: str,
        controller: bool = True,
    ) -> dict[str, Any]:
        """Store a new object; ``controller=False``: as given (a sample's status kept)."""
        with self.lock:
            name = (obj.get("metadata") or {}).get("name") or ""
            if not name and (obj.get("metadata") or {}).get("generateName"):
                name = (
                    obj["metadata"]["generateName"]
                    + hashlib.sha1(str(time.time()).encode()).hexdigest()[:5]
                )
            if not name:
                raise ApiError(
                    422, "Invalid", f"{resource.kind} is invalid: metadata.name: Required value"
                )
            key = (
                resource.group_version,
                resource.plural,
                namespace if resource.namespaced else "",
                name,
            )
            if resource.namespaced and ("v1", "namespaces", "", namespace) not in self.objects:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            if key in self.objects:
                group = resource.group_version.rpartition("/")[0]
                plural = f"{resource.plural}.{group}" if group else resource.plural
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{plural} "{name}" already exists',
                    {"name": name, "group": group, "kind": resource.plural},
                )
            stored = copy.deepcopy(obj)
            meta = stored.setdefault("metadata", {})
            meta.update(
                name=name,
                uid=hashlib.md5(f"{key}{time.time()}".encode()).hexdigest(),
                resourceVersion=self.next_revision(),
                creationTimestamp=now(),
                generation=1,
            )
            if resource.namespaced:
                meta["namespace"] = namespace
            stored["apiVersion"], stored["kind"] = resource.group_version, resource.kind
            self.defaults(resource, stored)
            self.objects[key] = stored
            self.own(
                key, (manager, "Update", resource.group_version, ""), set(owned_leaves(stored))
            )
            if controller:
                self.reconcile(resource, key)
            self.record("ADDED", key, self.objects[key])
            return self.objects[key]

    def defaults(self, resource: Resource, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {}) if resource.kind in ("Deployment", "Service") else None
        if resource.kind == "Deployment" and spec is not None:
            spec.setdefault("replicas", 1)
        if resource.kind == "Service" and spec is not None and not spec.get("clusterIP"):
            self.cluster_ips += 1
            spec["clusterIP"] = f"10.96.0.{self.cluster_ips}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        if resource.kind == "Namespace":
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj["status"] = {"phase": "Active"}
        if resource.kind == "Secret" and "stringData" in obj:  # write-only: merged into data
            extra = {
                k: base64.b64encode(v.encode()).decode() for k, v in obj.pop("stringData").items()
            }
            obj["data"] = {**(obj.get("data") or {}), **extra}

    def own(self, key: Key, entry: tuple[str, str, str, str], paths: set[tuple[str, ...]]) -> None:
        """``entry`` now owns ``paths`` (taken from everyone else)."""
        managers = self.managers.setdefault(key, {})
        for other, owned in managers.items():
            if other != entry:
                owned -= paths
        managers.setdefault(entry, set()).update(paths)
        for other in [m for m, owned in managers.items() if not owned]:
            del managers[other]

    def replace(
        self,
        resource: Resource,
        key: Key,
        obj: dict[str, Any],
        manager: str,
        subresource: str = "",
        check_version: bool = True,
    ) -> dict[str, Any]:
        with self.lock:
            current = self.objects.get(key)
            if current is None:
                raise self.not_found(resource, key)
            wanted = (obj.get("metadata") or {}).get("resourceVersion")
            if check_version and wanted and wanted != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {self.qualified(resource)} "{key[3]}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again",
                    {
                        "name": key[3],
                        "group": resource.group_version.rpartition("/")[0],
                        "kind": resource.plural,
                    },
                )
            new = copy.deepcopy(obj)
            meta = new.setdefault("metadata", {})
            for field in ("name", "uid", "creationTimestamp", "namespace", "generation"):
                if field in current["metadata"]:
                    meta[field] = current["metadata"][field]
            new["apiVersion"], new["kind"] = resource.group_version, resource.kind
            if subresource != "status" and "status" in current:
                new["status"] = current["status"]
            self.defaults(resource, new)
            before, after = owned_leaves(current), owned_leaves(new)
            changed = {p for p, v in after.items() if before.get(p, object()) != v}
            gone = set(before) - set(after)
            for owned in self.managers.get(key, {}).values():
                owned -= gone
            self.own(key, (manager, "Update", resource.group_version, subresource), changed)
            return self.store(resource, key, current, new)

    def store(
        self, resource: Resource, key: Key, current: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        spec_changed = current.get("spec") != new.get("spec")
        new["metadata"]["generation"] = current["metadata"].get("generation", 1) + spec_changed
        if new == current and not spec_changed:
            return current
        new["metadata"]["resourceVersion"] = self.next_revision()
        self.objects[key] = new
        self.reconcile(resource, key)
        self.record("MODIFIED", key, self.objects[key])
        return self.objects[key]

    def apply(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        manager: str,
        force: bool,
    ) -> dict[str, Any]:
        """Server-side apply by ``manager``: conflicts with other managers unless ``force``."""
        with self.lock:
            key = (
                resource.group_version,
                resource.plural,
                namespace if resource.namespaced else "",
                name,
            )
            applied = owned_leaves(patch)
            entry = (manager, "Apply", "", "")
            current = self.objects.get(key)
            if current is None:
                obj = copy.deepcopy(patch)
                obj.setdefault("metadata", {})["name"] = name
                created = self.create(resource, namespace, obj, manager)
                self.managers[key] = {entry: set(applied)}
                return created
            conflicts = []
            for other, owned in sorted(self.managers.get(key, {}).items()):
                if other[0] == manager:
                    continue
                for path in sorted(owned & set(applied)):
                    if get_path(current, path) != applied[path]:
                        conflicts.append((other, path))
            if conflicts and not force:
                raise self.conflict_error(resource, conflicts)
            previous = set(self.managers.get(key, {}).get(entry, set()))
            new = merge(current, strip(patch), strategic=True)
            for path in previous - set(applied):  # no longer applied by anyone: removed
                if not any(path in o for m, o in self.managers[key].items() if m != entry):
                    remove_path(new, path)
            self.managers.setdefault(key, {})[entry] = set()
            self.own(key, entry, set(applied))
            self.defaults(resource, new)
            return self.store(resource, key, current, new)

    def conflict_error(self, resource: Resource, conflicts: list[Any]) -> ApiError:
        def show(entry: tuple[str, str, str, str]) -> str:
            manager, operation, api_version, subresource = entry
            text = json.dumps(manager)
            if subresource:
                text += f" with subresource {json.dumps(subresource)}"
            return f"{text} using {api_version}" if operation == "Update" else text

        causes = [
            {
                "type": "FieldManagerConflict",
                "message": f"conflict with {show(m)}",
                "field": path_text(p),
            }
            for m, p in conflicts
        ]
        if len(conflicts) == 1:
            ((manager, path),) = conflicts
            message = (
                f"Apply failed with 1 conflict: conflict with {show(manager)}: {path_text(path)}"
            )
        else:
            lines = []
            for manager in sorted({m for m, _ in conflicts}):
                lines.append(f"conflicts with {show(manager)}:")
                lines += [f"- {path_text(p)}" for m, p in conflicts if m == manager]
            message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
        return ApiError(409, "Conflict", message, {"causes": causes})

    def delete(self, resource: Resource, key: Key, preconditions: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            current = self.objects.get(key)
            if current is None:
                raise self.not_found(resource, key)
            for field in ("resourceVersion", "uid"):
                wanted = preconditions.get(field)
                if wanted and wanted != current["metadata"].get(field):
                    raise ApiError(
                        409,
                        "Conflict",
                        f"Operation cannot be fulfilled on {self.qualified(resource)} "
                        f'"{key[3]}": Precondition failed: {field[0].upper()}{field[1:]} in '
                        f"precondition: {wanted}, {field[0].upper()}{field[1:]} in object meta: "
                        f"{current['metadata'].get(field)}",
                    )
            del self.objects[key]
            self.managers.pop(key, None)
            current = copy.deepcopy(current)
            current["metadata"]["resourceVersion"] = self.next_revision()
            self.record("DELETED", key, current)
            if resource.kind == "Deployment":  # garbage collection of its ReplicaSets
                for rs_key in [
                    k
                    for k in self.objects
                    if k[1] == "replicasets" and k[2] == key[2] and k[3].startswith(key[3] + "-")
                ]:
                    self.objects.pop(rs_key)
            return current

    def qualified(self, resource: Resource) -> str:
        group = resource.group_version.rpartition("/")[0]
        return f"{resource.plural}.{group}" if group else resource.plural

    def not_found(self, resource: Resource, key: Key) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{self.qualified(resource)} "{key[3]}" not found',
            {
                "name": key[3],
                "group": resource.group_version.rpartition("/")[0],
                "kind": resource.plural,
            },
        )

    # the "controllers" ---------------------------------------------------------------------

    def reconcile(self, resource: Resource, key: Key) -> None:
        obj = self.objects[key]
        if resource.kind == "Deployment":
            self.roll_out(key, obj)
        elif resource.kind == "Job" and "status" not in obj:
            obj["status"] = {
                "startTime": now(),
                "active": 1,
                "ready": 0,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
        elif resource.kind == "CustomResourceDefinition":  # served at once: Established
            spec = obj.get("spec") or {}
            obj["status"] = {
                "conditions": [
                    {
                        "type": kind,
                        "status": "True",
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": now(),
                    }
                    for kind, reason, message in (
                        ("NamesAccepted", "NoConflicts", "no conflicts found"),
                        (
                            "Established",
                            "InitialNamesAccepted",
                            "the initial names have been accepted",
                        ),
                    )
                ],
                "acceptedNames": spec.get("names") or {},
                "storedVersions": [
                    v["name"] for v in spec.get("versions") or [] if v.get("storage")
                ],
            }
        elif resource.kind == "PodDisruptionBudget":
            minimum = (obj.get("spec") or {}).get("minAvailable", 1)
            healthy = minimum if isinstance(minimum, int) else 1
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "currentHealthy": healthy,
                "desiredHealthy": healthy,
                "disruptionsAllowed": 0,
                "expectedPods": healthy,
                "conditions": [
                    {
                        "type": "DisruptionAllowed",
                        "status": "False",
                        "reason": "InsufficientPods",
                        "lastTransitionTime": now(),
                        "message": "",
                    }
                ],
            }

    def finish_job(self, key: Key, job: dict[str, Any]) -> None:
        """End a running Job (a MODIFIED event): it succeeds, or fails when ``failing_jobs``
        names it. A Job is created running and ends once a client watches it (Helm waits for a
        hook Job by list-then-watch; ending it at creation would end Helm 3's wait before its
        watch started, which client-go then logs as a failed watch). The status is
        a finished Job's as kube-apiserver 1.33 shows it: the terminal conditions ``Complete``
        (after ``SuccessCriteriaMet``) or ``Failed`` (after ``FailureTarget``), with the reason
        ``BackoffLimitExceeded``, both with status "True"; see
        https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions
        and the JobStatus API (https://kubernetes.io/docs/reference/kubernetes-api/
        workload-resources/job-v1/#JobStatus). Helm waits for a hook Job's terminal condition
        (Helm 3 reads Complete/Failed; Helm 4's kstatus reads the same conditions)."""
        at = now()
        started = (job.get("status") or {}).get("startTime", at)
        failed = (key[2], key[3]) in self.failing_jobs
        if failed:
            limit = int((job.get("spec") or {}).get("backoffLimit", 6))
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            types = ("FailureTarget", "Failed")
            counts = {"failed": limit + 1}
        else:
            reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
            types = ("SuccessCriteriaMet", "Complete")
            counts = {"succeeded": 1}
        job["status"] = {
            "startTime": started,
            **({} if failed else {"completionTime": at}),
            "active": 0,
            "ready": 0,
            "terminating": 0,
            **counts,
            "uncountedTerminatedPods": {},
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": at,
                    "lastTransitionTime": at,
                }
                for kind in types
            ],
        }
        job["metadata"]["resourceVersion"] = self.next_revision()
        self.record("MODIFIED", key, job)

    def roll_out(self, key: Key, deployment: dict[str, Any]) -> None:
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = copy.deepcopy(spec.get("template") or {})
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        namespace, name = key[2], key[3]
        held = (namespace, name) in self.held_rollouts
        ready = 0 if held else replicas
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = digest
        rs_name = f"{name}-{digest}"
        rs_key = ("apps/v1", "replicasets", namespace, rs_name)
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
        labels = dict(template["metadata"]["labels"])
        for other in [
            k
            for k in self.objects
            if k[1] == "replicasets"
            and k[2] == namespace
            and k[3].startswith(name + "-")
            and k != rs_key
        ]:
            self.objects[other]["spec"]["replicas"] = 0
            self.objects[other]["status"] = {"replicas": 0, "observedGeneration": 1}
        self.objects[rs_key] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": labels,
                "uid": f"rs-{digest}",
                "resourceVersion": self.next_revision(),
                "generation": 1,
                "creationTimestamp": now(),
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": deployment["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": {
                "replicas": replicas,
                "fullyLabeledReplicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": 1,
            },
        }
        progressing = (
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{rs_name}" is progressing.',
            }
            if held
            else {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
            }
        )
        available = {
            "type": "Available",
            "status": "False" if held else "True",
            "reason": "MinimumReplicasUnavailable" if held else "MinimumReplicasAvailable",
            "message": (
                "Deployment does not have minimum availability."
                if held
                else "Deployment has minimum availability."
            ),
        }
        for condition in (progressing, available):
            condition.update(lastUpdateTime=now(), lastTransitionTime=now())
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
            "conditions": [available, progressing],
        }


# -- protobuf request bodies (client-go's typed clients: Helm's storage, kubectl create) --------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def proto_fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited as bytes."""
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ApiError(415, "UnsupportedMediaType", f"protobuf wire type {wire} not supported")
        yield number, value


def _map_entry(data: bytes) -> tuple[str, bytes]:
    fields = dict(proto_fields(data))
    return fields.get(1, b"").decode(), fields.get(2, b"")


# kind -> {field number: (JSON field, how)}: "text", "bool", "bytes" (a map of base64 values)
# or "strings" (a map of text values); field 1 is always the ObjectMeta.
PROTO_KINDS: dict[str, dict[int, tuple[str, str]]] = {
    "Namespace": {},
    "Secret": {
        2: ("data", "bytes"),
        3: ("type", "text"),
        4: ("stringData", "strings"),
        5: ("immutable", "bool"),
    },
    "ConfigMap": {2: ("data", "strings"), 3: ("binaryData", "bytes"), 4: ("immutable", "bool")},
}
META_TEXT = {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}
META_MAPS = {11: "labels", 12: "annotations"}


def decode_protobuf(data: bytes) -> dict[str, Any]:
    """A ``k8s\\0``-framed protobuf Secret, ConfigMap or Namespace (a runtime.Unknown, as typed
    clients send them) -> its JSON form."""
    if not data.startswith(b"k8s\x00"):
        raise ApiError(415, "UnsupportedMediaType", "not a Kubernetes protobuf envelope")
    envelope = dict(proto_fields(data[4:]))
    type_meta = dict(proto_fields(envelope.get(1, b"")))
    kind = type_meta.get(2, b"").decode()
    fields = PROTO_KINDS.get(kind)
    if fields is None:
        raise ApiError(415, "UnsupportedMediaType", f"protobuf {kind} is not supported here")
    obj: dict[str, Any] = {
        "apiVersion": type_meta.get(1, b"v1").decode(),
        "kind": kind,
        "metadata": {},
    }
    for number, value in proto_fields(envelope.get(2, b"")):
        if number == 1:
            for field, item in proto_fields(value):
                if field in META_TEXT and item:  # proto2: unset strings are sent empty
                    obj["metadata"][META_TEXT[field]] = item.decode()
                elif field in META_MAPS:
                    key, text = _map_entry(item)
                    obj["metadata"].setdefault(META_MAPS[field], {})[key] = text.decode()
            continue
        if number not in fields:
            continue
        name, how = fields[number]
        if how == "text":
            if value:
                obj[name] = value.decode()
        elif how == "bool":
            obj[name] = bool(value)
        else:
            key, raw = _map_entry(value)
            shown = base64.b64encode(raw).decode() if how == "bytes" else raw.decode()
            obj.setdefault(name, {})[key] = shown
    if kind == "Secret":
        obj.setdefault("data", {})
    return obj


def decode_body(content_type: str, data: bytes) -> dict[str, Any]:
    """A request body: Kubernetes protobuf, JSON (what clients send, whatever the type says),
    else YAML."""
    if content_type.startswith("application/vnd.kubernetes.protobuf"):
        return decode_protobuf(data)
    try:
        return json.loads(data or b"{}")  # type: ignore[no-any-return]
    except ValueError:
        pass
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(data, Loader=loader) or {}  # type: ignore[no-any-return]  # nosec B506
    except yaml.YAMLError as err:
        raise ApiError(400, "BadRequest", f"the body is neither JSON nor YAML: {err}") from None


# -- the HTTP server ------------------------------------------------------------------------------


def discovery(path: str) -> dict[str, Any] | None:
    if path == "/version":
        return {
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0",
            "platform": "linux/amd64",
            "goVersion": "go1.24.0",
            "compiler": "gc",
        }
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            ],
        }
    if path == "/apis":
        groups = []
        for gv in dict.fromkeys(r.group_version for r in RESOURCES if "/" in r.group_version):
            name, version = gv.split("/")
            preferred = {"groupVersion": gv, "version": version}
            groups.append({"name": name, "versions": [preferred], "preferredVersion": preferred})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    group_version = path.removeprefix("/api/").removeprefix("/apis/")
    found = [r for r in RESOURCES if r.group_version == group_version]
    if not found or path not in (f"/api/{group_version}", f"/apis/{group_version}"):
        return None
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    resources = []
    for r in found:
        resources.append(
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
                "shortNames": list(r.short),
            }
        )
        for sub in r.subresources:
            kind = "Scale" if sub == "scale" else r.kind
            resources.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def openapi(path: str) -> dict[str, Any] | None:
    """``/openapi/v3`` (the index) and one document per group version: a PATCH operation per
    kind that accepts the ``fieldValidation`` query parameter, nothing else."""
    versions = dict.fromkeys(r.group_version for r in RESOURCES)
    paths = {("api/v1" if gv == "v1" else f"apis/{gv}"): gv for gv in versions}
    if path == "/openapi/v3":
        return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash=fake"} for p in paths}}
    gv = paths.get(path.removeprefix("/openapi/v3/"))
    if gv is None:
        return None
    group, _, version = gv.rpartition("/")
    doc_paths = {}
    for r in (r for r in RESOURCES if r.group_version == gv):
        prefix = f"/{'api' if gv == 'v1' else 'apis'}/{gv}"
        scope = (
            f"{prefix}/namespaces/{{namespace}}/{r.plural}/{{name}}"
            if r.namespaced
            else f"{prefix}/{r.plural}/{{name}}"
        )
        doc_paths[scope] = {
            "patch": {
                "x-kubernetes-group-version-kind": {
                    "group": group,
                    "version": version,
                    "kind": r.kind,
                },
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": doc_paths,
        "components": {"schemas": {}},
    }


def parse_path(path: str) -> tuple[Resource, str, str, str] | None:
    """``(resource, namespace, name, subresource)`` of an object or collection URL."""
    if path.startswith("/api/v1/"):
        group_version, rest = "v1", path[len("/api/v1/") :]
    elif path.startswith("/apis/"):
        parts = path[len("/apis/") :].split("/", 2)
        if len(parts) < 3:
            return None
        group_version, rest = f"{parts[0]}/{parts[1]}", parts[2]
    else:
        return None
    parts = [p for p in rest.split("/") if p]
    namespace = ""
    if len(parts) >= 3 and parts[0] == "namespaces" and (group_version, parts[2]) in BY_PATH:
        namespace, parts = parts[1], parts[2:]
    resource = BY_PATH.get((group_version, parts[0])) if parts else None
    if resource is None:
        return None
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    return resource, namespace, name, sub


# The project's kube contexts (invoke.yaml), as kubeconfigs of the tests have them.
CONTEXTS = ("kind-flowlet", "flowlet-staging", "flowlet-production")


def kubeconfig_for(
    path: Path, server: str, contexts: tuple[str, ...] = ("fake", *CONTEXTS)
) -> Path:
    """A kubeconfig (mode 0600: helm warns about a group-readable one) whose ``contexts`` all
    point at ``server``; the current context is kind-flowlet."""
    path.touch(mode=0o600)
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts
                ],
                "current-context": "kind-flowlet",
            }
        )
    )
    return path


class FakeKube:
    """The server: ``url``, ``requests``, ``store``; helpers to seed and inspect objects."""

    def __init__(self) -> None:
        self.store = Store()
        self.requests: list[str] = []
        self.bodies: list[tuple[str, str]] = []  # (METHOD path, body) of writes
        self.stopping = threading.Event()
        self.kubeconfig: Any = None  # set by the fixture that writes one
        self.failures: dict[str, int] = {}  # "METHOD path" -> HTTP status to answer with
        self.failures_left: dict[str, int] = {}  # "METHOD path" -> failures still to answer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FakeKube:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        with self.store.lock:
            self.store.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    # seeding and looking --------------------------------------------------------------------

    def put(
        self, obj: dict[str, Any], manager: str = "test", controller: bool = True
    ) -> dict[str, Any]:
        """Create ``obj`` (its namespace too, if missing); ``controller=False`` stores it as
        given, e.g. a workload sample with the status it was captured with."""
        resource = next(r for r in RESOURCES if r.kind == obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace", "")
        with self.store.lock:
            if namespace and ("v1", "namespaces", "", namespace) not in self.store.objects:
                self.namespace(namespace)
            return self.store.create(resource, namespace, obj, manager, controller)

    def namespace(self, name: str) -> None:
        self.store.create(BY_PATH["v1", "namespaces"], "", {"metadata": {"name": name}}, "test")

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = next(r for r in RESOURCES if r.kind == kind)
        key = (
            resource.group_version,
            resource.plural,
            namespace if resource.namespaced else "",
            name,
        )
        with self.store.lock:
            found = self.store.objects.get(key)
            return copy.deepcopy(found) if found is not None else None

    def names(self, kind: str, namespace: str = "") -> list[str]:
        resource = next(r for r in RESOURCES if r.kind == kind)
        with self.store.lock:
            return sorted(
                k[3]
                for k in self.store.objects
                if k[:2] == (resource.group_version, resource.plural) and k[2] == namespace
            )

    def edit(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], manager: str
    ) -> None:
        """Change an object as another client would (``kubectl edit``: an Update manager)."""
        resource = next(r for r in RESOURCES if r.kind == kind)
        key = (resource.group_version, resource.plural, namespace, name)
        with self.store.lock:
            new = merge(self.store.objects[key], patch, strategic=True)
            self.store.replace(resource, key, new, manager, check_version=False)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        resource = next(r for r in RESOURCES if r.kind == kind)
        key = (resource.group_version, resource.plural, namespace, name)
        self.store.delete(resource, key, {})

    def managers(self, kind: str, namespace: str, name: str) -> dict[str, list[str]]:
        """``{manager: [field paths]}`` of an object (for assertions)."""
        resource = next(r for r in RESOURCES if r.kind == kind)
        key = (resource.group_version, resource.plural, namespace, name)
        with self.store.lock:
            return {
                m[0]: sorted(path_text(p) for p in owned)
                for m, owned in self.store.managers.get(key, {}).items()
            }

    def hold_rollout(self, namespace: str, name: str, held: bool = True) -> None:
        """Keep a Deployment's pods unready (a rollout that does not finish) or let it finish."""
        with self.store.lock:
            (self.store.held_rollouts.add if held else self.store.held_rollouts.discard)(
                (namespace, name)
            )
            key = ("apps/v1", "deployments", namespace, name)
            if key in self.store.objects:
                self.store.roll_out(key, self.store.objects[key])
                self.store.objects[key]["metadata"]["resourceVersion"] = self.store.next_revision()
                self.store.record("MODIFIED", key, self.store.objects[key])

    def fail_job(self, namespace: str, name: str, failing: bool = True) -> None:
        """Jobs named ``name`` created from now on fail (BackoffLimitExceeded), or succeed."""
        with self.store.lock:
            (self.store.failing_jobs.add if failing else self.store.failing_jobs.discard)(
                (namespace, name)
            )

    def fail(self, request: str, code: int, times: int = 0) -> None:
        """Answer ``request`` ("GET /api/v1/...") with an error status from now on (``times``:
        only the next N such requests)."""
        with self.store.lock:
            self.failures[request] = code
            if times:
                self.failures_left[request] = times

    def take_failure(self, request: str) -> int:
        """The error status to answer ``request`` with (0: none), counting a limited one."""
        with self.store.lock:
            code = self.failures.get(request, 0)
            if code and request in self.failures_left:
                self.failures_left[request] -= 1
                if not self.failures_left[request]:
                    del self.failures[request], self.failures_left[request]
            return code

    def writes(self) -> list[str]:
        return [r for r in self.requests if not r.startswith("GET ")]

    # the handler ----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stalls

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> bytes:
                if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def handle_any(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
                fake.requests.append(f"{self.command} {url.path}")
                data = self.body()
                if self.command != "GET":
                    fake.bodies.append(
                        (f"{self.command} {url.path}", data.decode("utf-8", "replace"))
                    )
                try:
                    failure = fake.take_failure(f"{self.command} {url.path}")
                    if failure:
                        reasons = {
                            403: "Forbidden",
                            500: "InternalError",
                            503: "ServiceUnavailable",
                        }
                        raise ApiError(
                            failure,
                            reasons.get(failure, "Unknown"),
                            f"the fake API server was told to fail {self.command} {url.path}",
                        )
                    self.route(url.path, query, data)
                except ApiError as err:
                    self.reply(err.code, err.status())
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

            def manager(self, query: dict[str, str]) -> str:
                agent = self.headers.get("User-Agent", "unknown")
                return query.get("fieldManager") or agent.split("/")[0]

            def route(self, path: str, query: dict[str, str], data: bytes) -> None:
                if self.command == "GET":
                    found = discovery(path) or openapi(path)
                    if found is not None:
                        self.reply(200, found)
                        return
                parsed = parse_path(path)
                if parsed is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                resource, namespace, name, sub = parsed
                key = (
                    resource.group_version,
                    resource.plural,
                    namespace if resource.namespaced else "",
                    name,
                )
                store = fake.store
                if self.command == "GET" and not name:
                    if query.get("watch") in ("true", "1"):
                        self.watch(resource, namespace, query)
                    else:
                        self.reply(200, self.listing(resource, namespace, query))
                    return
                if self.command == "GET":
                    with store.lock:
                        obj = store.objects.get(key)
                        if obj is None:
                            raise store.not_found(resource, key)
                        self.reply(200, self.scale(obj) if sub == "scale" else obj)
                    return
                content_type = self.headers.get("Content-Type") or ""
                if self.command == "POST":
                    obj = decode_body(content_type, data)
                    if query.get("dryRun"):
                        self.reply(201, obj)
                        return
                    self.reply(201, store.create(resource, namespace, obj, self.manager(query)))
                    return
                if self.command == "PUT":
                    obj = decode_body(content_type, data)
                    if sub == "scale":
                        obj = self.unscale(key, obj)
                    result = store.replace(resource, key, obj, self.manager(query), sub)
                    self.reply(200, self.scale(result) if sub == "scale" else result)
                    return
                if self.command == "DELETE":
                    # JSON DeleteOptions (preconditions); client-go's protobuf ones are ignored
                    try:
                        options = decode_body(content_type, data) if data.strip() else {}
                    except ApiError:
                        options = {}
                    deleted = store.delete(resource, key, options.get("preconditions") or {})
                    self.reply(
                        200,
                        (
                            deleted
                            if resource.kind != "Lease"
                            else {
                                "kind": "Status",
                                "apiVersion": "v1",
                                "status": "Success",
                                "details": {"name": name, "kind": resource.plural},
                            }
                        ),
                    )
                    return
                if self.command == "PATCH":
                    self.patch(resource, key, sub, query, data)
                    return
                raise ApiError(405, "MethodNotAllowed", f"{self.command} is not supported")

            def patch(
                self, resource: Resource, key: Key, sub: str, query: dict[str, str], data: bytes
            ) -> None:
                store = fake.store
                kind = (self.headers.get("Content-Type") or "").split(";")[0]
                if kind == "application/apply-patch+yaml":
                    patch = decode_body(kind, data)
                    manager = query.get("fieldManager")
                    if not manager:
                        raise ApiError(
                            422, "Invalid", "PATCH: fieldManager is required for apply patch"
                        )
                    force = query.get("force") in ("true", "1")
                    if query.get("dryRun"):
                        self.reply(200, patch)
                        return
                    self.reply(200, store.apply(resource, key[2], key[3], patch, manager, force))
                    return
                patch = json.loads(data or b"{}")
                with store.lock:
                    current = store.objects.get(key)
                    if current is None:
                        raise store.not_found(resource, key)
                    if kind == "application/json-patch+json":
                        raise ApiError(
                            415, "UnsupportedMediaType", "json patch is not supported here"
                        )
                    base = self.scale(current) if sub == "scale" else current
                    new = merge(
                        base, patch, strategic=kind == "application/strategic-merge-patch+json"
                    )
                    if sub == "scale":
                        new = self.unscale(key, new)
                    if query.get("dryRun"):
                        self.reply(200, new)
                        return
                    result = store.replace(
                        resource, key, new, self.manager(query), sub, check_version=False
                    )
                    self.reply(200, self.scale(result) if sub == "scale" else result)

            def scale(self, obj: dict[str, Any]) -> dict[str, Any]:
                meta = obj["metadata"]
                return {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {
                        k: meta[k]
                        for k in (
                            "name",
                            "namespace",
                            "uid",
                            "resourceVersion",
                            "creationTimestamp",
                        )
                        if k in meta
                    },
                    "spec": {"replicas": obj["spec"].get("replicas", 1)},
                    "status": {"replicas": obj.get("status", {}).get("replicas", 0)},
                }

            def unscale(self, key: Key, scale: dict[str, Any]) -> dict[str, Any]:
                new = copy.deepcopy(fake.store.objects[key])
                new["spec"]["replicas"] = (scale.get("spec") or {}).get(
                    "replicas", new["spec"].get("replicas")
                )
                return new

            def client_gone(self) -> bool:
                """The client closed its end of the watch (EOF is readable)."""
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def send_event(self, kind: str, obj: dict[str, Any]) -> None:
                line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()

            def listing(
                self, resource: Resource, namespace: str, query: dict[str, str]
            ) -> dict[str, Any]:
                with fake.store.lock:
                    items = [
                        copy.deepcopy(o)
                        for k, o in sorted(fake.store.objects.items())
                        if self.selected(k, o, resource, namespace, query)
                    ]
                    version = str(fake.store.revision)
                return {
                    "kind": f"{resource.kind}List",
                    "apiVersion": resource.group_version,
                    "metadata": {"resourceVersion": version},
                    "items": items,
                }

            def selected(
                self,
                key: Key,
                obj: dict[str, Any],
                resource: Resource,
                namespace: str,
                query: dict[str, str],
            ) -> bool:
                if key[:2] != (resource.group_version, resource.plural):
                    return False
                if namespace and key[2] != namespace:
                    return False
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if query.get("labelSelector") and not matches_labels(
                    labels, query["labelSelector"]
                ):
                    return False
                return not query.get("fieldSelector") or matches_fields(obj, query["fieldSelector"])

            def watch(self, resource: Resource, namespace: str, query: dict[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                since = int(query.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(query.get("timeoutSeconds") or 300)
                store = fake.store
                if query.get("sendInitialEvents") == "true":  # a streaming list ("watch-list")
                    with store.lock:
                        since = store.revision
                        initial = [
                            ("ADDED", copy.deepcopy(o))
                            for k, o in sorted(store.objects.items())
                            if self.selected(k, o, resource, namespace, query)
                        ]
                    bookmark = {
                        "kind": resource.kind,
                        "apiVersion": resource.group_version,
                        "metadata": {
                            "resourceVersion": str(since),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    }
                    for kind, obj in [*initial, ("BOOKMARK", bookmark)]:
                        self.send_event(kind, obj)
                if resource.kind == "Job":  # the Jobs this client waits for end now
                    with store.lock:
                        for key, obj in list(store.objects.items()):
                            running = not (obj.get("status") or {}).get("conditions")
                            if running and self.selected(key, obj, resource, namespace, query):
                                store.finish_job(key, obj)
                seen = 0  # events before this index are older than ``since``
                while not fake.stopping.is_set() and time.monotonic() < deadline:
                    if self.client_gone():
                        return
                    with store.lock:
                        events = [e for e in store.events[seen:] if e[0] > since]
                        seen = len(store.events)
                        if not events:
                            store.changed.wait(0.5)
                            continue
                    for revision, kind, key, obj in events:
                        since = max(since, revision)
                        if not self.selected(key, obj, resource, namespace, query):
                            continue
                        self.send_event(kind, obj)
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass

        return Handler


# -- Helm's release storage -----------------------------------------------------------------------


def helm_release_secret(release: dict[str, Any]) -> dict[str, Any]:
    """A release as Helm's default (Secret) driver stores it: gzip, base64, in a Secret."""
    payload = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    name, version = release["name"], release["version"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{version}",
            "namespace": release["namespace"],
            "labels": {
                "name": name,
                "owner": "helm",
                "status": release["info"]["status"],
                "version": str(version),
            },
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(payload.encode()).decode()},
    }


def read_helm_release(secret: dict[str, Any]) -> dict[str, Any]:
    payload = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    return json.loads(gzip.decompress(payload))  # type: ignore[no-any-return]
