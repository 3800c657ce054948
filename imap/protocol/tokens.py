"""Low-level IMAP syntax: a cursor over one command as read by the reader.

Implements the formal syntax of RFC 9051 §9 / RFC 3501 §9 for the terminal
productions (atom, number, quoted, literal, astring, nstring, flag, date) so
that ``parser.py`` reads like the grammar. Every failure raises
:class:`ParseError` with the command tag once it is known.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import NoReturn

from imap.protocol.errors import BadMailboxName, ParseError
from imap.protocol.mutf7 import mutf7_decode
from imap.protocol.sequence import SequenceSet
from imap.protocol.spool import SpooledLiteral

__all__ = ["Cursor", "MONTHS", "SYSTEM_FLAGS"]

# RFC 9051 §9: ATOM-CHAR = any CHAR except atom-specials
#   atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_ASTRING_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")  # ASTRING-CHAR adds "]"
_LIST_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){\"\\]+")  # list-char adds % * ]
_NUMBER = re.compile(rb"[0-9]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r\n")
_SEQSET = re.compile(rb"[0-9:*,$]+")
_UNESCAPE = re.compile(rb"\\([\"\\])")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)

MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}

SYSTEM_FLAGS = {
    f.upper(): f
    for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
}

_MAX32 = 0xFFFFFFFF
_MAX63 = 0x7FFFFFFFFFFFFFFF


class Cursor:
    """Position in one command; ``utf8`` says whether UTF-8 names are allowed.

    ``utf8`` is true under IMAP4rev2 or after ``ENABLE UTF8=ACCEPT`` (RFC 6855):
    mailbox names are then UTF-8, otherwise modified UTF-7 (RFC 3501 §5.1.3).
    """

    __slots__ = ("data", "pos", "tag", "utf8", "depth", "spooled")

    def __init__(
        self, data: bytes, utf8: bool = False, spooled: Mapping[int, SpooledLiteral] | None = None
    ) -> None:
        self.data = data
        # Literals the reader spooled (APPEND messages): their octets are not in ``data``.
        self.spooled = spooled or {}
        self.pos = 0
        self.tag: str | None = None
        self.utf8 = utf8
        self.depth = 0

    # --- basics -------------------------------------------------------------

    def fail(self, reason: str) -> NoReturn:
        """Abort the parse with ``reason`` (the session answers BAD)."""
        raise ParseError(reason, self.tag)

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int:
        """Next octet, or -1 at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def sp(self) -> None:
        """Exactly one space (RFC 9051 §9 SP)."""
        if self.peek() != 0x20:
            self.fail("expected a space" if not self.at_end() else "missing arguments")
        self.pos += 1

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def expect(self, char: bytes) -> None:
        if self.data[self.pos : self.pos + 1] != char:
            self.fail(f"expected '{char.decode()}'")
        self.pos += 1

    def accept(self, char: bytes) -> bool:
        if self.data[self.pos : self.pos + 1] == char:
            self.pos += 1
            return True
        return False

    def end(self) -> None:
        if not self.at_end():
            if self.data[self.pos] >= 0x80:
                self.fail(
                    "8-bit characters must be in a quoted string or a literal"
                    " (mailbox names: modified UTF-7, or UTF-8 after ENABLE UTF8=ACCEPT)"
                )
            self.fail("unexpected characters after the command arguments")

    def _match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        m = pattern.match(self.data, self.pos)
        if m:
            self.pos = m.end()
        return m

    # --- atoms and numbers --------------------------------------------------

    def atom(self, what: str = "atom") -> str:
        m = self._match(_ATOM)
        if not m:
            self.fail(f"expected {what}")
        return m.group().decode("ascii")

    def keyword(self, what: str = "keyword") -> str:
        """An atom compared case-insensitively (command names, options)."""
        return self.atom(what).upper()

    def number(self, limit: int = _MAX32, what: str = "number") -> int:
        """``number`` (32-bit) or ``number64`` with ``limit=_MAX63`` (RFC 9051 §9)."""
        m = self._match(_NUMBER)
        if not m:
            self.fail(f"expected {what}")
        digits = m.group()
        if len(digits) > 20 or int(digits) > limit:
            self.fail(f"{what} out of range")
        return int(digits)

    def nz_number(self, what: str = "number") -> int:
        value = self.number(what=what)
        if value == 0:
            self.fail(f"{what} must not be zero")
        return value

    def number64(self, what: str = "number") -> int:
        return self.number(_MAX63, what)

    def sequence_set(self) -> SequenceSet:
        m = self._match(_SEQSET)
        if not m:
            self.fail("expected a sequence set")
        try:
            return SequenceSet.parse(m.group().decode("ascii"))
        except ValueError as exc:
            self.fail(str(exc))

    # --- strings ------------------------------------------------------------

    def quoted(self) -> bytes | None:
        m = self._match(_QUOTED)
        if m is None:
            return None
        body = m.group(1)
        return _UNESCAPE.sub(rb"\1", body) if b"\\" in body else body

    def literal(self, allow8: bool = False) -> tuple[bytes, bool] | None:
        """``{n}``/``{n+}`` CRLF data, or ``~{n}`` (literal8) when ``allow8``."""
        lit = self.message_literal(allow8, spooled=False)
        if lit is None:
            return None
        assert isinstance(lit[0], bytes)
        return lit[0], lit[1]

    def message_literal(
        self, allow8: bool = True, *, spooled: bool = True
    ) -> tuple[bytes | SpooledLiteral, bool] | None:
        """A literal that may have been spooled by the reader (an APPEND message)."""
        m = _LITERAL.match(self.data, self.pos)
        if m is None:
            return None
        binary = bool(m.group(1))
        if binary and not allow8:
            self.fail("literal8 is only allowed in APPEND and as BINARY data")
        size = int(m.group(2))
        start = m.end()
        spool = self.spooled.get(start)
        if spool is not None:
            if not spooled or len(spool) != size:
                self.fail("literal too large here")
            if not binary and spool.has_nul:
                self.fail("NUL octet in a literal, use literal8 (~{n})")
            self.pos = start
            return spool, binary
        if start + size > len(self.data):
            self.fail("literal is shorter than announced")
        self.pos = start + size
        data = self.data[start : self.pos]
        if not binary and b"\x00" in data:
            # RFC 9051 §4.3: NUL is only allowed in literal8.
            self.fail("NUL octet in a literal, use literal8 (~{n})")
        return data, binary

    def string(self, what: str = "string") -> bytes:
        c = self.peek()
        if c == 0x22:
            q = self.quoted()
            if q is None:
                self.fail(f"invalid quoted {what}")
            return q
        if c == 0x7B:
            lit = self.literal()
            if lit is None:
                self.fail(f"invalid literal {what}")
            return lit[0]
        self.fail(f"expected {what}")

    def astring(self, what: str = "string") -> bytes:
        c = self.peek()
        if c == 0x22 or c == 0x7B:
            return self.string(what)
        m = self._match(_ASTRING_ATOM)
        if not m:
            self.fail(f"expected {what}")
        return m.group()

    def nstring(self, what: str = "string") -> bytes | None:
        if self.data[self.pos : self.pos + 3].upper() == b"NIL" and (
            self.pos + 3 == len(self.data) or self.data[self.pos + 3] in b" )"
        ):
            self.pos += 3
            return None
        return self.string(what)

    def text(self, raw: bytes, what: str) -> str:
        """Decode a client string as UTF-8 (US-ASCII being a subset)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8")

    def astring_text(self, what: str = "string") -> str:
        return self.text(self.astring(what), what)

    # --- mailboxes ----------------------------------------------------------

    def decode_mailbox(self, raw: bytes, inbox: bool = True) -> str:
        """Mailbox name to Unicode: UTF-8 under RFC 6855/9051, else modified UTF-7."""
        if self.utf8:
            name = self.text(raw, "mailbox name")
        else:
            try:
                name = mutf7_decode(raw)
            except ValueError as exc:
                raise BadMailboxName(f"invalid mailbox name: {exc} (modified UTF-7, "
                                     "RFC 3501 5.1.3)", self.tag) from None
        if "\x00" in name or "\r" in name or "\n" in name:
            self.fail("mailbox name contains a control character")
        # RFC 9051 §5.1: INBOX is case-insensitive.
        if inbox and name.upper() == "INBOX":
            return "INBOX"
        return name

    def mailbox(self) -> str:
        return self.decode_mailbox(self.astring("mailbox name"))

    def list_mailbox(self) -> str:
        """``list-mailbox``: 1*list-char / string (RFC 9051 §9), wildcards kept."""
        c = self.peek()
        if c == 0x22 or c == 0x7B:
            raw = self.string("mailbox pattern")
        else:
            m = self._match(_LIST_ATOM)
            if not m:
                self.fail("expected a mailbox pattern")
            raw = m.group()
        return self.decode_mailbox(raw, inbox=False)

    # --- flags and dates ----------------------------------------------------

    def flag(self, allow_recent: bool = False) -> str:
        """``flag``: system flag (case normalised), ``\\ext`` or keyword (RFC 9051 §2.3.2)."""
        if self.accept(b"\\"):
            name = "\\" + self.atom("flag name")
            canon = SYSTEM_FLAGS.get(name.upper())
            if canon == "\\Recent" and not allow_recent:
                self.fail("\\Recent cannot be set by a client")
            return canon or name
        return self.atom("flag")

    def flag_list(self) -> tuple[str, ...]:
        """``"(" [flag *(SP flag)] ")"``."""
        self.expect(b"(")
        flags: list[str] = []
        if not self.accept(b")"):
            flags.append(self.flag())
            while self.maybe_sp():
                flags.append(self.flag())
            self.expect(b")")
        return tuple(dict.fromkeys(flags))

    def date(self) -> datetime.date:
        """``date = date-text / DQUOTE date-text DQUOTE`` (``1-Feb-1994``)."""
        quoted = self.accept(b'"')
        m = self._match(_DATE)
        if not m or (quoted and not self.accept(b'"')):
            self.fail("expected a date like 1-Feb-2024")
        month = MONTHS.get(m.group(2).decode("ascii").upper())
        try:
            if month is None:
                raise ValueError("month")
            return datetime.date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            self.fail("invalid date")

    def date_time(self) -> datetime.datetime | None:
        """``date-time`` (RFC 9051 §9): ``"17-Jul-1996 02:44:25 -0700"``; None if absent."""
        m = self._match(_DATE_TIME)
        if not m:
            return None
        g = [x.decode("ascii") for x in m.groups()]
        month = MONTHS.get(g[1].upper())
        try:
            if month is None:
                raise ValueError("month")
            offset = datetime.timedelta(hours=int(g[7]), minutes=int(g[8]))
            if offset >= datetime.timedelta(hours=24):
                raise ValueError("zone")
            tz = datetime.timezone(-offset if g[6] == "-" else offset)
            return datetime.datetime(
                int(g[2]), month, int(g[0].strip()), int(g[3]), int(g[4]), int(g[5]), tzinfo=tz
            )
        except ValueError:
            self.fail("invalid date-time")
