"""The ``lint`` config key: what is linted, with which engine, and the caches."""

from __future__ import annotations

from tasks.core.settings import Choice, FilePath, Int, List, Section, Str

ENGINES = ("default", "ruff")
GIT_REF = r"^[^-\s][^\s]*$"

SCHEMA = Section(
    {
        "python_paths": List(
            ["examples/backend", "tasks", "tests", "bench", "tasks.py"],
            Str(empty=False),
            "Python files and directories",
        ),
        "js_paths": List(["examples/frontend"], Str(empty=False), "JS/TS paths, inside frontend"),
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
        "base": Str("", "default --base", pattern=GIT_REF, desc="a git ref (not starting with '-')"),
        "cache_dir": FilePath(".flowlet/lint-cache", "caches (empty: none)", kind="dir", empty=True),
        "jobs": Int(0, "tools at once (0 = CPU count)", minimum=0, maximum=64),
    }
)
