"""Schema validation of rendered objects against a Kubernetes version (kubernetes-validate)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    source: str
    kind: str
    name: str
    message: str
    skipped: bool = False  # an allowlisted CRD kind with no schema

    def __str__(self) -> str:
        return f"{self.source}: {self.kind}/{self.name}: {self.message}"


def load_objects(text: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a rendered stream."""
    import yaml  # lazy: keep `inv --list` light

    return [doc for doc in yaml.safe_load_all(text) if doc]


def validate_objects(
    objects: Iterable[Mapping[str, Any]],
    *,
    source: str,
    kubernetes_version: str,
    crd_allowlist: Sequence[str],
) -> list[Finding]:
    """Validate each object strictly (unknown fields fail); no schema fails unless allowlisted."""
    import kubernetes_validate  # lazy: heavy (jsonschema, referencing)

    findings = []
    for obj in objects:
        kind = str(obj.get("kind", "?"))
        name = str((obj.get("metadata") or {}).get("name", "?"))
        try:
            kubernetes_validate.validate(dict(obj), kubernetes_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as err:
            allowed = kind in crd_allowlist
            message = "no schema (allowlisted CRD kind)" if allowed else err.message
            findings.append(Finding(source, kind, name, message, skipped=allowed))
        except kubernetes_validate.ValidationError as err:
            where = ".".join(str(p) for p in err.path) or "(root)"
            findings.append(Finding(source, kind, name, f"{where}: {err.message}"))
    return findings
