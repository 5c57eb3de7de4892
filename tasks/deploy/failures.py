"""Why a helm operation failed, from what helm printed: one line saying what happened.

Only says "rolled back" when helm said so; names the objects, fields and field managers of a
Helm 4 server-side apply conflict and what to do; says exactly what "another operation
(install/upgrade/rollback) is in progress" means here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.core.errors import last_line

ANOTHER_OPERATION = "another operation (install/upgrade/rollback) is in progress"
_CONFLICT_OBJECT = re.compile(
    r"conflict occurred while applying object (?P<object>\S+) (?P<gv>\S+), Kind=(?P<kind>\w+): "
    r"Apply failed with \d+ conflicts?: (?P<rest>.*?)(?=(?:: )?conflict occurred while applying|$)",
    re.S,
)
_ONE = re.compile(
    r'^conflict with (?P<manager>"[^"]*"(?: with subresource "[^"]*")?)'
    r"(?: using \S+)?: (?P<field>\S+)"
)
_MANY = re.compile(
    r'conflicts with (?P<manager>"[^"]*"(?: with subresource "[^"]*")?)'
    r"(?: using \S+)?:\n(?P<fields>(?:- \S+\n?)+)"
)


@dataclass(frozen=True)
class Conflict:
    """One object whose fields another field manager owns (Helm 4 server-side apply)."""

    kind: str
    name: str  # namespace/name
    owners: tuple[tuple[str, tuple[str, ...]], ...]  # (manager, fields)

    def describe(self) -> str:
        owned = "; ".join(
            f"{', '.join(fields)} owned by {manager}" for manager, fields in self.owners
        )
        return f"{self.kind} {self.name}: {owned}"


def parse_conflicts(text: str) -> list[Conflict]:
    """Server-side apply conflicts in helm's error output, one per object (deduplicated)."""
    found: dict[tuple[str, str], Conflict] = {}
    for match in _CONFLICT_OBJECT.finditer(text):
        rest = match.group("rest")
        owners: list[tuple[str, tuple[str, ...]]] = []
        one = _ONE.match(rest)
        if one:
            owners.append((one.group("manager"), (one.group("field").rstrip(":"),)))
        for many in _MANY.finditer(rest):
            fields = tuple(
                line[2:].strip() for line in many.group("fields").splitlines() if line.strip()
            )
            owners.append((many.group("manager"), fields))
        key = (match.group("kind"), match.group("object"))
        if owners and key not in found:
            found[key] = Conflict(match.group("kind"), match.group("object"), tuple(owners))
    return list(found.values())


def explain_failure(
    action: str, code: int, stderr: str, *, release: str, namespace: str, env: str, helm_major: int
) -> str:
    """One line saying what happened to a failed helm upgrade/rollback, from helm's own output.

    Only says "rolled back" when helm said so; names the field managers of a server-side
    apply conflict and what to do; says exactly what "another operation is in progress" means.
    """
    text = stderr or ""
    where = f"{release} in {namespace}"
    if ANOTHER_OPERATION in text:
        return (
            f"helm {action} refused (exit {code}): Helm says another operation (install/upgrade/"
            f"rollback) is in progress on {where}, one that does not hold the deploy lock "
            "(helm run "
            "by hand, another tool, or one that was killed); nothing was changed or rolled back; "
            f"see inv deploy.history --env={env}; once it has ended: inv deploy.recover --env={env}"
        )
    lowered = text.lower()
    if "an error occurred while rolling back the release" in lowered:
        outcome = "and its automatic rollback failed too: the release is left failed"
    elif "has been rolled back" in lowered:
        outcome = "and was rolled back to the previous revision"
    else:
        outcome = ""
    conflicts = parse_conflicts(text)
    if conflicts:
        owners = " | ".join(c.describe() for c in conflicts)
        return (
            f"helm {action} failed (exit {code}) on server-side apply conflicts"
            + (f" {outcome}" if outcome else "")
            + f": {owners}; these fields were changed outside Helm (kubectl scale/edit/apply): "
            "put the change into the chart values if it should stay, then run "
            f"inv {'deploy' if action == 'upgrade' else 'deploy.rollback'} --env={env} "
            "--force-conflicts to take the fields back" + ("" if helm_major >= 4 else " (Helm 4)")
        )
    reason = _reason(text)
    return (
        f"helm {action} failed (exit {code})"
        + (f" {outcome}" if outcome else "")
        + (f": {reason}" if reason else "")
        + f"; see inv deploy.history --env={env}"
    )


def _reason(text: str) -> str:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("Error:"):
            return re.sub(r"^[A-Z ]+ FAILED: ", "", line.removeprefix("Error:").strip())
    return last_line(text)
