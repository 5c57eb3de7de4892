"""Bad input to the lint tasks: every flag that takes a value, the lint.* keys, INVOKE_LINT_*
and SKIP, paths (absolute and ../ paths that match nothing, files where directories are
expected), refs that are no commit. Each fails before any tool runs."""

from __future__ import annotations

from tests.badinput import case

JOBS = r"is not valid; valid: an integer from 0 to 64$"
REF = r"is not valid; valid: a git ref or commit \(not starting with '-', no spaces\)$"
TOOLS = r"is not a lint tool; valid: bandit, black, detect-secrets, eslint, flake8, isort, prettier, ruff-check"
PATH = r"is not valid \(set in -f .*\); valid: an existing file or directory .*does not exist$"

# One case a line, as in the other corpus modules (a table: long lines are fine here).
# fmt: off
CASES = [
    # flags: --jobs, --engine, --skip, --rev, --base and their combinations
    case("lint", "--jobs", "-3", expect=r"^--jobs: -3 " + JOBS, code=1, id="lint-jobs-negative"),
    case("lint", "--jobs", "abc", expect=r"^--jobs: 'abc' " + JOBS, id="lint-jobs-text"),
    case("lint", "--jobs", "65", expect=r"^--jobs: 65 " + JOBS, id="lint-jobs-too-many"),
    case("lint.python", "--jobs", "1.5", expect=r"^--jobs: '1\.5' " + JOBS, id="lint-python-jobs-float"),
    case("lint.js", "--jobs", "x", expect=r"^--jobs: 'x' " + JOBS, id="lint-js-jobs-text"),
    case("lint", "--engine", "fast", expect=r"^--engine: 'fast' is not valid; valid: default, ruff$", id="lint-engine"),
    case("lint.python", "--engine", "RUFF", expect=r"^--engine: 'RUFF' is not valid; valid: default, ruff$", id="lint-python-engine-case"),
    case("lint", "--skip", "pylint", expect=r"^--skip: 'pylint' " + TOOLS, id="lint-skip-unknown"),
    case("lint.js", "--skip", "eslint,tslint", expect=r"^--skip: 'tslint' " + TOOLS, id="lint-js-skip-unknown"),
    case("lint.python", "--skip", "flake8,ruff-chek", expect=r"^--skip: 'ruff-chek' " + TOOLS, id="lint-python-skip-typo"),
    case("lint", "--rev", "nope", expect=r"^--rev: 'nope' is not a commit in /\S+$", id="lint-rev-unknown"),
    case("lint", "--rev", "HEAD:README.md", expect=r"^--rev: 'HEAD:README\.md' is not a commit in ", id="lint-rev-blob"),
    case("lint.python", "--changed", "--rev", "HEAD~99999", expect=r"^--rev: 'HEAD~99999' is not a commit", id="lint-python-rev-too-far"),
    case("lint", "--rev=-x", expect=r"^--rev: '-x' " + REF, id="lint-rev-option-like"),
    case("lint.js", "--rev", "a b", expect=r"^--rev: 'a b' " + REF, id="lint-js-rev-space"),
    case("lint", "--changed", "--base=-main", expect=r"^--base: '-main' " + REF, id="lint-base-option-like"),
    case("lint", "--changed", "--base", "no-such-ref", expect=r"^--base: 'no-such-ref' is not a commit in ", id="lint-base-unknown"),
    case("lint", "--base", "main", expect=r"^--base: 'main' needs --changed", id="lint-base-without-changed"),
    case("lint", "--fix", "--rev", "HEAD", expect=r"^--fix: not with --rev or --pre-push", id="lint-fix-rev"),
    case("lint", "--rev", "HEAD", "--pre-push", "origin", expect=r"^--rev: not with --pre-push", id="lint-rev-pre-push"),
    case("lint", "--fix", "--pre-push", "origin", expect=r"^--fix: not with --rev or --pre-push", id="lint-fix-pre-push"),
    case("lint", "--format", "xml", expect=r"^--format: 'xml' is not valid; valid: text, sarif, github, junit, json$", id="lint-format-unknown"),
    case("lint.js", "--format", "SARIF", expect=r"^--format: 'SARIF' is not valid; valid: text, sarif", id="lint-js-format-case"),
    case("lint", "--output", "lint.sarif", expect=r"^--output: 'lint\.sarif' needs --format sarif, github, junit or json", id="lint-output-without-format"),
    case("lint.python", "--format", "text", "--output", "lint.txt", expect=r"^--output: 'lint\.txt' needs --format sarif", id="lint-output-text-format"),
    case("lint", "--format", "sarif", "--output", "tasks", expect=r"^--output: 'tasks' is a directory$", id="lint-output-directory"),
    case("lint", "--format", "json", "--output", "/nonexistent/lint/out.json", expect=r"^--output: '/nonexistent/lint/out\.json': its directory does not exist$", id="lint-output-no-directory"),
    case("lint", "--format", "junit", "--output=", expect=r"^--output: '' is not a file name$", id="lint-output-empty"),
    # config keys (-f)
    case("lint", config="lint: {jobs: -1}\n", expect=r"^lint\.jobs: -1 is not valid \(set in -f .*\); valid: an integer from 0 to 64$", id="lint-jobs-key-negative"),
    case("lint.js", config="lint: {engine: turbo}\n", expect=r"^lint\.engine: 'turbo' is not valid \(set in -f .*\); valid: default, ruff$", id="lint-engine-key"),
    case("lint", config="lint: {python_paths: app}\n", expect=r"^lint\.python_paths: 'app' is not valid \(set in -f .*\); valid: a list of non-empty text$", id="lint-python-paths-not-a-list"),
    case("lint", config="lint: {python_paths: ['']}\n", expect=r"^lint\.python_paths\.0: '' is not valid.*; valid: non-empty text$", id="lint-python-paths-empty-item"),
    case("lint", config="lint: {python_paths: [/nonexistent/lint/src]}\n", expect=r"^lint\.python_paths: '/nonexistent/lint/src' " + PATH, id="lint-python-paths-absolute-missing"),
    case("lint.python", config="lint: {python_paths: [../no-such-dir-for-lint]}\n", expect=r"^lint\.python_paths: '\.\./no-such-dir-for-lint' " + PATH, id="lint-python-paths-dotdot-missing"),
    case("lint.python", config="lint: {python_paths: [kubernetes]}\n", expect=r"^lint\.python_paths: 'kubernetes' matches no Python file \(set in -f .*\)$", id="lint-python-paths-no-python"),
    case("lint.js", config="lint: {js_paths: [examples/frontend/.prettierrc]}\n", expect=r"^lint\.js_paths: 'examples/frontend/\.prettierrc' matches no JS/TS \(or Prettier\) file", id="lint-js-paths-no-js"),
    case("lint.js", config="lint: {js_paths: [/nonexistent/web]}\n", expect=r"^lint\.js_paths: '/nonexistent/web' " + PATH, id="lint-js-paths-absolute-missing"),
    case("lint.js", config="lint: {js_paths: [tasks]}\n", expect=r"^lint\.js_paths: 'tasks' is outside lint\.frontend 'examples/frontend'", id="lint-js-paths-outside-frontend"),
    case("lint.js", config="lint: {frontend: tasks.py}\n", expect=r"^lint\.frontend: 'tasks\.py' is not valid \(set in -f .*\); .*tasks\.py is not a directory$", id="lint-frontend-is-a-file"),
    case("lint.js", config="lint: {frontend: no-such-frontend}\n", expect=r"^lint\.frontend: 'no-such-frontend' is not valid \(set in -f .*\); valid: an existing directory .*does not exist$", id="lint-frontend-missing"),
    case("lint", config="lint: {cache_dir: README.md}\n", expect=r"^lint\.cache_dir: 'README\.md' is not valid \(set in -f .*\); .*README\.md is not a directory$", id="lint-cache-dir-is-a-file"),
    case("lint", config="lint: {skip: [pylint]}\n", expect=r"^lint\.skip\.0: 'pylint' is not valid.*; valid: bandit, black", id="lint-skip-key-unknown"),
    case("lint", config="lint: {skip: flake8}\n", expect=r"^lint\.skip: 'flake8' is not valid \(set in -f .*\); valid: a list of", id="lint-skip-key-not-a-list"),
    case("lint", config="lint: {fix_wait: soon}\n", expect=r"^lint\.fix_wait: 'soon' is not valid \(set in -f .*\); valid: a duration like 90s", id="lint-fix-wait-key"),
    case("lint", config="lint: {fix_wait: -5s}\n", expect=r"^lint\.fix_wait: '-5s' is not valid", id="lint-fix-wait-negative"),
    case("lint", config="lint: {ruff_select: 'e,w'}\n", expect=r"^lint\.ruff_select: 'e,w' is not valid \(set in -f .*\); valid: comma-separated rule codes", id="lint-ruff-select-key"),
    case("lint", config="lint: {base: '-main'}\n", expect=r"^lint\.base: '-main' is not valid \(set in -f .*\); valid: a git ref", id="lint-base-key"),
    case("lint", config="lint: {pyhton_paths: [tasks]}\n", expect=r"^lint\.pyhton_paths: unknown key; valid keys: python_paths, js_paths", id="lint-unknown-key"),
    # INVOKE_LINT_* and SKIP
    case("lint", env={"INVOKE_LINT_JOBS": "abc"}, expect=r"^INVOKE_LINT_JOBS: 'abc' is not valid; valid: an integer from 0 to 64$", id="env-lint-jobs-text"),
    case("lint", env={"INVOKE_LINT_ENGINE": "fast"}, expect=r"^lint\.engine: 'fast' is not valid \(set in INVOKE_LINT_ENGINE\); valid: default, ruff$", id="env-lint-engine"),
    case("lint", env={"INVOKE_LINT_SKIP": "pylint"}, expect=r"^INVOKE_LINT_SKIP: 'pylint' is not valid; valid: bandit, black", id="env-lint-skip"),
    case("lint", env={"INVOKE_LINT_FIX_WAIT": "forever"}, expect=r"^lint\.fix_wait: 'forever' is not valid \(set in INVOKE_LINT_FIX_WAIT\)", id="env-lint-fix-wait"),
    case("lint.js", env={"INVOKE_LINT_FRONTEND": "README.md"}, expect=r"^lint\.frontend: 'README\.md' is not valid \(set in INVOKE_LINT_FRONTEND\); .*is not a directory$", id="env-lint-frontend-file"),
    case("lint.python", env={"INVOKE_LINT_PYTHON_PATHS": "/nonexistent"}, expect=r"^lint\.python_paths: '/nonexistent' is not valid \(set in INVOKE_LINT_PYTHON_PATHS\); valid: an existing file or directory", id="env-lint-python-paths"),
    case("lint", env={"INVOKE_LINT_CACHE_DIR": "tasks.py"}, expect=r"^lint\.cache_dir: 'tasks\.py' is not valid \(set in INVOKE_LINT_CACHE_DIR\)", id="env-lint-cache-dir-file"),
    case("lint", env={"INVOKE_LINT_BASE": "-x"}, expect=r"^lint\.base: '-x' is not valid \(set in INVOKE_LINT_BASE\)", id="env-lint-base"),
    case("lint", env={"SKIP": "pylint"}, expect=r"^SKIP: 'pylint' " + TOOLS, id="env-skip-unknown"),
    case("lint.python", env={"SKIP": "black,mypy"}, expect=r"^SKIP: 'mypy' " + TOOLS, id="env-skip-unknown-second"),
    # a project of its own (not a git repository), read by the real inv
    case("lint", "--changed", project_yaml="lint: {python_paths: [tasks], js_paths: []}\n", expect=r"^lint\.python_paths: 'tasks' is not inside a git repository \(--changed needs one\)", id="lint-changed-outside-git"),
    case("lint.install-hook", project_yaml="lint: {}\n", expect=r"^lint\.install-hook: \S+ is not inside a git work tree$", id="lint-install-hook-outside-git"),
    case("lint.python", project_yaml="lint: {python_paths: [tasks, tests]}\n", expect=r"^lint\.python_paths: 'tests' is not valid \(set in \S+invoke\.yaml\); valid: an existing file or directory", id="lint-python-paths-missing-in-project"),
]
# fmt: on
