"""The namespace manifests (``kubernetes/manifests/*.yaml``) rendered for one environment.

Each ``${name}`` placeholder is a whole YAML value (``name: ${namespace}``, ``- ${x}``) and is
replaced by a double-quoted YAML string (:func:`tasks.core.environments.yaml_string`): a
namespace ``null``, ``123``, ``yes`` or ``0x1f`` stays that text, never null, a number or a
boolean. ``${namespace}`` and ``${environment}`` come from the deploy; the rest from the
environment's block of ``params.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.core.environments import yaml_string
from tasks.core.errors import ConfigError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A placeholder that is a whole value: after "key: " or "- ", then only a comment.
WHOLE_VALUE = re.compile(
    r"^(?P<lead>\s*(?:-\s+)?(?:[^\s#:][^#:]*:\s+)?)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}"
    r"(?P<tail>\s*(?:#.*)?)$"
)
RESERVED = ("namespace", "environment")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def manifest_params(
    params: Any, environment: str, namespace: str, *, source: str
) -> dict[str, str]:
    """The environment's block of params.yaml plus the namespace and environment name."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{source}: the top level must map environment names to parameters")
    block = params.get(environment)
    if not isinstance(block, Mapping):
        valid = ", ".join(sorted(str(k) for k in params)) or "none"
        raise ConfigError(
            f"{source}: no parameters for environment {environment!r}; found: {valid}"
        )
    values: dict[str, str] = {}
    for key, value in block.items():
        where = f"{source}: {environment}.{key}"
        if not isinstance(key, str) or not PARAM_NAME.match(key):
            raise ConfigError(f"{where}: not a parameter name (letters, digits, '_')")
        if key in RESERVED:
            raise ConfigError(f"{where}: {key} is set by the deploy (--namespace, --env)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: {value!r} is not valid; valid: text or a number")
        values[key] = str(value)
    return {**values, "namespace": namespace, "environment": environment}


def render_manifests(templates: Mapping[str, str], values: Mapping[str, str]) -> str:
    """Substitute the placeholders of each template (sorted by file name) into one stream."""
    documents = []
    for name in sorted(templates):
        lines = []
        for number, line in enumerate(templates[name].splitlines(), start=1):
            if not PLACEHOLDER.search(line) or line.lstrip().startswith("#"):
                lines.append(line)
                continue
            match = WHOLE_VALUE.match(line)
            if match is None or len(PLACEHOLDER.findall(line)) > 1:
                raise ConfigError(
                    f"{name}:{number}: ${{{PLACEHOLDER.findall(line)[0]}}} must be a whole YAML "
                    "value (key: ${name} or - ${name}); it is substituted as a quoted string"
                )
            key = match.group("name")
            if key not in values:
                raise ConfigError(
                    f"{name}:{number}: unknown placeholder ${{{key}}}; known: "
                    + ", ".join(sorted(values))
                )
            lines.append(match.group("lead") + yaml_string(values[key]) + match.group("tail"))
        body = "\n".join(lines).strip()
        documents.append(f"# Source: {name}\n{body.removeprefix('---').strip()}\n")
    return "---\n" + "---\n".join(documents)


def load_manifests(directory: Path, environment: str, namespace: str) -> str:
    """Read ``directory`` (its ``params.yaml`` and ``*.yaml``) and render it."""
    import yaml  # lazy: keep `inv --list` light

    if not directory.is_dir():
        raise ConfigError(f"deploy.manifests: {directory} is not a directory")
    params_file = directory / "params.yaml"
    try:
        params = yaml.safe_load(params_file.read_text()) if params_file.exists() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{params_file}: not valid YAML ({exc})".splitlines()[0]) from None
    values = manifest_params(
        params if params is not None else {environment: {}},
        environment,
        namespace,
        source=str(params_file),
    )
    templates = {
        p.name: p.read_text() for p in sorted(directory.glob("*.yaml")) if p.name != "params.yaml"
    }
    return render_manifests(templates, values)


def kinds(text: str) -> list[str]:
    """The ``kind:`` of each rendered document, in order (for the progress note)."""
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("kind:")]
