"""Directory archives: every data file is checked against pg_restore's table of contents, not
only against the checksum list inside the archive (which whoever can rewrite the archive can
rewrite too): a data file cut short -- its checksum list and the sidecar forged to match -- does
not verify (issue 16 item 6)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import run_task
from fixtures_backup import BackupEnv, backup_collection
from test_backup_postgres import reseal

NS = backup_collection()


def forge(made: Path, work: Path, damage: str) -> str:
    """Damage the biggest data file inside the archive ``made``, rewrite flowlet.sha256sums to
    match, re-tar and reseal (sidecar); returns the damaged file's name."""
    work.mkdir()
    subprocess.run(["tar", "-x", "-f", str(made), "-C", str(work)], check=True)
    biggest = max(work.glob("*.dat*"), key=lambda p: p.stat().st_size)
    data = biggest.read_bytes()
    if damage == "mid-row":
        biggest.write_bytes(data[: len(data) // 2])
    elif damage == "rows-dropped":  # cut at a row boundary: the end-of-data line is gone
        biggest.write_bytes(data[: data.index(b"\n", len(data) // 2) + 1])
    elif damage == "missing-field":  # a whole line whose last field is gone
        lines = data.split(b"\n")
        lines[3] = lines[3].rsplit(b"\t", 1)[0]
        biggest.write_bytes(b"\n".join(lines))
    else:  # removed: the data file is gone
        biggest.unlink()
    sums = work / "flowlet.sha256sums"
    sums.write_text(
        "".join(
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
            for p in sorted(work.iterdir())
            if p.is_file() and p.name != sums.name
        )
    )
    subprocess.run(["tar", "-c", "-f", str(made), "-C", str(work), "."], check=True)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    reseal(made, made.read_bytes())
    return biggest.name


@pytest.mark.parametrize("damage", ["mid-row", "rows-dropped", "missing-field", "removed"])
def test_a_forged_checksum_list_cannot_hide_a_damaged_data_file(
    pg_backup_env: BackupEnv, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    env = pg_backup_env
    argv = ["backup.postgres", "--database", "big", "--format", "directory", "--compress", "none"]
    assert run_task(NS, argv, config_file=env.config) == 0
    (made,) = env.backups()
    verify = ["backup.verify", "--file", str(made)]
    assert run_task(NS, verify, config_file=env.config) == 0
    name = forge(made, env.out / "x", damage)
    capsys.readouterr()
    assert run_task(NS, verify, config_file=env.config) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and made.name in err, err
    assert name.split(".")[0] in err, err


def checked(stream: bytes, chunk: int = 7) -> list[str]:
    from tasks.backup.dirtoc import CopyChecker

    checker = CopyChecker()
    for start in range(0, len(stream), chunk):  # rows split across chunks
        checker(stream[start : start + chunk])
    checker.finish()
    return checker.problems


def data(name: bytes) -> bytes:
    """pg_dump's comment before a table's COPY."""
    return b"--\n-- Data for Name: " + name + b"; Type: TABLE DATA; Schema: s; Owner: u\n--\n\n"


HEADER = b"SET x = 1;\n\n" + data(b"t") + b'COPY public.t (id, "a,b", c) FROM stdin;\n'


@pytest.mark.parametrize(
    "stream,expected",
    [
        (HEADER + b"1\tx\\ty\t\\N\n2\t\t\n\\.\n\n\n-- done\n", []),
        (HEADER + b"1\tx\t\\N\n2\tcut", ["public.t: row 2 has 2 fields, not 3"]),
        (
            HEADER + b"1\tx\ty\n",
            ["public.t: the data ends without its end-of-data line (cut short)"],
        ),
        (HEADER + b"1\tx\n\\.\n", ["public.t: row 1 has 2 fields, not 3"]),
        (data(b"e") + b"COPY public.e  FROM stdin;\n\\.\n", []),
        (data(b"q") + b'COPY "s.x"."t""q" (a) FROM stdin;\nv\n\\.\n', []),
        (b"CREATE FUNCTION f() AS $$\nCOPY public.t (a) FROM stdin;\n$$;\n", []),
    ],
    ids=["ok", "mid-row", "no-terminator", "missing-field", "no-columns", "quoted-names", "body"],
)
def test_copy_checker(stream: bytes, expected: list[str]) -> None:
    for chunk in (1, 7, 1 << 20):  # rows split across chunks, and all at once
        assert checked(stream, chunk) == expected, chunk


def test_problems_name_the_data_file_of_the_toc_entry() -> None:
    from tasks.backup.dirtoc import CopyChecker, problems, table_data_entries, unquote

    toc = (
        ";     Format: DIRECTORY\n"
        "216; 1259 16388 TABLE public accounts flowlet\n"
        "3362; 0 16399 TABLE DATA ledger entries flowlet\n"
        "3360; 0 16388 TABLE DATA public accounts flowlet\n"
        '3361; 0 16390 TABLE DATA s.x t"q flowlet\n'
    )
    entries = table_data_entries(toc)
    assert entries == {"ledger.entries": "3362", "public.accounts": "3360", 's.x.t"q': "3361"}
    assert unquote(b'"s.x"."t""q"') == 's.x.t"q'
    checker = CopyChecker()
    checker(data(b"accounts") + b"COPY public.accounts (id) FROM stdin;\n1\t2\n\\.\n")
    checker(data(b"q") + b'COPY "s.x"."t""q" (a) FROM stdin;\n\\.\n')
    checker(data(b"stray") + b"COPY public.stray (a) FROM stdin;\n\\.\n")
    checker.finish()
    assert problems(checker, entries) == [
        "3360.dat (public.accounts: row 1 has 2 fields, not 1)",
        "3362.dat (ledger.entries: no data in the stream)",
        "public.stray: data the table of contents does not list",
    ]
