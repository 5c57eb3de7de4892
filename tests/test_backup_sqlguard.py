"""The plain-dump guard (pure): what psql would run as a client command is refused, naming the
line; what pg_dump writes passes unchanged (its own \\restrict lines dropped)."""

from __future__ import annotations

import pytest

from tasks.backup.sqlguard import PsqlGuard, guard_script, psql_restricts
from tasks.core.errors import Refused

PASSES = {
    "copy-data": b"COPY public.t (a, b) FROM stdin;\n1\t\\N\n\\! data, not a command\n\\.\n",
    "copy-quoted-name": b'COPY public."we;ird\nname" (a) FROM stdin;\n\\x\n\\.\nselect 1;\n',
    "dollar-quoted": b"create function f() returns text as $$\n\\! x $$ language sql;\n",
    "tagged-dollar": b"select $a$ $b$ \\! $a$, $x$$x$;\n",
    "nested-comment": b"/* \\! /* nested */ still \\! */ select 1;\n",
    "line-comment": b"-- \\! a comment\nselect 1::int, x[1:2], y := 1;\n",
    "quoted-strings": b"select 'a\\\\', E'\\\\n', 'it''s', \"q\"\"\\\";\n",
    "numbers": b"select 1.5e3, .5, 10, $1;\n",
    "identifier-dollar": b"select a$b$ from t;\n",
    "begin-atomic": b"CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
    b"select 1;\nEND;\nCOPY t (a) FROM stdin;\n\\!\n\\.\n",
    "lowercase-variable": b"select x[1:n];\n",
    "e-string-escapes": b"select E'it\\'s \\! x', U&'\\0041', X'0F', B'01';\n",
}

REFUSED = {
    "shell": (b"\\! touch /tmp/x\n", "line 1: psql meta-command \\!"),
    "output-pipe": (b"select 1;\n\\o |touch /tmp/x\n", "line 2: psql meta-command \\o"),
    "copy-program": (b"\\copy t from program 'id'\n", "line 1: psql meta-command \\copy"),
    "mid-line": (b"select 1; \\! id\n", "line 1: psql meta-command \\!"),
    "after-copy-data": (
        b"COPY t (a) FROM stdin;\n1\n\\.\n\\! id\n",
        "line 4: psql meta-command \\!",
    ),
    "connect": (b"\\connect other\n", "line 1: psql meta-command \\connect"),
    "escaped-semicolon": (b"select 1 \\;\n", "line 1: psql meta-command \\;"),
    "quote-ambiguity": (
        b"select 'a\\' \\! id ';\n",
        "line 1: a backslash before a quote (its meaning depends on standard_conforming",
    ),
    "lowercase-copy": (b"copy t from stdin;\n\\.\n\\! id\n", "line 1: a COPY statement not as"),
    "copy-then-more": (b"COPY t FROM stdin; select 1;\n", "line 1: a COPY statement not as"),
    "copy-after-comment": (b"/* x */ COPY t FROM stdin;\n", "line 1: a COPY statement not at"),
    "copy-program-sql": (b"COPY t FROM PROGRAM 'id';\n", "line 1: a COPY statement not as"),
    "copy-in-begin-atomic": (
        b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC select 1;\n"
        b"COPY t (a) FROM stdin;\n\\! id\n",
        "line 3: psql meta-command \\!",
    ),
    "after-an-e-string": (b"select E'\\'' \\! id\n", "line 1: psql meta-command \\!"),
    "builtin-variable": (b"select :LAST_ERROR_MESSAGE;\n", "line 1: psql variable :LAST_"),
    "number-junk": (
        b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1end;\n",
        "line 1: a number run into a name",
    ),
    "restrict-mid-statement": (b"select\n\\restrict abc\n;\n", "line 2: psql meta-command"),
}


@pytest.mark.parametrize("name", sorted(PASSES))
def test_what_pg_dump_writes_passes_unchanged(name: str) -> None:
    assert guard_script("dump", PASSES[name]) == PASSES[name]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_client_commands_are_refused_naming_the_line(name: str) -> None:
    script, message = REFUSED[name]
    with pytest.raises(Refused) as caught:
        guard_script("x.sql.gz", script)
    assert str(caught.value).startswith(f"x.sql.gz: refusing to restore it: {message}")
    assert "\n" not in str(caught.value)


def test_pg_dump_restrict_lines_are_replaced_by_our_own_key() -> None:
    dump = b"--\n\\restrict AbC123\n\nSET a = 1;\n\\unrestrict AbC123\n"
    guard = PsqlGuard("dump", restrict=True)
    out = guard.feed(dump[:7]) + guard.feed(dump[7:]) + guard.finish()
    head, rest = out.split(b"\n", 1)
    assert head.startswith(b"\\restrict ") and len(head) > 40 and b"AbC123" not in head
    assert rest == b"--\n\nSET a = 1;\n"
    assert guard_script("dump", dump) == b"--\n\nSET a = 1;\n"


def test_chunks_split_anywhere_give_the_same_answer() -> None:
    script = b"COPY t (a) FROM stdin;\n1\n\\.\nselect 'a\nb'; $$ x\n$$;\n\\! id\n"
    for size in (1, 2, 3, 7):
        guard = PsqlGuard("dump")
        with pytest.raises(Refused, match="line 7: psql meta-command"):
            for start in range(0, len(script), size):
                guard.feed(script[start : start + size])
            guard.finish()


@pytest.mark.parametrize(
    "version,restricts",
    [
        ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", True),
        ("psql (PostgreSQL) 15.13", False),
        ("psql (PostgreSQL) 16.10", True),
        ("psql (PostgreSQL) 17.5", False),
        ("psql (PostgreSQL) 18.0", True),
        ("psql (PostgreSQL) 12.22", False),
        ("no version", False),
    ],
)
def test_psql_restricts(version: str, restricts: bool) -> None:
    assert psql_restricts(version) is restricts


def test_an_ambiguous_quote_is_read_as_pg_dump_sets_it_when_psql_restricts_itself() -> None:
    """``'\\'``: one backslash with standard_conforming_strings on (pg_dump's), an escaped
    quote with it off: refused unless psql refuses backslash commands itself."""
    script = b"create view v as select replace(a, '\\', '/') from t;\n"
    with pytest.raises(Refused, match="line 1: a backslash before a quote"):
        guard_script("dump", script)
    guard = PsqlGuard("dump", restrict=True)
    assert guard.feed(script).endswith(script)
    with pytest.raises(Refused, match="line 2: psql meta-command"):
        guard.feed(b"\\! id\n")


def test_a_byte_a_client_encoding_could_hide_is_refused_without_psql_restrict() -> None:
    """In SJIS (which SQL in the dump can switch psql to) a byte >= 0x80 hides the next one:
    ``\\x81'`` is no quote for psql. Only letters, _ and such bytes may follow (old psql)."""
    hiding = "select \u0081' \\! x\n';\n".encode()  # SJIS: 0x81 hides the quote
    with pytest.raises(Refused, match=r"line 1: a non-ASCII byte before \"'\""):
        guard_script("dump", hiding)
    with pytest.raises(Refused, match="line 1: a non-ASCII byte before ' '"):
        guard_script("dump", b"select \x8fa ;\n")
    fine = "comment on table t is 'caf\u00e9s\n\u540d\u524d\n';\n".encode()
    assert guard_script("dump", fine) == fine
    lenient = PsqlGuard("dump", restrict=True)
    assert lenient.feed(hiding).endswith(hiding)  # psql's own \restrict refuses it


def test_a_nul_byte_is_refused() -> None:
    with pytest.raises(Refused, match="line 2: a NUL byte"):
        guard_script("dump", b"select 1;\nselect 1;\x00'\n\\! id\n'\n")
