"""``.env.local``: KEY=VALUE lines merged from a template, secrets generated, never printed.

A template value ``@generate@`` becomes a fresh random secret. A key already present in the
existing file is never touched (the user set it); missing keys are appended.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

GENERATE = "@generate@"


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines (``export`` prefix, comments, blank lines and quotes allowed)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key:
            values[key] = value
    return values


def _render_line(raw: str, generate: Callable[[], str]) -> str:
    key, sep, value = raw.partition("=")
    if sep and value.strip() == GENERATE:
        return f"{key}={generate()}"
    return raw


def merge_env(
    existing: str | None, template: str, generate: Callable[[], str]
) -> tuple[str, list[str]]:
    """The new file text and the keys it adds (values are never returned separately).

    Without an existing file, the template is rendered whole (comments kept). With one, its
    text is kept byte for byte and only template keys it lacks are appended.
    """
    if existing is None:
        lines = [_render_line(raw, generate) for raw in template.splitlines()]
        return "\n".join(lines) + "\n", list(parse_env(template))
    have = parse_env(existing)
    added: list[str] = []
    appended: list[str] = []
    for raw in template.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key = next(iter(parse_env(line)), "")
        if key and key not in have and key not in added:
            added.append(key)
            appended.append(_render_line(line, generate))
    if not appended:
        return existing, []
    text = existing if existing.endswith("\n") or not existing else existing + "\n"
    text += "# added by inv setup from the template\n" + "\n".join(appended) + "\n"
    return text, added


def missing_values(values: Mapping[str, str], required: list[str]) -> list[str]:
    """Keys of ``required`` that are absent or empty in ``values``."""
    return [key for key in required if not values.get(key)]
