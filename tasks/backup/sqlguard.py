"""A plain SQL dump never runs psql meta-commands (README: "a forged dump is refused").

psql executes a backslash command wherever one appears outside quotes, comments and COPY data
(``\\!`` runs a shell, ``\\o |cmd`` and ``\\copy ... program`` too), so a forged ``.sql.gz`` fed
to it runs commands as the restoring user. :class:`PsqlGuard` reads the stream the way psql's
lexer does (quotes, dollar quotes, nested comments, parentheses, ``BEGIN ATOMIC`` bodies, COPY
data blocks) and refuses, naming the line, the first backslash command, psql variable
interpolation, or a COPY statement not as pg_dump writes it. pg_dump's own ``\\restrict KEY``
and ``\\unrestrict KEY`` lines are dropped; the stream then starts with ``\\restrict`` and a
random key when psql supports it (>= 13.22, 14.19, 15.14, 16.10, 17.6), so psql itself refuses
any backslash command this scan missed. Where a quote ends depends on the server's
``standard_conforming_strings`` after an odd run of backslashes (``'a\\'``): with such a psql
the scan reads it as pg_dump sets it (on); with an older one the line is refused, and so is a
byte >= 0x80 before anything but a letter, ``_``, another such byte or the end of the line (in
SJIS, BIG5, GBK, UHC, GB18030 or JOHAB, which SQL in the dump can switch psql to, it hides the
next byte from psql's lexer). A NUL byte outside COPY data is refused (psql drops what follows).
``\\connect`` is refused: these dumps are made without ``--create``. The restore feeds psql
through the guard and kills psql, before it sees the end of its input, at the first refused
line: its single transaction rolls back (SQL before that line ran inside it; no client command
ran).

MySQL/MariaDB restores rely on the client's ``--sandbox`` instead (``system``, ``\\!``, ``tee``,
``source`` refused by the client), see :func:`tasks.backup.readback.restore_stage`.
"""

from __future__ import annotations

import re
import secrets

from tasks.core.errors import Refused

_TOKEN = re.compile(
    r"""
     (?P<ws>[ \t\n\r\f\v]+)
    |(?P<comment>--[^\n]*)
    |(?P<xc>/\*)
    |(?P<dolq>\$(?:[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*)?\$)
    |(?P<param>\$[0-9]+)
    |(?P<prefix>[eEnNbBxX](?=')|[uU]&(?=['"]))
    |(?P<squote>')
    |(?P<dquote>")
    |(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    |(?P<ident>[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9$]*)
    |(?P<backslash>\\)
    |(?P<colon>:(?::|=|[A-Za-z\x80-\xff_0-9]+)?)
    |(?P<other>.)
    """,
    re.X | re.S,
)
_META_NAME = re.compile(r"\\[!-~]{0,30}")
# A run of tokens that change no state but the parentheses' depth once a statement is known
# not to be CREATE [OR REPLACE] FUNCTION|PROCEDURE (whose BEGIN ... END psql tracks): spaces,
# operators, parentheses, names (with their $), numbers, parameters, :: and :=, and '...' on one
# line without a backslash (the speed of the scan over long statements).
_PLAIN_RUN = re.compile(
    r"""(?:
      [^'"$\\\-/:;A-Za-z\x80-\xff_0-9]
    | '[^'\\\n]*'
    | \$[0-9]+
    | (?>[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9$]*)(?!['"&])
    | [0-9]+
    | -(?!-) | /(?!\*) | :[:=]
    )+""",
    re.X,
)
_PAREN_OR_STRING = re.compile(r"'[^']*'|[()]")
# In the client-only encodings psql lexes by (SJIS, BIG5, GBK, UHC, GB18030, JOHAB) a byte
# >= 0x80 hides the next one (0x8f the next two; GB18030 three after a digit): only a letter,
# _ or another such byte (the same kind of token either way) or the end of the line may follow.
_HIDDEN_BY_ENCODING = re.compile(
    rb"\x8f[A-Za-z_\x80-\xff][^A-Za-z_\x80-\xff\n]|[\x80-\xff][^A-Za-z_\x80-\xff\n]"
)
_IDENT_START = re.compile(r"[A-Za-z\x80-\xff_]")
_XQ_STOP = re.compile(r"['\\]")
_XC_STOP = re.compile(r"/\*|\*/")
_BUILTIN_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")
_PG_DUMP_META = re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]+\r?\n?")
_COPY_FROM_STDIN = re.compile(r"COPY \S.* FROM stdin;", re.S)
_COPY_END = (b"\\.\n", b"\\.\r\n", b"\\.")
_MAX_COPY_STATEMENT = 1 << 20
RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


def psql_restricts(version: str) -> bool:
    """Whether a ``psql --version`` line names a psql with ``\\restrict``."""
    match = re.search(r"(\d+)\.(\d+)", version)
    if match is None:
        return False
    major, minor = int(match.group(1)), int(match.group(2))
    return major >= 18 or minor >= RESTRICT_SINCE.get(major, 1 << 30)


class PsqlGuard:
    """Feed a plain dump through :meth:`feed` (bytes in, bytes for psql out) and end with
    :meth:`finish`; raises :class:`Refused` naming the first line psql must not see."""

    def __init__(self, what: str, *, restrict: bool = False) -> None:
        self.what = what
        self.line_no = 0
        self.pending: list[bytes] = []
        self.copy = False
        self.state = "init"  # init, xc (comment), xq ('), xd ("), xdolq ($tag$)
        self.quoting = "std"  # in xq: std ('', N''), escape (E''), literal (B'', X'', U&'')
        self.prefix = ""
        self.lenient = restrict  # psql refuses what an ambiguous quote could hide
        self.depth = 0  # nested comment depth
        self.tag = ""
        self.paren = 0
        self.begin = 0
        self.idents = ["", "", "", ""]
        self.ident_count = 0
        self.tokens = 0  # tokens of the current statement
        self.copy_lines: list[str] | None = None  # the lines of a COPY statement so far
        self.copy_start = 0
        self.head = b"\\restrict " + secrets.token_hex(24).encode() + b"\n" if restrict else b""

    def refuse(self, found: str) -> Refused:
        return Refused(f"{self.what}: refusing to restore it: line {self.line_no}: {found}")

    def feed(self, chunk: bytes) -> bytes:
        out = [self.head] if self.head else []
        self.head = b""
        if b"\n" not in chunk:  # a long line: joined once, when it ends
            self.pending.append(chunk)
            return b"".join(out)
        data = b"".join([*self.pending, chunk])
        end = data.rfind(b"\n") + 1
        self.pending = [data[end:]]
        start = 0
        while start < end:
            stop = data.index(b"\n", start) + 1
            line = data[start:stop]
            if self.line(line):
                out.append(line)
            start = stop
        return b"".join(out)

    def finish(self) -> bytes:
        out = self.head
        self.head = b""
        line, self.pending = b"".join(self.pending), []
        if line:
            if self.line(line):
                out += line
        return out

    def line(self, line: bytes) -> bool:
        """Check one line (with its newline); False: drop it (pg_dump's own \\restrict)."""
        self.line_no += 1
        if self.copy:
            if line in _COPY_END:
                self.copy = False
            return True
        if (
            self.state == "init"
            and self.tokens == 0
            and self.paren == 0
            and _PG_DUMP_META.fullmatch(line)
        ):
            return False
        if b"\0" in line:
            raise self.refuse("a NUL byte (psql would drop what follows it)")
        if not self.lenient:
            hidden = _HIDDEN_BY_ENCODING.search(line)
            if hidden is not None:
                raise self.refuse(
                    f"a non-ASCII byte before {hidden.group()[-1:].decode('latin-1')!r} "
                    "(a client encoding such "
                    "as SJIS, which the dump can switch to, hides that character from psql "
                    "< 15.14; a newer psql restores this dump)"
                )
        self.lex(line.decode("latin-1"))
        return True

    def lex(self, text: str) -> None:
        pos, size = 0, len(text)
        if self.copy_lines is not None:
            self.copy_lines.append(text)
            if sum(len(part) for part in self.copy_lines) > _MAX_COPY_STATEMENT:
                raise self.refuse("a COPY statement longer than pg_dump writes")
        while pos < size:
            if self.state == "xc":
                match = _XC_STOP.search(text, pos)
                if match is None:
                    return
                self.depth += 1 if match.group() == "/*" else -1
                pos = match.end()
                if self.depth == 0:
                    self.state = "init"
            elif self.state == "xq":
                pos = self.lex_quoted(text, pos)
            elif self.state == "xd":
                found = text.find('"', pos)
                if found < 0:
                    return
                if text.startswith('""', found):
                    pos = found + 2
                else:
                    pos, self.state = found + 1, "init"
            elif self.state == "xdolq":
                found = text.find(self.tag, pos)
                if found < 0:
                    return
                pos, self.state = found + len(self.tag), "init"
            else:
                if self.tokens and self.not_a_routine():
                    run = _PLAIN_RUN.match(text, pos)
                    if run is not None:
                        for part in _PAREN_OR_STRING.findall(run.group()):
                            if part == "(":
                                self.paren += 1
                            elif part == ")" and self.paren > 0:
                                self.paren -= 1
                        pos = run.end()
                        continue
                pos = self.lex_token(text, pos)

    def not_a_routine(self) -> bool:
        """The statement's first names already rule out CREATE [OR REPLACE] FUNCTION|PROCEDURE."""
        ids, count = self.idents, self.ident_count
        if count == 0 or self.begin:
            return False
        if ids[0] != "c":
            return True
        if count >= 2 and ids[1] not in ("f", "p", "o"):
            return True
        if ids[1] == "o" and count >= 3 and ids[2] != "r":
            return True
        return ids[1] == "o" and count >= 4 and ids[3] not in ("f", "p")

    def lex_quoted(self, text: str, pos: int) -> int:
        """Inside '...': in '' and N'' whether backslashes escape depends on the server's
        standard_conforming_strings; both readings end the string at the same quote unless an
        odd run of backslashes precedes a quote (refused unless psql restricts itself)."""
        while True:
            match = _XQ_STOP.search(text, pos)
            if match is None:
                return len(text)
            found = match.start()
            if text[found] == "\\":
                run = found
                while run < len(text) and text[run] == "\\":
                    run += 1
                odd = (run - found) % 2 == 1
                if self.quoting == "escape" and odd:
                    run += 1  # E'...': the backslash escapes the next character
                elif self.quoting == "std" and odd and text.startswith("'", run):
                    if not self.lenient:
                        raise self.refuse(
                            "a backslash before a quote (its meaning depends on "
                            "standard_conforming_strings)"
                        )
                pos = run
                continue
            if text.startswith("''", found):
                pos = found + 2
                continue
            self.state = "init"
            return found + 1

    def lex_token(self, text: str, pos: int) -> int:
        match = _TOKEN.match(text, pos)
        assert match is not None  # nosec B101 - the last alternative matches any character
        kind, value, end = match.lastgroup, match.group(), match.end()
        if kind in ("ws", "comment"):
            return end
        if kind == "xc":
            self.state, self.depth = "xc", 1
            return end
        if kind == "backslash":
            command = _META_NAME.match(text, pos)
            name = command.group() if command else value
            raise self.refuse(f"psql meta-command {name}")
        if kind == "colon" and _BUILTIN_VARIABLE.fullmatch(value[1:]):
            raise self.refuse(f"psql variable {value}")
        if kind == "number" and _IDENT_START.match(text, end):
            raise self.refuse(f"a number run into a name ({text[pos:end + 1]})")
        first = self.tokens == 0
        self.tokens += 1
        if first and kind == "ident" and value.lower() == "copy":
            if text[:pos].strip():
                raise self.refuse("a COPY statement not at the start of a line")
            self.copy_lines, self.copy_start = [text], pos
        prefix, self.prefix = self.prefix, value.lower() if kind == "prefix" else ""
        if kind == "squote":
            self.state = "xq"
            self.quoting = {"e": "escape", "b": "literal", "x": "literal", "u&": "literal"}.get(
                prefix, "std"
            )
        elif kind == "dquote":
            self.state = "xd"
        elif kind == "dolq":
            self.state, self.tag = "xdolq", value
        elif kind == "ident":
            self.identifier(value)
        elif value == "(":
            self.paren += 1
        elif value == ")" and self.paren > 0:
            self.paren -= 1
        elif value == ";" and self.paren == 0 and self.begin == 0:
            self.end_statement(text, end)
        return end

    def identifier(self, word: str) -> None:
        """psql's heuristic for CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC: a
        semicolon inside BEGIN ... END does not end the statement (psqlscan.l)."""
        lower = word.lower()
        if self.ident_count == 0:
            self.idents = ["", "", "", ""]
        if lower in ("create", "function", "procedure", "or", "replace") and self.ident_count < 4:
            self.idents[self.ident_count] = lower[0]
        self.ident_count += 1
        ids = self.idents
        if (
            ids[0] == "c"
            and (ids[1] in ("f", "p") or (ids[1] == "o" and ids[2] == "r" and ids[3] in ("f", "p")))
            and self.paren == 0
        ):
            if lower == "begin":
                self.begin += 1
            elif lower == "case" and self.begin >= 1:
                self.begin += 1
            elif lower == "end" and self.begin > 0:
                self.begin -= 1

    def end_statement(self, text: str, end: int) -> None:
        lines = self.copy_lines
        self.tokens, self.ident_count, self.copy_lines = 0, 0, None
        if lines is None:
            return
        joined = "".join(lines)
        statement = joined[self.copy_start : len(joined) - len(text) + end]
        if not _COPY_FROM_STDIN.fullmatch(statement) or text[end:] not in ("\n", ""):
            raise self.refuse("a COPY statement not as pg_dump writes it")
        self.copy = True


def guard_script(what: str, script: bytes) -> bytes:
    """The whole of a (small) plain script checked before any of it runs."""
    guard = PsqlGuard(what)
    return guard.feed(script) + guard.finish()
