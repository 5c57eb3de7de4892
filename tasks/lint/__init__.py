"""``inv lint``: the six linters (Flake8, Black, isort, Bandit, ESLint, Prettier) in parallel.

``inv lint`` checks (read-only), ``--fix`` rewrites then re-checks, ``--changed`` lints only
what changed against the upstream merge base, ``lint.python`` / ``lint.js`` run one side,
``lint.install-hook`` installs the git pre-push hook. Modules: ``tools`` (the linters, their
argv and exit codes), ``files`` (which files), ``install`` (finding and installing tools),
``execute`` (parallel run and report), ``cache`` (files Flake8/Bandit found clean), ``hook``
(the pre-push hook script), ``flows`` (the task bodies, imported inside the tasks).
"""

from __future__ import annotations

from invoke import Collection, Context

from tasks.core.task import task

FLAG_HELP = {
    "fix": "rewrite: isort then Black, ESLint --fix then Prettier --write; then re-check",
    "changed": "only files changed against the merge base with the upstream (or --base), "
    "plus untracked files",
    "base": "with --changed: the ref to diff against (default: lint.base, else the upstream)",
    "engine": "'default' (Flake8, isort, Black) or 'ruff' (Ruff check + format); "
    "default: lint.engine",
    "jobs": "tools run at once (default: lint.jobs; 0 = CPU count)",
}


@task(
    name="all",
    default=True,
    help={
        **FLAG_HELP,
        "pre_push": "read the refs git passes a pre-push hook on stdin and lint the files those "
        "pushes change (REMOTE: the hook's first argument); used by lint.install-hook",
    },
)
def all_(
    c: Context,
    fix: bool = False,
    changed: bool = False,
    base: str | None = None,
    engine: str | None = None,
    jobs: int = 0,
    pre_push: str = "",
) -> None:
    """Lint Python and JS/TS: Flake8, Black, isort, Bandit, ESLint, Prettier, in parallel.

    Read-only unless --fix. Prints each tool's output as one block, then a summary table.
    Exit 1 on findings, 2 if a tool crashed (or could not run).
    """
    from tasks.lint import flows

    flows.lint_sides(c, ("python", "js"), fix, changed, base, engine, jobs, pre_push)


@task(help=FLAG_HELP)
def python(
    c: Context,
    fix: bool = False,
    changed: bool = False,
    base: str | None = None,
    engine: str | None = None,
    jobs: int = 0,
) -> None:
    """Lint the Python side only (Flake8, Black, isort, Bandit; or Ruff + Bandit)."""
    from tasks.lint import flows

    flows.lint_sides(c, ("python",), fix, changed, base, engine, jobs)


@task(help={k: v for k, v in FLAG_HELP.items() if k != "engine"})
def js(
    c: Context, fix: bool = False, changed: bool = False, base: str | None = None, jobs: int = 0
) -> None:
    """Lint the JS/TS side only (ESLint, Prettier, from the frontend's node_modules)."""
    from tasks.lint import flows

    flows.lint_sides(c, ("js",), fix, changed, base, None, jobs)


@task(help={"force": "overwrite a pre-push hook that lint.install-hook did not write"})
def install_hook(c: Context, force: bool = False) -> None:
    """Install the git pre-push hook that runs `inv lint --changed` on what is pushed."""
    from tasks.lint import flows

    flows.install_hook(c, force)


ns = Collection("lint", all_, python, js, install_hook)
