"""The command lines README.md shows, as a user would copy them (used by test_readme.py).

A command is a line of a fenced ``sh`` block, or an inline code span, that runs ``inv``. A
synopsis (``inv backup.list [--env ENV]``: brackets, ``|``, ``...``, ``<...>`` or an
UPPERCASE placeholder) describes a family of commands and is not run itself; every other
command must be run, as written, by a test marked ``@readme("...")``.
"""

from __future__ import annotations

import re
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
RUNS_INV = re.compile(r"(^|&&\s*|;\s*|\|\|\s*|^(?:[A-Z_][A-Z0-9_]*=\S+\s+)+)inv(\s|$)")
PLACEHOLDER = re.compile(r"(?:^|[\s=,])([A-Z][A-Z0-9_]*)(?=[\s,]|$)")


def is_synopsis(command: str) -> bool:
    bare = re.sub(r"'[^']*'|\"[^\"]*\"|\$\([^)]*\)", "", command)  # quotes, $(...)
    if any(mark in bare for mark in ("[", "...", "<", ">", "|", "*")):
        return True
    if re.fullmatch(r"(?:[A-Z_][A-Z0-9_]*=\S+\s+)*inv", bare.strip()):
        return True  # "inv" alone, in prose
    return bool(PLACEHOLDER.search(bare))


def commands(readme: Path) -> list[str]:
    text = readme.read_text()
    found: list[str] = []
    for lang, body in FENCE.findall(text):
        if lang not in ("sh", "bash", "shell", ""):
            continue
        for line in body.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#") and RUNS_INV.search(line):
                found.append(line)
    prose = FENCE.sub("", text)
    for span in SPAN.findall(prose):
        span = span.strip()
        if RUNS_INV.search(span):
            found.append(span)
    unique: list[str] = []
    for command in found:
        if command not in unique:
            unique.append(command)
    return unique
