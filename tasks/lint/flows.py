"""The bodies of the lint tasks (imported inside the tasks so ``inv --list`` stays light)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context
from tasks.core.errors import OpsError

from tasks.core import prompt, runner, settings

if TYPE_CHECKING:  # imported where used
    from tasks.lint import files, install, tools


def _layout(c: Context) -> files.Layout:
    from tasks.lint import files

    cfg = c.config.lint
    root = settings.project_root(c)
    for key in ("python_paths", "js_paths"):
        if isinstance(cfg[key], str) or not all(isinstance(p, str) for p in cfg[key]):
            raise OpsError(f"lint.{key}: {cfg[key]!r} is not a list of paths")
    frontend = os.path.normpath(cfg.frontend)
    for path in cfg.js_paths:
        if not files.under(os.path.normpath(path), [frontend]):
            raise OpsError(f"lint.js_paths: {path!r} is outside lint.frontend {frontend!r}; "
                       "ESLint and Prettier run there")  # fmt: skip
    return files.Layout(
        root=root,
        python_paths=tuple(cfg.python_paths),
        js_paths=tuple(cfg.js_paths),
        frontend=frontend,
        bandit_excludes=tuple(_bandit_config(root)[1]),
    )


def _bandit_config(root: Path) -> tuple[str | None, list[str]]:
    """(``-c`` argument, ``exclude_dirs``) when pyproject.toml has a ``[tool.bandit]`` table."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None, []
    text = pyproject.read_text(encoding="utf-8")
    if "[tool.bandit]" not in text:
        return None, []
    try:
        import tomllib
    except ImportError:  # Python 3.10: bandit reads the file itself, we just do not pre-filter
        return "pyproject.toml", []
    excludes = tomllib.loads(text).get("tool", {}).get("bandit", {}).get("exclude_dirs", [])
    return "pyproject.toml", [str(e) for e in excludes]


def _choose_files(
    layout: files.Layout,
    sides: Sequence[str],
    changed: bool,
    base: str,
    pre_push: str,
) -> tuple[tools.FileSet, str]:
    """The files to lint and a word on where they came from."""
    from tasks.lint import files

    if pre_push:
        refs = files.parse_pre_push(sys.stdin.read())
        pushed = files.pushed_files(layout.root, pre_push, refs)
        if pushed is None:
            return files.all_files(layout, sides), f"first push to {pre_push}: all files"
        return files.select_files(layout, pushed, sides), f"files the push to {pre_push} changes"
    if changed:
        candidates = files.changed_files(layout.root, base)
        return files.select_files(layout, candidates, sides), "changed files"
    return files.all_files(layout, sides), "all files"


def _ensure_tools(
    c: Context, chosen: Sequence[tools.Tool], env: install.PythonEnv, layout: files.Layout
) -> None:
    """Install missing tools (pinned), saying what; nothing happens when all are present."""
    from tasks.lint import install

    frontend = layout.root / layout.frontend
    absent = install.missing(chosen, env, frontend)
    python_side = [t for t in absent if t.side == "python"]
    if python_side:
        argv = install.plan_pip_install(python_side, install.find_pins(layout.root), env)
        names = ", ".join(sorted({t.package for t in python_side}))
        print(f"lint: {names} missing from {env.bin_dir}: installing: {runner.render(argv)}")
        runner.run(c, argv, warn=True, in_stream=False)
    if any(t.side == "js" for t in absent):
        if not (frontend / "package.json").is_file():
            raise OpsError(f"lint.frontend: no package.json in {frontend} to install ESLint/Prettier")
        argv = install.plan_npm_install(frontend)
        names = ", ".join(t.package for t in absent if t.side == "js")
        print(
            f"lint: {names} missing from {frontend}/node_modules: installing: "
            f"{runner.render(argv)} (in {frontend})"
        )
        with c.cd(str(frontend)):
            runner.run(c, argv, warn=True, in_stream=False)


def lint_sides(
    c: Context,
    sides: Sequence[str],
    fix: bool,
    changed: bool,
    base: str | None,
    engine: str | None,
    jobs: int,
    pre_push: str = "",
) -> None:
    """What every lint task does, for ``sides`` ("python", "js")."""
    from tasks.lint import execute, install, tools
    from tasks.lint.cache import CleanCache

    cfg = c.config.lint
    source = "lint.engine" if engine is None else "--engine"
    engine = prompt.choice(cfg.engine if engine is None else engine, tools.ENGINES, flag=source)
    base = cfg.base if base is None else base
    jobs = jobs or int(cfg.jobs) or os.cpu_count() or 1
    layout = _layout(c)
    fileset, source = _choose_files(layout, sides, changed or bool(pre_push), base, pre_push)
    if fileset.empty:
        print(f"lint: nothing to lint ({source}: no {'/'.join(sides)} files)")
        return
    bandit_config = _bandit_config(layout.root)[0]
    cache_dir = _cache_dir(layout.root, cfg.cache_dir)
    chosen = [
        *(
            tools.python_tools(engine, bandit_config=bandit_config, ruff_select=cfg.ruff_select)
            if "python" in sides
            else []
        ),
        *(tools.js_tools(cache_dir) if "js" in sides else []),
    ]
    chosen = [t for t in chosen if fileset.for_tool(t)]
    env = install.python_env()
    frontend = layout.root / layout.frontend
    try:
        _ensure_tools(c, chosen, env, layout)
    except KeyboardInterrupt:
        raise OpsError("lint: interrupted while installing tools", code=130)
    binaries = {t.name: str(install.binary_path(t, env, frontend)) for t in chosen}
    cwds = {"python": layout.root, "js": frontend}
    chains = tools.plan_fix(chosen, fileset, binaries, cwds) if fix else []
    chains_check = tools.plan_check(chosen, fileset, binaries, cwds)
    if runner.is_dry(c):
        for chain in [*chains, *chains_check]:
            print(" && ".join(f"(cd {s.cwd} && {runner.render(s.argv)})" for s in chain))
        return
    executor = execute.Executor(jobs)
    outcomes = executor.run(chains) if chains else []
    # After the fixers: they rewrite files, and the cache goes by content.
    clean_cache = None if cache_dir is None else CleanCache(cache_dir / "clean-files.json")
    if clean_cache is not None:
        chains_check = [[clean_cache.reduce(s) for s in chain] for chain in chains_check]
    checks = executor.run(chains_check)
    if clean_cache is not None:
        clean_cache.record(checks)
    outcomes += checks
    sys.stdout.write("\n" + execute.summary(outcomes, _fix_command(sides, changed, engine)))
    code = execute.exit_code([o for o in outcomes if o.step.mode == "check" or o.result == "error"])
    if code:
        raise OpsError(code=code)


def _cache_dir(root: Path, value: str) -> Path | None:
    """``lint.cache_dir`` resolved against the root; empty means no caches."""
    if not value:
        return None
    return settings.resolve_path(root, value, source="lint.cache_dir", must_exist=False)


def _fix_command(sides: Sequence[str], changed: bool, engine: str) -> str:
    name = "lint" if len(sides) == 2 else f"lint.{sides[0]}"
    extra = (" --changed" if changed else "") + (" --engine ruff" if engine == "ruff" else "")
    return f"inv {name} --fix{extra}"


def install_hook(c: Context, force: bool) -> None:
    """Body of ``inv lint.install-hook`` (documented on the task)."""
    from tasks.lint import files, hook

    root = settings.project_root(c)
    top = files.git_lines(root, ["rev-parse", "--show-toplevel"], "lint.install-hook")[0]
    hooks = files.git_lines(root, ["rev-parse", "--git-path", "hooks"], "lint.install-hook")
    hooks_dir = Path(hooks[0]) if os.path.isabs(hooks[0]) else root / hooks[0]
    target = hooks_dir / "pre-push"
    if not hook.is_ours(target) and not force:
        raise OpsError(
            f"lint.install-hook: {target} exists and was not written by "
            "lint.install-hook; pass --force to replace it"
        )
    script = hook.hook_script(sys.executable, os.path.relpath(root.resolve(), Path(top).resolve()))
    if runner.is_dry(c):
        print(f"would write {target}:\n{script}")
        return
    hooks_dir.mkdir(parents=True, exist_ok=True)
    if not hook.is_ours(target):
        backup = target.with_name("pre-push.replaced")
        target.replace(backup)
        print(f"lint: kept the replaced hook as {backup}")
    target.write_text(script, encoding="utf-8")
    target.chmod(0o755)
    print(f"lint: installed {target} (runs `inv lint --changed` on pushed commits)")
