"""The fallback diff (no helm-diff plugin): ``helm get manifest`` against ``helm template``,
with every Secret value redacted unless ``--show-secrets``."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "(redacted)"
REDACTED_CHANGED = "(redacted, changed)"


def _documents(text: str) -> list[str]:
    return [d.strip() + "\n" for d in re.split(r"(?m)^---\s*$", text) if d.strip()]


def redact_secrets(current: str, rendered: str) -> tuple[str, str]:
    """Both manifests with every Secret's ``data``/``stringData`` value replaced by a marker;
    a value that differs between the two is marked changed on the new side."""
    import yaml  # lazy: keep `inv --list` light

    def secrets_of(text: str) -> dict[str, dict[str, Any]]:
        found = {}
        for doc in _documents(text):
            obj = yaml.safe_load(doc)
            if isinstance(obj, dict) and obj.get("kind") == "Secret":
                found[str((obj.get("metadata") or {}).get("name"))] = obj
        return found

    old_secrets = secrets_of(current)

    def redact(text: str, *, new: bool) -> str:
        out = []
        for doc in _documents(text):
            obj = yaml.safe_load(doc)
            if not (isinstance(obj, dict) and obj.get("kind") == "Secret"):
                out.append(doc)
                continue
            name = str((obj.get("metadata") or {}).get("name"))
            before = old_secrets.get(name) or {}
            for field in ("data", "stringData"):
                values = obj.get(field) or {}
                old = before.get(field) or {}
                obj[field] = {
                    key: REDACTED_CHANGED if new and old.get(key) != value else REDACTED
                    for key, value in values.items()
                } or None
                if obj[field] is None:
                    obj.pop(field)
            out.append(yaml.safe_dump(obj, sort_keys=False))
        return "---\n".join(out)

    return redact(current, new=False), redact(rendered, new=True)


def manifest_diff(current: str, rendered: str, *, show_secrets: bool = False) -> str:
    """Unified diff of the deployed manifest and the one to deploy ("" when equal)."""
    import difflib

    if not show_secrets:
        current, rendered = redact_secrets(current, rendered)
    lines = difflib.unified_diff(
        current.splitlines(keepends=True),
        rendered.splitlines(keepends=True),
        fromfile="deployed (helm get manifest)",
        tofile="to deploy (helm template)",
    )
    return "".join(lines)
