"""The linters: what each one is, the arguments it gets, and what its exit code means.

Pure definitions only. Every check runs in a machine-readable mode (``--format=default``,
JSON, ``--list-different`` ...) so that :mod:`tasks.lint.findings` can split its output per
file: that is what lets the result cache keep findings, and what lets a snapshot of a commit
be reported with the repository's paths. File names always follow ``--`` (a file named
``--list-different.md`` is a file, not an option).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SIDES = ("python", "js")

# Results of one tool run (and of one file).
OK, FINDINGS, ERROR = "ok", "findings", "error"

# The configuration files each tool reads where it runs (the top of the tree for the Python
# tools, the frontend for ESLint and Prettier): hashed into its cache key, and copied from a
# commit into its snapshot. In pyproject.toml only the tool's own table counts (and
# project.requires-python, from which Black and Ruff infer the target version).
FLAKE8_CONFIGS = (".flake8", "setup.cfg", "tox.ini")
ISORT_CONFIGS = (".isort.cfg", "pyproject.toml", "setup.cfg", "tox.ini", ".editorconfig")
BANDIT_CONFIGS = ("pyproject.toml", ".bandit")
RUFF_CONFIGS = ("pyproject.toml", "ruff.toml", ".ruff.toml")
ESLINT_CONFIGS = (
    "eslint.config.js", "eslint.config.mjs", "eslint.config.cjs", "eslint.config.ts",
    "eslint.config.mts", "eslint.config.cts", "package.json",
)  # fmt: skip
PRETTIER_CONFIGS = (
    "package.json", ".prettierrc", ".prettierrc.json", ".prettierrc.yaml", ".prettierrc.yml",
    ".prettierrc.json5", ".prettierrc.js", ".prettierrc.mjs", ".prettierrc.cjs",
    ".prettierrc.toml", "prettier.config.js", "prettier.config.mjs", "prettier.config.cjs",
    ".prettierignore", ".editorconfig", ".gitignore",
)  # fmt: skip
SECRETS_CONFIGS = (".secrets.baseline",)
PYTHON_CONFIGS = tuple(
    dict.fromkeys(FLAKE8_CONFIGS + ISORT_CONFIGS + BANDIT_CONFIGS + RUFF_CONFIGS)
)
JS_CONFIGS = tuple(dict.fromkeys(ESLINT_CONFIGS + PRETTIER_CONFIGS))


@dataclass(frozen=True)
class Tool:
    """One linter: ``binary`` plus ``check`` (read-only) or ``fix`` arguments, then files."""

    name: str
    side: str  # "python" or "js"
    binary: str  # console script (Python) or node_modules/.bin name (JS)
    package: str  # what pip / npm installs
    check: tuple[str, ...]
    fix: tuple[str, ...] | None  # None: the tool reports only, fix by hand
    files: str  # which file list it gets: "python", "bandit", "eslint" or "prettier"
    parser: str  # the findings parser of its check output
    configs: tuple[str, ...] = ()  # the config files it reads (see above)
    findings_codes: frozenset[int] = frozenset({1})
    cost: tuple[float, float] = (0.2, 0.002)  # CPU seconds: to start, per KB of input
    hint: str = ""  # how to fix findings when the tool has no fixer
    script: str = ""  # run as ``<the tools' python> <script>`` (``binary``: presence only)


def python_tools(engine: str, *, bandit_config: str | None, ruff_select: str) -> list[Tool]:
    """The Python tools of ``engine`` (Bandit in both: Ruff's S rules are not Bandit)."""
    bandit = Tool(
        name="bandit", side="python", binary="bandit", package="bandit",
        check=("-q", "-f", "json", *(("-c", bandit_config) if bandit_config else ())), fix=None,
        files="bandit", parser="bandit", configs=BANDIT_CONFIGS, cost=(0.3, 0.002),
        hint="fix by hand, or '# nosec BXXX' with a reason",
    )  # fmt: skip
    if engine == "ruff":
        select = ("--select", ruff_select) if ruff_select else ()
        return [
            bandit,
            Tool(name="ruff-check", side="python", binary="ruff", package="ruff",
                 check=("check", "--no-cache", "--output-format", "concise", *select),
                 fix=("check", "--no-cache", "--fix", "--quiet", *select), files="python",
                 parser="ruff-check", configs=RUFF_CONFIGS, cost=(0.02, 0.0005)),
            Tool(name="ruff-format", side="python", binary="ruff", package="ruff",
                 check=("format", "--no-cache", "--check", "--output-format", "concise"),
                 fix=("format", "--no-cache", "--quiet"), files="python", parser="ruff-format",
                 configs=RUFF_CONFIGS, cost=(0.02, 0.0005)),
        ]  # fmt: skip
    return [
        bandit,
        Tool(name="flake8", side="python", binary="flake8", package="flake8",
             check=("--format=default",), fix=None, files="python", parser="flake8",
             configs=FLAKE8_CONFIGS, cost=(0.25, 0.004),
             hint="fix by hand (flake8 reports only)"),
        Tool(name="black", side="python", binary="black", package="black", check=("--check",),
             fix=("--quiet",), files="python", parser="black", configs=("pyproject.toml",),
             cost=(0.35, 0.003)),
        Tool(name="isort", side="python", binary="isort", package="isort",
             check=("--check-only",), fix=("--quiet",), files="python", parser="isort",
             configs=ISORT_CONFIGS, cost=(0.15, 0.001)),
    ]  # fmt: skip


SECRETS_SCRIPT = Path(__file__).resolve().parent / "scanner" / "scan_secrets.py"


def secrets_tool() -> Tool:
    """detect-secrets on every linted file (both sides), through :data:`SECRETS_SCRIPT`,
    which prints a secret's first and last characters only; ``.secrets.baseline`` at the top
    of the tree lists the known ones."""
    return Tool(
        name="detect-secrets", side="python", binary="detect-secrets", package="detect-secrets",
        check=(), fix=None, files="secrets", parser="detect-secrets", configs=SECRETS_CONFIGS,
        cost=(0.5, 0.004), script=str(SECRETS_SCRIPT),
        hint="remove the secret and rotate it; a false positive: add it to .secrets.baseline "
        "(detect-secrets scan > .secrets.baseline, then detect-secrets audit .secrets.baseline)",
    )  # fmt: skip


def js_tools() -> list[Tool]:
    """ESLint and Prettier, from the frontend's node_modules (exit 2 = crash for both)."""
    return [
        Tool(name="eslint", side="js", binary="eslint", package="eslint",
             check=("--format", "json"), fix=("--fix", "--format", "json"), files="eslint",
             parser="eslint", configs=ESLINT_CONFIGS, cost=(0.7, 0.025)),
        Tool(name="prettier", side="js", binary="prettier", package="prettier",
             check=("--list-different",), fix=("--write", "--log-level", "warn"),
             files="prettier", parser="prettier", configs=PRETTIER_CONFIGS,
             cost=(0.4, 0.025)),
    ]  # fmt: skip


# Tools that write the same files run in this order in --fix (isort before black, as the
# black profile of isort expects black to have the last word).
FIX_ORDER = ("isort", "black", "ruff-check", "ruff-format", "eslint", "prettier")


def argv(tool: Tool, mode: str, binary: str, files: tuple[str, ...]) -> tuple[str, ...]:
    """``binary <check or fix arguments> -- <files>`` (``binary script ...`` for a script)."""
    args = tool.check if mode == "check" else tool.fix
    assert args is not None  # nosec B101  # fix plans take fixers only
    script = (tool.script,) if tool.script else ()
    return (binary, *script, *args, "--", *files)


def classify(tool: Tool, returncode: int | None, stderr: str) -> str:
    """``ok``, ``findings`` (the tool's own "found problems" code) or ``error`` (it crashed).

    A missing binary (``None``), a signal (negative code), any code the tool does not use for
    findings (Black 123, ESLint/Prettier/Ruff 2, usage errors), or a Python traceback on stderr
    behind a findings code (flake8, isort and bandit exit 1 on an uncaught exception) is a crash.
    """
    if returncode == 0:
        return OK
    if returncode is None or returncode < 0 or returncode not in tool.findings_codes:
        return ERROR
    if tool.side == "python" and "Traceback (most recent call last)" in stderr:
        return ERROR
    return FINDINGS


def fix_hint(tool: Tool, result: str, fix_command: str) -> str:
    """The summary's last column: what to run (or do) about a failed tool."""
    if result == OK:
        return ""
    if result == ERROR:
        return "tool error: see its output above"
    if tool.fix is None:
        return tool.hint
    return fix_command
