"""What the lint tasks do: choose the files, plan the tools, run them, report.

The files come from one of four places: every file of the configured paths (the default),
the files changed against a base (``--changed``), a commit (``--rev``: a snapshot, see
:mod:`tasks.lint.snapshot`), or the commits a push brings (``--pre-push``, each pushed ref's
snapshot). ``--fix`` holds a lock per tree (:func:`tasks.core.locks.hold`) while it rewrites
and re-checks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack, nullcontext, redirect_stdout
from pathlib import Path
from typing import Any

from tasks.core import runner
from tasks.core.errors import ConfigError, OpsError, Refused
from tasks.lint import files, git, plan
from tasks.lint.files import Layout, Target, Tree
from tasks.lint.tools import Tool


def lint(
    c: Any,
    cfg: Any,
    *,
    sides: Sequence[str],
    fix: bool,
    changed: bool,
    base: str | None,
    rev: str | None,
    engine: str | None,
    jobs: int | None,
    skip: str | None,
    pre_push: str | None,
    report_format: str = "text",
    output: str | None = None,
) -> None:
    """Lint ``sides`` ("python", "js") as the flags say (documented on the tasks); with a CI
    ``report_format``, also write its document to ``output`` (None: stdout, the text report
    going to stderr, except for github's annotations, which follow the text)."""
    destination = output_path(report_format, output)
    if report_format == "text" or runner.is_dry(c):
        check_outcomes(c, cfg, sides, fix, changed, base, rev, engine, jobs, skip, pre_push)
        return
    from tasks.lint import report

    divert = destination is None and report_format != "github"
    error: Failed | None = None
    with redirect_stdout(sys.stderr) if divert else nullcontext():
        try:
            outcomes = check_outcomes(
                c, cfg, sides, fix, changed, base, rev, engine, jobs, skip, pre_push
            )
        except Failed as exc:
            outcomes, error = exc.outcomes, exc
    document = report.render(report_format, outcomes or [])
    if destination is None:
        sys.stdout.write(document)
        sys.stdout.flush()
    else:
        write_atomically(destination, document)
    if error is not None:
        raise error


class Failed(OpsError):
    """Findings (exit 1) or a crashed tool (2): the run's outcomes go with the exit code."""

    def __init__(self, code: int, outcomes: list[plan.Outcome]) -> None:
        super().__init__(code=code)
        self.outcomes = outcomes


def output_path(report_format: str, output: str | None) -> Path | None:
    """``--output`` checked before anything runs: a file in an existing directory."""
    if output is None:
        return None
    if report_format == "text":
        raise ConfigError(
            f"--output: {output!r} needs --format sarif, github, junit or json "
            "(the text report goes to stdout)"
        )
    path = Path(output)
    if output == "" or "\0" in output:
        raise ConfigError(f"--output: {output!r} is not a file name")
    if path.is_dir():
        raise ConfigError(f"--output: {output!r} is a directory")
    if not path.absolute().parent.is_dir():
        raise ConfigError(f"--output: {output!r}: its directory does not exist")
    return path


def write_atomically(path: Path, text: str) -> None:
    """The report, through the one safe writer (a ``mkstemp`` temp, not a predictable name)."""
    from tasks.core.files import write_atomic

    try:
        write_atomic(path.absolute(), text, 0o644)
    except OSError as exc:
        raise OpsError(f"--output: cannot write {path}: {exc.strerror or exc}") from None


def check_outcomes(
    c: Any,
    cfg: Any,
    sides: Sequence[str],
    fix: bool,
    changed: bool,
    base: str | None,
    rev: str | None,
    engine: str | None,
    jobs: int | None,
    skip: str | None,
    pre_push: str | None,
) -> list[plan.Outcome] | None:
    """The run itself: the outcomes (None: nothing ran); findings raise OpsError with them."""
    from tasks.core import settings

    if base is not None and not changed:
        raise ConfigError(f"--base: {base!r} needs --changed (the files changed against it)")
    if fix and (rev is not None or pre_push is not None):
        raise ConfigError("--fix: not with --rev or --pre-push (a commit is linted, not rewritten)")
    if rev is not None and pre_push is not None:
        raise ConfigError("--rev: not with --pre-push (the push names its commits)")
    engine = cfg.engine if engine is None else engine
    jobs = (cfg.jobs if jobs is None else jobs) or os.cpu_count() or 1
    skipped = skipped_tools(skip, cfg)
    layout = files.layout(c.config, cfg, settings.project_root(c), sides)
    install_tools(c, layout, sides, engine, cfg.ruff_select, skipped)  # before any snapshot
    targets, source = choose(layout, cfg, sides, changed, base, rev, pre_push)
    targets = [t for t in targets if not t.empty]
    if not targets:
        print(f"lint: nothing to lint ({source}: no {'/'.join(sides)} files)")
        return []
    if rev is not None or pre_push is not None:
        print(f"lint: {source}", flush=True)
    check, fixers = plan_steps(c, layout, targets, sides, engine, cfg.ruff_select, skipped)
    check_chains = plan.plan_check(check)
    fix_chains = plan.plan_fix(fixers) if fix else []
    if runner.is_dry(c):
        for line in plan.dry_lines([*fix_chains, *check_chains], runner.render):
            print(line)
        return None
    from tasks.lint.cache import ResultCache
    from tasks.lint.parallel import Executor

    cache = ResultCache(cfg.cache_dir / "results.json" if cfg.cache_dir is not None else None)
    executor = Executor(jobs, cache)
    with ExitStack() as stack:
        if fix:
            hold_fix_locks(stack, [t.tree for t in targets], cfg.fix_wait)
        outcomes = executor.run(fix_chains) if fix_chains else []
        outcomes += executor.run(check_chains)
    cache.save()
    command = plan.fix_command(sides, changed, engine)
    sys.stdout.write("\n" + plan.summary(outcomes, skipped, command))
    code = plan.exit_code(outcomes)
    if code:
        raise Failed(code, outcomes)
    return outcomes


def skipped_tools(flag: str | None, cfg: Any) -> dict[str, str]:
    """Tool name -> where it was skipped (``--skip``, ``SKIP``, ``lint.skip``)."""
    chosen: dict[str, str] = {}
    under_pre_commit = os.environ.get("PRE_COMMIT") == "1"  # its SKIP names other hooks too
    sources = (
        ("--skip", plan.parse_skip(flag or "", "--skip")),
        ("SKIP", plan.parse_skip(os.environ.get("SKIP", ""), "SKIP", lenient=under_pre_commit)),
        ("lint.skip", tuple(cfg.skip)),
    )
    for source, names in sources:
        for name in names:
            chosen.setdefault(name, source)
    return chosen


def repos_of(layout: Layout, flag: str) -> list[Path]:
    """The git repositories holding the configured paths (git runs in each)."""
    found: list[Path] = []
    for path in (*layout.python_paths, *layout.js_paths):
        top = files.repo_root(path)
        if top is None:
            raise layout.fail(path, f"is not inside a git repository ({flag} needs one)")
        if top not in found:
            found.append(top)
    return found


def choose(
    layout: Layout,
    cfg: Any,
    sides: Sequence[str],
    changed: bool,
    base: str | None,
    rev: str | None,
    pre_push: str | None,
) -> tuple[list[Target], str]:
    """The targets to lint and a word on where they came from."""
    if pre_push is not None:
        return pushed(layout, sides, pre_push)
    to_ref = os.environ.get("PRE_COMMIT_TO_REF", "")
    if changed and rev is None and base is None and to_ref:  # pre-commit's pre-push stage
        rev, base = to_ref, os.environ.get("PRE_COMMIT_FROM_REF") or None
    base = base if base is not None else (cfg.base or None)
    if rev is not None:
        from tasks.core import secrets
        from tasks.lint import snapshot

        targets = []
        for repo in repos_of(layout, "--rev"):
            sha = git.commit_of(repo, rev, "--rev")
            wanted = git.changed_in_commit(repo, base, sha) if changed else None
            label = git.display_rev(sha)
            targets.append(
                snapshot.build(
                    layout, repo, sha, label, secrets.run_dir(), sides, wanted, strict=not changed
                )
            )
        what = "files changed by" if changed else "files of"
        return targets, f"{what} commit {git.display_rev(rev)}"
    if changed:
        base = base if base is not None else os.environ.get("PRE_COMMIT_FROM_REF", "")
        targets = []
        for repo in repos_of(layout, "--changed"):
            rels = git.changed_in_worktree(repo, base, "--base")
            targets.append(files.select(layout, Tree(repo, repo), rels, sides))
        return targets, "changed files"
    return files.discover(layout, sides), "all files"


def pushed(layout: Layout, sides: Sequence[str], remote: str) -> tuple[list[Target], str]:
    """One snapshot per pushed ref: the files its commits change, as they are in them."""
    from tasks.core import secrets
    from tasks.lint import snapshot

    repo = files.repo_root(layout.project)
    if repo is None:
        raise OpsError(f"--pre-push: {layout.project} is not inside a git repository")
    refs = git.parse_pre_push(sys.stdin.read())
    targets: list[Target] = []
    seen: set[tuple[str, tuple[str, ...] | None]] = set()
    labels = []
    for ref in refs:
        wanted = git.pushed_files(repo, remote, ref)
        key = (ref.local_sha, None if wanted is None else tuple(wanted))
        if wanted == [] or key in seen:
            continue
        seen.add(key)
        name = ref.remote_ref.removeprefix("refs/heads/")
        label = f"{name} at {git.display_rev(ref.local_sha)}"
        labels.append(label + (" (first push: all files)" if wanted is None else ""))
        target = snapshot.build(
            layout, repo, ref.local_sha, name, secrets.run_dir(), sides, wanted, strict=False
        )
        targets.append(target)
        if wanted is not None:  # a first push to an empty remote: its tip only
            targets += earlier_commits(layout, repo, sides, remote, ref, name)
    what = f"files the push to {remote} changes"
    return targets, what + (f": {', '.join(labels)}" if labels else "")


HISTORY_LIMIT = 50  # pushed commits before the tip whose secrets the hook scans


def earlier_commits(
    layout: Layout, repo: Path, sides: Sequence[str], remote: str, ref: Any, name: str
) -> list[Target]:
    """detect-secrets on what each pushed commit before the tip changes, as it holds it: a
    secret added by one commit of a push and removed by a later one is pushed all the same."""
    from dataclasses import replace

    from tasks.core import secrets
    from tasks.lint import snapshot

    earlier = [sha for sha in git.pushed_commits(repo, remote, ref) if sha != ref.local_sha]
    if not earlier:
        return []
    tip = {e.path: e.oid for e in git.tree_entries(repo, ref.local_sha)}
    targets = []
    for sha in earlier[-HISTORY_LIMIT:]:
        changed = git.changed_in_commit(repo, None, sha)
        if not changed:
            continue
        held = {e.path: e.oid for e in git.tree_entries(repo, sha)}
        wanted = [p for p in changed if p in held and held[p] != tip.get(p)]  # not as the tip
        if not wanted:
            continue
        label = f"{name} at {git.display_rev(sha)}"
        built = snapshot.build(
            layout, repo, sha, label, secrets.run_dir(), sides, wanted, strict=False
        )
        targets.append(replace(built, tools=("detect-secrets",)))
    return targets


def bandit_config(root: Path) -> tuple[str | None, list[str]]:
    """(``-c`` argument, ``exclude_dirs``) when the tree's pyproject.toml has ``[tool.bandit]``."""
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None, []
    if "[tool.bandit]" not in text:
        return None, []
    try:
        import tomllib
    except ImportError:  # Python 3.10: bandit reads the file itself, we just do not pre-filter
        return "pyproject.toml", []
    try:
        table = tomllib.loads(text).get("tool", {}).get("bandit", {})
    except ValueError as exc:
        raise OpsError(f"{pyproject}: not valid TOML: {exc}") from None
    return "pyproject.toml", [str(e) for e in table.get("exclude_dirs", [])]


def chosen_tools(
    sides: Sequence[str],
    engine: str,
    ruff_select: str,
    skipped: dict[str, str],
    bandit_config: str | None = None,
) -> list[Tool]:
    """The tools of ``sides`` less the skipped ones."""
    from tasks.lint import tools

    chosen = [
        *(tools.python_tools(engine, bandit_config=bandit_config, ruff_select=ruff_select)
          if "python" in sides else []),
        *(tools.js_tools() if "js" in sides else []),
        tools.secrets_tool(),
    ]  # fmt: skip
    return [t for t in chosen if t.name not in skipped]


def install_tools(
    c: Any,
    layout: Layout,
    sides: Sequence[str],
    engine: str,
    ruff_select: str,
    skipped: dict[str, str],
) -> None:
    """Install the missing tools *before* any snapshot is built: a snapshot links the
    frontend's ``node_modules`` only when it exists (a fresh clone's first push)."""
    from tasks.lint import install

    needed = chosen_tools(sides, engine, ruff_select, skipped)
    install.ensure_tools(c, needed, install.python_env(), layout.frontend, layout.project)


def plan_steps(
    c: Any,
    layout: Layout,
    targets: Sequence[Target],
    sides: Sequence[str],
    engine: str,
    ruff_select: str,
    skipped: dict[str, str],
) -> tuple[list[plan.Step], list[plan.Step]]:
    """(check steps, fix steps) of every target (the tools are installed: install_tools)."""
    from tasks.lint import install

    per_target = []
    for target in targets:
        config, excludes = bandit_config(target.tree.root) if "python" in sides else (None, [])
        chosen = chosen_tools(sides, engine, ruff_select, skipped, config)
        if target.tools is not None:
            chosen = [t for t in chosen if t.name in target.tools]
        per_target.append((target, chosen, excludes))
    env = install.python_env()
    needed = {t.name: t for _, chosen, _ in per_target for t in chosen}
    binaries = {t.name: str(install.binary_path(t, env, layout.frontend)) for t in needed.values()}
    for t in needed.values():  # a script runs with the interpreter of the package's own script
        if t.script:
            binaries[t.name] = str(install.script_python(Path(binaries[t.name]), env.python))
    check: list[plan.Step] = []
    fixers: list[plan.Step] = []
    several = len([t for t in targets if t.tools is None]) > 1
    for target, chosen, excludes in per_target:
        named = several or target.tools is not None  # an earlier commit's rows say which
        suffix = f" [{target.tree.label}]" if named and target.tree.label else ""
        args = (target, chosen)
        check += plan.steps_for(*args, "check", layout, binaries, excludes, suffix)
        fixers += plan.steps_for(*args, "fix", layout, binaries, excludes, suffix)
    return check, fixers


def hold_fix_locks(stack: ExitStack, trees: Sequence[Tree], wait: int) -> None:
    """One lock per tree for --fix: a second --fix waits up to ``wait`` s (lint.fix_wait)."""
    from tasks.core import locks

    paths = set()
    for tree in trees:
        top = files.repo_root(tree.origin)
        paths.add(
            git.git_dir(top) / "flowlet-lint-fix.lock"
            if top is not None
            else tree.origin / ".flowlet" / "lint-fix.lock"
        )
    hint = "it rewrites the same files; set lint.fix_wait to wait longer"
    for path in sorted(paths):
        try:
            stack.enter_context(locks.hold(path, "lint --fix", hint=hint))
        except Refused as exc:
            if wait <= 0:
                raise
            print(f"lint: {exc.message.split('; ')[0]}; waiting up to {wait}s", flush=True)
            stack.enter_context(locks.hold(path, "lint --fix", wait=wait, hint=hint))
