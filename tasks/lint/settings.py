"""The ``lint`` config key: what is linted, with which engine, the result cache and the lock."""

from __future__ import annotations

from tasks.core.settings import Choice, Duration, FilePath, Int, List, Section, Str

ENGINES = ("default", "ruff")
# Every tool name --skip, SKIP and lint.skip accept (both engines).
TOOL_NAMES = (
    "bandit",
    "black",
    "detect-secrets",
    "eslint",
    "flake8",
    "isort",
    "prettier",
    "ruff-check",
    "ruff-format",
)
# --format: the human report, or a CI document (tasks/lint/report.py)
FORMATS = ("text", "sarif", "github", "junit", "json")
GIT_REF = r"^[^-\s][^\s]*$"
GIT_REF_DESC = "a git ref or commit (not starting with '-', no spaces)"

SCHEMA = Section(
    {
        "python_paths": List(
            ["examples/backend", "tasks", "tests", "bench", "tasks.py"],
            Str(empty=False),
            "Python files and directories (absolute, or relative to the project root)",
        ),
        "js_paths": List(
            ["examples/frontend"], Str(empty=False), "JS/TS paths, inside lint.frontend"
        ),
        "frontend": FilePath(
            "examples/frontend", "where ESLint/Prettier run and node_modules lives", kind="dir"
        ),
        "engine": Choice("default", ENGINES, "default or ruff (--engine)"),
        "ruff_select": Str(
            "E,W,F,I",
            "rules for --engine ruff",
            pattern=r"^[A-Z0-9]*(,[A-Z0-9]+)*$",
            desc="comma-separated rule codes like E,W,F,I (empty: Ruff's own config)",
        ),
        "base": Str("", "default --base", pattern=GIT_REF, desc=GIT_REF_DESC),
        "cache_dir": FilePath(
            ".flowlet/lint-cache", "the result cache (empty: none)", kind="dir", empty=True
        ),
        "jobs": Int(0, "tools at once (0 = CPU count)", minimum=0, maximum=64),
        "skip": List([], Choice("flake8", TOOL_NAMES), "tools never run (as --skip / SKIP)"),
        "fix_wait": Duration(
            "2m", "how long --fix waits for another --fix of the same tree", min_seconds=0
        ),
    }
)
