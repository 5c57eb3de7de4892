"""Chart repositories: parsers of ``helm repo list`` / ``helm search repo`` and the repo steps.

Pure: the probes are run by :mod:`tasks.monitoring.run`; this turns their output into the
``helm repo add`` / ``helm repo update`` steps that are needed, and no others.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from tasks.core.errors import OpsError
from tasks.core.steps import Step
from tasks.monitoring.plan import Component

LIST_ARGV = ("helm", "repo", "list", "-o", "json")


def parse_repo_list(text: str) -> dict[str, str]:
    """Parse ``helm repo list -o json`` (``[{"name": ..., "url": ...}]``) into ``{name: url}``."""
    try:
        rows = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise OpsError(f"helm repo list: cannot parse its JSON output ({exc.msg})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise OpsError("helm repo list: expected a JSON list of {name, url}")
    return {str(row.get("name")): str(row.get("url")) for row in rows}


def chart_in_index(text: str, chart_ref: str, version: str) -> bool:
    """True if ``helm search repo <chart_ref> --version <v> -o json`` lists exactly that chart."""
    try:
        rows = json.loads(text or "[]")
    except json.JSONDecodeError:
        return False
    if not isinstance(rows, list):
        return False
    return any(
        isinstance(r, dict) and r.get("name") == chart_ref and r.get("version") == version
        for r in rows
    )


def search_argv(component: Component) -> list[str]:
    """Does the local index of the component's repository have the pinned version?"""
    ref, version = component.chart_ref, component.version
    return ["helm", "search", "repo", "--version", version, "-o", "json", "--", ref]


def plan_repos(
    components: Sequence[Component], present: Mapping[str, str], cached: set[str]
) -> list[Step]:
    """``helm repo add`` for missing repositories, ``helm repo update`` only for stale ones.

    ``present`` is the parsed ``helm repo list``; ``cached`` the chart refs whose pinned version
    the local index already has. A repository present under another URL is an error (we would
    install someone else's chart under the configured name).
    """
    steps: list[Step] = []
    for repo, url in dict.fromkeys((c.repo, c.repo_url) for c in components):
        if repo not in present:
            add = ("helm", "repo", "add", "--", repo, url)
            steps.append(Step(f"add chart repository {repo}", add))
        elif present[repo].rstrip("/") != url.rstrip("/"):
            raise OpsError(
                f"monitoring.repos.{repo}: helm already has repository {repo!r} at "
                f"{present[repo]}, not {url}; remove it (helm repo remove {repo}) or rename it"
            )
    stale = [c.repo for c in components if c.repo in present and c.chart_ref not in cached]
    if stale:
        names = list(dict.fromkeys(stale))
        steps.append(
            Step(f"refresh index of {', '.join(names)}", ("helm", "repo", "update", "--", *names))
        )
    return steps
