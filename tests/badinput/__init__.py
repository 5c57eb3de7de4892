"""The bad-input corpus: one module per topic (``CASES``), run by tests/test_bad_inputs.py.

Every case is a command a user might type with something wrong in it -- a flag value, a config
key (``config=``, YAML merged over the project's invoke.yaml and given with ``-f``), an
``INVOKE_*`` variable (``env=``), a project invoke.yaml (``project_yaml=``, run by the real
``inv`` in a scratch project) -- and what the user must see: exactly one line on stderr
matching ``expect`` (a regex naming the flag/key/variable and the bad value), an exit code
other than 0 (``code`` if given), and never a traceback. ``needs``: binaries the case reaches
(skipped without them, failed in CI: conftest ``need``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    expect: str
    env: dict[str, str] = field(default_factory=dict)
    config: str | None = None
    project_yaml: str | None = None
    code: int | None = None
    id: str = ""
    needs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.id or " ".join(self.argv)[:60]


def case(*argv: str, expect: str, **kwargs: object) -> Case:
    return Case(tuple(argv), expect, **kwargs)  # type: ignore[arg-type]
