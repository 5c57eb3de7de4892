"""The shared ``environments`` config defaults (kept apart from :mod:`tasks.environments` so
``inv --list`` only compiles this tiny module)."""

from __future__ import annotations

from typing import Any

ENVIRONMENT_NAMES = ("development", "staging", "production")

# Collection-level defaults for the shared ``environments`` key. Every key exists here (so
# INVOKE_ENVIRONMENTS_STAGING_NAMESPACE=... and ``inv -f other.yaml`` can override it);
# the project's invoke.yaml fills in the real values. Empty string means "must be set".
ENVIRONMENT_DEFAULTS: dict[str, dict[str, Any]] = {
    name: {
        "namespace": "",
        "kube_context": "",
        "release": "flowlet",
        "values_file": "",
        "confirm": name == "production",
        "databases": {},
    }
    for name in ENVIRONMENT_NAMES
}


def config_defaults() -> dict[str, Any]:
    """The ``environments`` defaults every collection declares (a fresh copy)."""
    return {"environments": {name: dict(env) for name, env in ENVIRONMENT_DEFAULTS.items()}}
