"""Cheap checks whether the example app's dependencies are installed already.

Python: the requirements file is checked against installed distributions with
importlib.metadata (extras included), no pip run. Node: ``node_modules`` is current when
the lock file's hash matches the stamp setup wrote after ``npm ci``, or when npm's own
hidden lockfile (``node_modules/.package-lock.json``) lists exactly the locked packages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def requirement_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def unmet_requirements(lines: list[str]) -> list[str]:
    """Requirements (``name[extras]>=x; marker``) not satisfied by installed distributions.

    A line this check cannot judge (pip options, URLs) counts as unmet, so pip decides.
    """
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pragma: no cover - packaging is a declared dependency
        return list(lines)
    from importlib import metadata

    unmet = []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            unmet.append(line)
            continue
        if req.url or (req.marker is not None and not req.marker.evaluate()):
            if req.url:
                unmet.append(line)
            continue
        if not _satisfied(req, metadata):
            unmet.append(line)
            continue
        for extra in sorted(req.extras):
            for dep in metadata.requires(req.name) or []:
                sub = Requirement(dep)
                if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                    if not _satisfied(sub, metadata):
                        unmet.append(line)
                        break
    return unmet


def _satisfied(req: Any, metadata: Any) -> bool:
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return False
    return bool(req.specifier.contains(version, prereleases=True))


def lock_digest(lock: bytes) -> str:
    return hashlib.sha256(lock).hexdigest()


def locked_packages(lock: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    packages: Mapping[str, Any] = lock.get("packages") or {}
    return {k: (v.get("version"), v.get("integrity")) for k, v in packages.items() if k}


def node_modules_current(frontend: Path, stamp: Path) -> tuple[bool, str]:
    """(current?, why) for ``frontend/node_modules`` against ``frontend/package-lock.json``."""
    import json

    lock_path = frontend / "package-lock.json"
    modules = frontend / "node_modules"
    if not modules.is_dir():
        return False, "node_modules is missing"
    lock_bytes = lock_path.read_bytes()
    if stamp.exists() and stamp.read_text().strip() == lock_digest(lock_bytes):
        return True, "matches package-lock.json"
    hidden = modules / ".package-lock.json"
    if hidden.exists():
        try:
            installed = locked_packages(json.loads(hidden.read_text()))
        except ValueError:
            installed = {}
        if installed and installed == locked_packages(json.loads(lock_bytes)):
            return True, "matches package-lock.json"
    return False, "node_modules is out of date with package-lock.json"
