"""Schema validation of rendered objects against a Kubernetes version (kubernetes-validate)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tasks.core.errors import OpsError


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
    try:
        import kubernetes_validate  # lazy: heavy (jsonschema, referencing)
    except ImportError:
        raise OpsError(
            "deploy.lint needs the kubernetes-validate package (>= 1.33): "
            "pip install 'kubernetes-validate>=1.33' (or the project's dev extra)"
        ) from None

    findings = []
    with _schema_cache(kubernetes_validate):
        for obj in objects:
            findings += _validate_one(
                kubernetes_validate, obj, source, kubernetes_version, crd_allowlist
            )
    return findings


@contextmanager
def _schema_cache(library: Any) -> Iterator[None]:
    """Load each schema file once per run instead of once per object (about 6x faster).

    ``kubernetes_validate.validate`` re-reads the kind's schema and the multi-megabyte
    ``_definitions.json`` on every call through ``utils.schema_contents``; memoize it while we
    validate, and put the original back afterwards. If a future release renames it, we simply
    validate uncached.
    """
    utils: Any = getattr(library, "utils", None)
    original = getattr(utils, "schema_contents", None)
    if utils is None or original is None:
        yield
        return
    utils.schema_contents = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        utils.schema_contents = original


def _validate_one(
    library: Any,
    obj: Mapping[str, Any],
    source: str,
    kubernetes_version: str,
    crd_allowlist: Sequence[str],
) -> list[Finding]:
    kind = str(obj.get("kind", "?"))
    name = str((obj.get("metadata") or {}).get("name", "?"))
    try:
        library.validate(dict(obj), kubernetes_version, strict=True)
    except library.SchemaNotFoundError as err:
        allowed = kind in crd_allowlist
        message = "no schema (allowlisted CRD kind)" if allowed else err.message
        return [Finding(source, kind, name, message, skipped=allowed)]
    except library.ValidationError as err:
        where = ".".join(str(p) for p in err.path) or "(root)"
        return [Finding(source, kind, name, f"{where}: {err.message}")]
    return []
