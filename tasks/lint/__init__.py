"""``inv lint``: the seven tools (Flake8, Black, isort, Bandit, ESLint, Prettier,
detect-secrets) in parallel.

``inv lint`` checks (read-only), ``--fix`` rewrites then re-checks, ``--changed`` lints only
what changed, ``--rev`` lints a commit's content, ``lint.python`` / ``lint.js`` run one side,
``lint.install-hook`` installs the git pre-push hook (``--pre-push``: the pushed content).
The three lint tasks are built by :func:`_lint_task` from one body. Modules: ``settings``
(the schema), ``files`` (paths, trees, discovery), ``git`` (queries), ``snapshot`` (a commit's
files in a private dir), ``tools`` (the linters and their argv), ``findings`` (their output,
per file), ``cache`` (the result cache), ``plan`` (steps and the report), ``parallel`` (running
them), ``run`` (the task body), ``install`` (getting the tools), ``hook`` (the pre-push hook).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from invoke import Collection, Context

from tasks.core.settings import Choice, Str
from tasks.core.task import task
from tasks.lint.settings import FORMATS, GIT_REF, GIT_REF_DESC

FLAG_HELP = {
    "fix": "rewrite: isort then Black, ESLint --fix then Prettier --write; then re-check",
    "changed": "only files changed against the merge base with the upstream (or --base), "
    "plus untracked files; with --rev: what that commit changes",
    "base": "with --changed: the ref to diff against (default: lint.base, else the upstream; "
    "with --rev: the commit's parent)",
    "rev": "lint the content of commit REV (not the working tree); with --changed only the "
    "files it changes",
    "engine": "'default' (Flake8, isort, Black) or 'ruff' (Ruff check + format); "
    "default: lint.engine",
    "jobs": "tools run at once (default: lint.jobs; 0 = CPU count)",
    "skip": "tools not to run, comma-separated (as pre-commit's SKIP=tool,tool)",
    "format": "the report: text (blocks and summary), or for CI: sarif (SARIF 2.1.0), github "
    "(workflow annotations), junit (JUnit XML), json; without --output the document goes to "
    "stdout (github: after the text) and the text to stderr",
    "output": "with --format: write the document to FILE (the text report stays on stdout)",
    "pre_push": "read the refs git passes a pre-push hook on stdin and lint the content of the "
    "commits those pushes bring (REMOTE: the hook's first argument); used by the hook",
}
REF = Str(pattern=GIT_REF, desc=GIT_REF_DESC)
FORMAT = Choice("text", FORMATS, "the report's format")
FLAGS = {"jobs": "lint.jobs", "engine": "lint.engine", "base": REF, "rev": REF, "format": FORMAT}


def _lint_task(name: str, sides: Sequence[str], doc: str, drop: Sequence[str] = ()) -> Any:
    """One lint task for ``sides``: the shared flags less ``drop``, the shared body."""

    def body(
        c: Context,
        fix: bool = False,
        changed: bool = False,
        base: str | None = None,
        rev: str | None = None,
        engine: str | None = None,
        jobs: int | None = None,
        skip: str | None = None,
        format: str | None = None,
        output: str | None = None,
        pre_push: str | None = None,
    ) -> None:
        from tasks.core import settings
        from tasks.lint import run

        run.lint(
            c, settings.load(c, "lint"), sides=sides, fix=fix, changed=changed, base=base,
            rev=rev, engine=engine, jobs=jobs, skip=skip, pre_push=pre_push,
            report_format=format or "text", output=output,
        )  # fmt: skip

    signature = inspect.signature(body)
    kept = [p for p in signature.parameters.values() if p.name not in drop]
    body.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    body.__doc__ = doc
    body.__name__ = name
    return task(
        name=name,
        default=name == "all",
        help={k: v for k, v in FLAG_HELP.items() if k not in drop},
        flags={k: v for k, v in FLAGS.items() if k not in drop},
    )(body)


all_ = _lint_task(
    "all",
    ("python", "js"),
    """Lint Python and JS/TS: Flake8, Black, isort, Bandit, ESLint, Prettier, detect-secrets.

    Read-only unless --fix. Prints each tool's findings as one block, then a summary table.
    Exit 1 on findings, 2 if a tool crashed (or could not run, or could not read a file).
    """,
)
python = _lint_task(
    "python",
    ("python",),
    "Lint the Python side only (Flake8, Black, isort, Bandit; or Ruff + Bandit; detect-secrets).",
    drop=("pre_push",),
)
js = _lint_task(
    "js",
    ("js",),
    "Lint the JS/TS side only (ESLint, Prettier from the frontend's node_modules; detect-secrets).",
    drop=("pre_push", "engine"),
)


@task(help={"force": "overwrite a pre-push hook that lint.install-hook did not write"})
def install_hook(c: Context, force: bool = False) -> None:
    """Install the git pre-push hook that lints the content of the commits each push brings."""
    from tasks.core import settings
    from tasks.lint import hook

    hook.install_hook(c, settings.project_root(c), force)


ns = Collection("lint", all_, python, js, install_hook)
