"""A directory archive's data files checked against pg_restore's table of contents.

``flowlet.sha256sums`` inside a directory archive is written by the same hand as the files it
lists: whoever can rewrite the archive (and its sidecar) can rewrite it too, and ``pg_restore -f
/dev/null`` accepts an uncompressed data file cut short at any byte. So verify also reads the
archive the way a restore does: ``pg_restore -l`` lists its ``TABLE DATA`` entries, and the SQL
``pg_restore -f -`` writes is parsed as it streams: every entry must give exactly one ``COPY``
block, every row of a block must have as many fields as the block names columns (COPY's text
format escapes tabs and newlines inside values, so a raw tab separates fields and a raw newline
ends a row), and every block must end with its own ``\\.`` line (which pg_dump writes into each
data file: a file cut short loses it). Rows are counted a run at a time (tabs against rows
times the block's columns, in C), row by row only to name the first bad one. A data file cut
exactly at a row boundary with its end line forged (or rows forged to balance the counts) is
beyond any check of the archive alone: ``--restore-test`` and ``backup.drill`` compare row
counts with the source.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tasks.backup.plan import Stage

COPY_RE = re.compile(rb"^COPY (?P<name>.+?) (?:\((?P<cols>.*)\) )?FROM stdin;$")
TOC_DATA_RE = re.compile(r"^(?P<id>\d+); \d+ \d+ TABLE DATA (?P<schema>\S+) (?P<tag>.+?) \S+$")
TERMINATOR = b"\\."
DATA_HEADER = b"-- Data for Name: "  # pg_dump's line before each COPY (a COPY line in a
# function body or a string, without it, is not taken for data)


def toc_stage(workdir: Path) -> Stage:
    """``pg_restore -l``: the archive's table of contents."""
    return Stage("pg_restore", ("pg_restore", "-l", "--format=directory", "--", str(workdir)))


def sql_stage(workdir: Path) -> Stage:
    """``pg_restore -f -``: the whole archive as the SQL a restore would run (every data file
    decompressed and read), on stdout for :class:`CopyChecker`."""
    return Stage("pg_restore", ("pg_restore", "-f", "-", "--format=directory", "--", str(workdir)))


def table_data_entries(toc: str) -> dict[str, str]:
    """``schema.table`` -> data file stem (the dump id) of each ``TABLE DATA`` entry."""
    entries = {}
    for line in toc.splitlines():
        match = TOC_DATA_RE.match(line)
        if match:
            entries[f"{match['schema']}.{match['tag']}"] = match["id"]
    return entries


def column_count(columns: bytes | None) -> int:
    """Columns of a ``COPY name (a, "b,c", d)`` list: commas outside double quotes, plus one."""
    if columns is None or not columns.strip():
        return 0
    commas, quoted = 0, False
    for byte in columns:
        if byte == 0x22:  # '"' ('""' inside a quoted name toggles twice)
            quoted = not quoted
        elif byte == 0x2C and not quoted:
            commas += 1
    return commas + 1


def unquote(name: bytes) -> str:
    """``schema.table`` as ``pg_restore -l`` spells it, from a quoted ``COPY`` target
    (``public."x.y""z"`` -> ``public.x.y"z``)."""
    text = name.decode("utf-8", "replace")
    parts: list[str] = []
    part, quoted, i = "", False, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            if quoted and text[i + 1 : i + 2] == '"':
                part, i = part + '"', i + 2
                continue
            quoted = not quoted
        elif char == "." and not quoted:
            parts.append(part)
            part = ""
        else:
            part += char
        i += 1
    return ".".join([*parts, part])


@dataclass
class CopyChecker:
    """A ``sink`` for the SQL stream: checks each COPY block as it passes (see the module)."""

    blocks: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # rows per block (table), as read
    problems: list[str] = field(default_factory=list)
    _rest: bytes = b""
    _block: str | None = None
    _tabs: int = 0
    _row: int = 0
    _announced: bool = False  # the last SQL line was pg_dump's "-- Data for Name: ..." header

    def __call__(self, chunk: bytes) -> None:
        data, pos = self._rest + chunk, 0
        while True:
            if self._block is None:  # SQL between the blocks: line by line
                end = data.find(b"\n", pos)
                if end < 0:
                    break
                self._line(data[pos:end])
                pos = end + 1
                continue
            # rows: whole runs of complete lines at once (counted in C), up to the end line
            if data.startswith(TERMINATOR + b"\n", pos):
                self._block, pos = None, pos + len(TERMINATOR) + 1
                continue
            end = data.find(b"\n" + TERMINATOR + b"\n", pos)
            last = end + 1 if end >= 0 else data.rfind(b"\n", pos) + 1
            if last <= pos:
                break
            self._rows(data[pos:last])
            pos = last
        self._rest = data[pos:]

    def _rows(self, rows: bytes) -> None:
        """Complete rows (each ending in a newline) of the current block."""
        count = rows.count(b"\n")
        if rows.count(b"\t") == count * self._tabs:
            self._row += count
            self.rows[self._block or ""] += count
            return
        for line in rows[:-1].split(b"\n"):  # which row: checked one by one
            if self._block is None:
                return
            self._line(line)

    def _line(self, line: bytes) -> None:
        if self._block is None:
            if line.startswith(DATA_HEADER) and b"; Type: TABLE DATA;" in line:
                self._announced = True
                return
            if not line or line == b"--":
                return
            match = COPY_RE.match(line) if self._announced else None
            self._announced = False
            if match:
                self._block = unquote(match["name"])
                self._tabs = max(column_count(match["cols"]) - 1, 0)
                self._row = 0
                self.rows.setdefault(self._block, 0)
                self.blocks.append(self._block)
            return
        if line == TERMINATOR:
            self._block = None
            return
        self._row += 1
        self.rows[self._block] += 1
        tabs = line.count(b"\t")
        if tabs != self._tabs:
            self._fail(f"row {self._row} has {tabs + 1} fields, not {self._tabs + 1}")

    def _fail(self, problem: str) -> None:
        self.problems.append(f"{self._block}: {problem}")
        self._block = None  # one problem per block; the rest of the stream is still read

    def finish(self) -> None:
        if self._rest:
            self._line(self._rest)
            self._rest = b""
        if self._block is not None:
            self._fail("the data ends without its end-of-data line (cut short)")


def problems(checker: CopyChecker, entries: dict[str, str]) -> list[str]:
    """What is wrong, each naming its data file (``ID.dat``) where the TOC knows it."""
    found = []
    for problem in checker.problems:
        table = problem.split(": ", 1)[0]
        stem = entries.get(table)
        found.append(f"{stem}.dat ({problem})" if stem else problem)
    missing = sorted(set(entries) - set(checker.blocks))
    found += [f"{entries[t]}.dat ({t}: no data in the stream)" for t in missing]
    extra = _extra(checker.blocks, entries)
    found += [f"{t}: data the table of contents does not list" for t in extra]
    return found


def _extra(blocks: Sequence[str], entries: dict[str, str]) -> list[str]:
    counts = Counter(blocks)
    return sorted(b for b in counts if b not in entries) + sorted(
        b for b, n in counts.items() if n > 1
    )
