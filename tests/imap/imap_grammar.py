"""A strict checker of the responses an IMAP server writes (RFC 3501 §9 / RFC 9051 §9
formal syntax, with the ABNF of the extensions this server offers).

It reads a whole response (a line with its literals) and raises :class:`GrammarError`
naming the offset and what was expected when the bytes do not follow the grammar. It is
deliberately literal: a ``message/rfc822`` body must have its envelope, body and lines; a
``message/global`` one only when UTF-8 was enabled (RFC 9051 §7.5.2, RFC 6855); a literal
never holds NUL (``CHAR8``), only ``literal8`` after ``BINARY[…]`` may (RFC 3516 §4.2).
"""

from __future__ import annotations

import re


class GrammarError(ValueError):
    """A response that does not follow the formal syntax."""


_NUMBER = re.compile(rb"[0-9]+")
_ATOM = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\\]]+")  # ATOM-CHAR (no resp-specials)
_ASTRING_CHARS = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\]+")  # ATOM-CHAR / resp-specials
_TAG = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\+]+")
_FLAG_KEYWORD = _ATOM
_TEXT = re.compile(rb"[^\r\n\x00]*")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_LITERAL = re.compile(rb"(~?)\{([0-9]+)\}\r\n")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
           b"Nov", b"Dec")
_DATE_TIME = re.compile(rb'"([ 0-9][0-9])-([A-Za-z]{3})-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} '
                        rb'[+-][0-9]{4}"')


class Reader:
    """Recursive descent over one response; ``utf8``: UTF8=ACCEPT or IMAP4rev2 enabled."""

    def __init__(self, data: bytes, *, utf8: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.utf8 = utf8

    # -- primitives --------------------------------------------------------------------
    def fail(self, what: str) -> GrammarError:
        near = self.data[max(0, self.pos - 30): self.pos + 30]
        return GrammarError(f"expected {what} at offset {self.pos}: ...{near!r}...")

    def peek(self, text: bytes) -> bool:
        return self.data.startswith(text, self.pos)

    def peek_ci(self, text: bytes) -> bool:
        return self.data[self.pos:self.pos + len(text)].upper() == text.upper()

    def expect(self, text: bytes) -> None:
        if not self.peek(text):
            raise self.fail(repr(text))
        self.pos += len(text)

    def expect_ci(self, text: bytes) -> None:
        if not self.peek_ci(text):
            raise self.fail(repr(text))
        self.pos += len(text)

    def sp(self) -> None:
        self.expect(b" ")

    def match(self, rx: re.Pattern[bytes], what: str) -> bytes:
        m = rx.match(self.data, self.pos)
        if m is None or m.end() == self.pos:
            raise self.fail(what)
        self.pos = m.end()
        return m.group()

    def number(self) -> int:
        return int(self.match(_NUMBER, "number"))

    def nz_number(self) -> int:
        n = self.number()
        if n == 0:
            raise self.fail("nz-number")
        return n

    def crlf_end(self) -> None:
        self.expect(b"\r\n")
        if self.pos != len(self.data):
            raise self.fail("end of response")

    # -- strings -----------------------------------------------------------------------
    def string(self, *, binary: bool = False) -> bytes:
        """``quoted / literal`` (``literal8`` too when ``binary``)."""
        if self.peek(b'"'):
            m = _QUOTED.match(self.data, self.pos)
            if m is None:
                raise self.fail("quoted string")
            body = m.group(1)
            if not self.utf8 and any(b > 0x7F for b in body):
                raise self.fail("7-bit quoted string (8-bit needs a literal or UTF-8)")
            self.pos = m.end()
            return body
        m = _LITERAL.match(self.data, self.pos)
        if m is None:
            raise self.fail("string")
        if m.group(1) and not binary:
            raise self.fail("literal, not literal8 (only BINARY[...] may use ~{n})")
        size = int(m.group(2))
        start = m.end()
        body = self.data[start:start + size]
        if len(body) != size:
            raise self.fail("literal octets")
        if not m.group(1) and b"\x00" in body:
            raise self.fail("literal without NUL (CHAR8)")
        self.pos = start + size
        return body

    def nil(self) -> bool:
        if self.peek_ci(b"NIL") and not _ATOM.match(self.data, self.pos + 3):
            self.pos += 3
            return True
        return False

    def nstring(self, *, binary: bool = False) -> bytes | None:
        return None if self.nil() else self.string(binary=binary)

    def astring(self) -> bytes:
        if self.peek(b'"') or self.peek(b"{"):
            return self.string()
        return self.match(_ASTRING_CHARS, "astring")

    def atom(self) -> bytes:
        return self.match(_ATOM, "atom")

    # -- envelope (RFC 9051 §9 envelope) -----------------------------------------------
    def address_list(self) -> None:
        if self.nil():
            return
        self.expect(b"(")
        while True:
            self.expect(b"(")
            self.nstring()
            self.sp()
            self.nstring()
            self.sp()
            self.nstring()
            self.sp()
            self.nstring()
            self.expect(b")")
            if self.peek(b")"):
                break
            if self.peek(b" "):  # lenient: RFC 3501 writes addresses without separators
                self.sp()
        self.expect(b")")

    def envelope(self) -> None:
        self.expect(b"(")
        self.nstring()  # date
        self.sp()
        self.nstring()  # subject
        for _ in range(6):  # from sender reply-to to cc bcc
            self.sp()
            self.address_list()
        self.sp()
        self.nstring()  # in-reply-to
        self.sp()
        self.nstring()  # message-id
        self.expect(b")")

    # -- body (RFC 3501 §9 / RFC 9051 §9 body) -------------------------------------------
    def body_fld_param(self) -> None:
        if self.nil():
            return
        self.expect(b"(")
        self.string()
        self.sp()
        self.string()
        while self.peek(b" "):
            self.sp()
            self.string()
            self.sp()
            self.string()
        self.expect(b")")

    def body_fields(self) -> None:
        self.body_fld_param()
        self.sp()
        self.nstring()  # id
        self.sp()
        self.nstring()  # description
        self.sp()
        self.string()  # encoding
        self.sp()
        self.number()  # octets

    def body_fld_dsp(self) -> None:
        if self.nil():
            return
        self.expect(b"(")
        self.string()
        self.sp()
        self.body_fld_param()
        self.expect(b")")

    def body_fld_lang(self) -> None:
        if self.peek(b"("):
            self.pos += 1
            self.string()
            while self.peek(b" "):
                self.sp()
                self.string()
            self.expect(b")")
        else:
            self.nstring()

    def body_extension(self) -> None:
        if self.peek(b"("):
            self.pos += 1
            self.body_extension()
            while self.peek(b" "):
                self.sp()
                self.body_extension()
            self.expect(b")")
        elif _NUMBER.match(self.data, self.pos):
            self.number()
        else:
            self.nstring()

    def _ext_tail(self) -> None:
        """``[SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc *(SP body-extension)]]]``"""
        if not self.peek(b" "):
            return
        self.sp()
        self.body_fld_dsp()
        if not self.peek(b" "):
            return
        self.sp()
        self.body_fld_lang()
        if not self.peek(b" "):
            return
        self.sp()
        self.nstring()  # location
        while self.peek(b" "):
            self.sp()
            self.body_extension()

    def body(self, *, extended: bool | None = None) -> None:
        """``extended``: True for BODYSTRUCTURE (extensions allowed), False for BODY."""
        self.expect(b"(")
        if self.peek(b"("):
            while self.peek(b"("):
                self.body(extended=extended)
            self.sp()
            self.string()  # media-subtype
            if self.peek(b" "):
                if extended is False:
                    raise self.fail("end of a BODY multipart (no extension data in BODY)")
                self.sp()
                self.body_fld_param()
                self._ext_tail()
            self.expect(b")")
            return
        mtype = self.string().upper()
        self.sp()
        subtype = self.string().upper()
        self.sp()
        self.body_fields()
        messages = {b"RFC822", b"GLOBAL"} if self.utf8 else {b"RFC822"}
        if mtype == b"MESSAGE" and subtype in messages:
            # body-type-msg: body-fields SP envelope SP body SP body-fld-lines
            self.sp()
            self.envelope()
            self.sp()
            self.body(extended=extended)
            self.sp()
            self.number()
        elif mtype == b"TEXT":
            self.sp()
            self.number()  # body-fld-lines
        if self.peek(b" "):
            if extended is False:
                raise self.fail("end of a BODY part (no extension data in BODY)")
            self.sp()
            self.nstring()  # md5
            self._ext_tail()
        self.expect(b")")


def check_body(data: bytes, *, extended: bool, utf8: bool = False) -> None:
    """Raises :class:`GrammarError` unless ``data`` is exactly one ``body``."""
    r = Reader(data, utf8=utf8)
    r.body(extended=extended)
    if r.pos != len(data):
        raise r.fail("end of the body structure")
