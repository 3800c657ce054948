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
_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")  # RFC 8474 §7
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


# -- whole responses (RFC 9051 §9 response, with the extensions' ABNF) -------------------

_STATUS_WORDS = (b"OK", b"NO", b"BAD", b"PREAUTH", b"BYE")
_SYSTEM_FLAGS = {b"\\ANSWERED", b"\\FLAGGED", b"\\DELETED", b"\\SEEN", b"\\DRAFT"}
_SECTION_TEXT = re.compile(rb"(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)",
                           re.IGNORECASE)
_CODE_ATOM = re.compile(rb"[^\x00-\x20\x7f(){%*\"\\\]]+")
_CODE_TEXT = re.compile(rb"[^\r\n\]\x00]+")
_NUMBER_CODES = {b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"HIGHESTMODSEQ", b"APPENDLIMIT"}
_BARE_CODES = {b"ALERT", b"PARSE", b"READ-ONLY", b"READ-WRITE", b"TRYCREATE", b"NOMODSEQ",
               b"CLOSED", b"UIDNOTSTICKY", b"UNKNOWN-CTE", b"UNAVAILABLE",
               b"AUTHENTICATIONFAILED", b"AUTHORIZATIONFAILED", b"EXPIRED", b"PRIVACYREQUIRED",
               b"CONTACTADMIN", b"NOPERM", b"INUSE", b"EXPUNGEISSUED", b"CORRUPTION",
               b"SERVERBUG", b"CLIENTBUG", b"CANNOT", b"LIMIT", b"OVERQUOTA", b"ALREADYEXISTS",
               b"NONEXISTENT", b"NOTSAVED", b"HASCHILDREN", b"USEATTR", b"TOOBIG",
               b"COMPRESSIONACTIVE", b"INPROGRESS"}


class ResponseReader(Reader):
    """One server response (RFC 9051 §9 ``response-data``, ``response-tagged``, ``continue-
    req``, ``greeting``, ``response-fatal``)."""

    # -- little pieces -----------------------------------------------------------------
    def sequence_set(self) -> None:
        while True:
            self._seq_number()
            if self.peek(b":"):
                self.pos += 1
                self._seq_number()
            if not self.peek(b","):
                return
            self.pos += 1

    def _seq_number(self) -> None:
        if self.peek(b"*"):
            self.pos += 1
        else:
            self.nz_number()

    def flag(self, *, perm: bool = False) -> None:
        if self.peek(b"\\"):
            self.pos += 1
            if perm and self.peek(b"*"):
                self.pos += 1  # flag-perm "\*"
                return
            if self.peek(b"Recent") or self.peek(b"RECENT"):
                self.pos += 6  # flag-fetch (RFC 3501 §9)
                return
            self.atom()  # system flag or flag-extension
        else:
            self.atom()  # flag-keyword

    def flag_list(self, *, perm: bool = False) -> None:
        self.expect(b"(")
        if not self.peek(b")"):
            self.flag(perm=perm)
            while self.peek(b" "):
                self.sp()
                self.flag(perm=perm)
        self.expect(b")")

    def mailbox(self) -> None:
        self.astring()

    def capability_data(self) -> None:
        caps = []
        while self.peek(b" "):
            self.sp()
            caps.append(self.atom().upper())
        if b"IMAP4REV1" not in caps and b"IMAP4REV2" not in caps:
            raise self.fail("IMAP4rev1 or IMAP4rev2 in CAPABILITY")

    # -- response codes ----------------------------------------------------------------
    def resp_text(self) -> None:
        """``resp-text = ["[" resp-text-code "]" SP] text`` with RFC 3501's ``text =
        1*TEXT-CHAR`` (RFC 9051 makes it optional; IMAP4rev1 clients need it)."""
        if self.peek(b"["):
            self.pos += 1
            self.resp_text_code()
            self.expect(b"]")
            self.sp()
        text = self.match(_TEXT, "text (RFC 3501: at least one character)")
        if text.startswith(b"["):
            raise self.fail("text not starting with '['")

    def resp_text_code(self) -> None:
        name = self.match(_CODE_ATOM, "response code").upper()
        if name == b"BADCHARSET":
            if self.peek(b" "):
                self.sp()
                self.expect(b"(")
                self.astring()
                while self.peek(b" "):
                    self.sp()
                    self.astring()
                self.expect(b")")
        elif name == b"CAPABILITY":
            self.capability_data()
        elif name == b"PERMANENTFLAGS":
            self.sp()
            self.flag_list(perm=True)
        elif name in _NUMBER_CODES:
            self.sp()
            self.number()
        elif name == b"MODIFIED":
            self.sp()
            self.sequence_set()
        elif name == b"APPENDUID":
            self.sp()
            self.nz_number()
            self.sp()
            self.sequence_set()
        elif name == b"COPYUID":
            self.sp()
            self.nz_number()
            self.sp()
            self.sequence_set()
            self.sp()
            self.sequence_set()
        elif name == b"NOUPDATE":
            self.sp()  # RFC 5267 §5: "NOUPDATE" SP quoted
            self.string()
            if self.data[self.pos - 1 : self.pos] != b'"':
                raise self.fail("NOUPDATE takes a quoted tag")
        elif name in _BARE_CODES:
            pass
        else:
            # atom [SP 1*<any TEXT-CHAR except "]">]
            if self.peek(b" "):
                self.sp()
                self.match(_CODE_TEXT, "response code text")

    # -- FETCH -------------------------------------------------------------------------
    def section(self) -> None:
        self.expect(b"[")
        if self.peek(b"]"):
            self.pos += 1
            return
        while _NUMBER.match(self.data, self.pos):
            self.nz_number()
            if not self.peek(b"."):
                break
            self.pos += 1
        if not self.peek(b"]"):
            kind = self.match(_SECTION_TEXT, "section text").upper()
            if kind.startswith(b"HEADER.FIELDS"):
                self.sp()
                self.expect(b"(")
                self.astring()
                while self.peek(b" "):
                    self.sp()
                    self.astring()
                self.expect(b")")
        self.expect(b"]")

    def msg_att(self) -> None:
        name = self.match(re.compile(rb"[A-Za-z0-9.]+"), "FETCH item name").upper()
        if name == b"FLAGS":
            self.sp()
            self.flag_list()
        elif name == b"UID":
            self.sp()
            self.nz_number()
        elif name == b"MODSEQ":
            self.sp()
            self.expect(b"(")
            self.nz_number()  # RFC 7162: permsg-modsequence is never 0
            self.expect(b")")
        elif name == b"INTERNALDATE":
            self.sp()
            m = self.match(_DATE_TIME, "date-time")
            if m[4:7] not in _MONTHS:
                raise self.fail("date-month")
        elif name in (b"RFC822.SIZE",):
            self.sp()
            self.number()
        elif name == b"ENVELOPE":
            self.sp()
            self.envelope()
        elif name in (b"BODY", b"BODYSTRUCTURE") and not self.peek(b"["):
            self.sp()
            self.body(extended=name == b"BODYSTRUCTURE")
        elif name in (b"BODY", b"BINARY", b"BINARY.SIZE"):
            self.section()
            if name != b"BINARY.SIZE" and self.peek(b"<"):
                self.pos += 1
                self.number()
                self.expect(b">")
            self.sp()
            if name == b"BINARY.SIZE":
                self.number()
            else:
                self.nstring(binary=name == b"BINARY")
        elif name in (b"RFC822", b"RFC822.HEADER", b"RFC822.TEXT"):
            self.sp()
            self.nstring()
        elif name == b"EMAILID":  # RFC 8474 §7: "EMAILID" SP "(" objectid ")"
            self.sp()
            self.objectid_paren()
        elif name == b"THREADID":  # "THREADID" SP ( "(" objectid ")" / nil )
            self.sp()
            if not self.nil():
                self.objectid_paren()
        elif name == b"SAVEDATE":  # RFC 8514 §4: "SAVEDATE" SP (date-time / nil)
            self.sp()
            if not self.nil():
                m = self.match(_DATE_TIME, "date-time")
                if m[4:7] not in _MONTHS:
                    raise self.fail("date-month")
        elif name == b"PREVIEW":  # RFC 8970 §5: "PREVIEW" SP nstring
            self.sp()
            self.nstring()
        else:
            raise self.fail("a FETCH item this server sends")

    def objectid_paren(self) -> None:
        self.expect(b"(")
        self.match(_OBJECTID, "objectid (RFC 8474 §7)")
        self.expect(b")")

    def fetch(self) -> None:
        self.expect(b"(")
        self.msg_att()
        while self.peek(b" "):
            self.sp()
            self.msg_att()
        self.expect(b")")

    # -- mailbox data ------------------------------------------------------------------
    def tagged_ext_comp(self) -> None:
        if self.peek(b"("):
            self.pos += 1
            self.tagged_ext_comp()
            self.expect(b")")
        else:
            self.astring()
        while self.peek(b" "):
            self.sp()
            self.tagged_ext_comp()

    def list_data(self) -> None:
        self.sp()
        self.expect(b"(")
        if not self.peek(b")"):
            self.flag()
            while self.peek(b" "):
                self.sp()
                self.flag()
        self.expect(b")")
        self.sp()
        if not self.nil():
            m = re.compile(rb'"([^"\\\r\n]|\\["\\])"').match(self.data, self.pos)
            if m is None:
                raise self.fail("hierarchy delimiter")
            self.pos = m.end()
        self.sp()
        self.mailbox()
        if self.peek(b" "):
            # RFC 5258 mbox-list-extended
            self.sp()
            self.expect(b"(")
            while not self.peek(b")"):
                self.astring()  # mbox-list-extended-item-tag
                self.sp()
                if self.peek(b"("):
                    self.pos += 1
                    if not self.peek(b")"):
                        self.tagged_ext_comp()
                    self.expect(b")")
                else:
                    self.astring()
                if self.peek(b" "):
                    self.sp()
            self.expect(b")")

    def status_data(self) -> None:
        self.sp()
        self.mailbox()
        self.sp()
        self.expect(b"(")
        if not self.peek(b")"):
            while True:
                if self.atom().upper() == b"MAILBOXID":  # RFC 8474 §7
                    self.sp()
                    self.objectid_paren()
                else:
                    self.sp()
                    self.number()
                if not self.peek(b" "):
                    break
                self.sp()
        self.expect(b")")

    def search_data(self) -> None:
        while self.peek(b" "):
            self.sp()
            if self.peek(b"("):
                self.expect(b"(MODSEQ ")  # RFC 7162 §7 search-sort-mod-seq
                self.nz_number()
                self.expect(b")")
                return
            self.nz_number()

    def thread_list(self) -> None:
        """RFC 5256 §5: thread-list = "(" (thread-members / thread-nested) ")";
        thread-members = nz-number *(SP nz-number) [SP thread-nested];
        thread-nested = 2*thread-list."""
        self.expect(b"(")
        if self.peek(b"("):
            self._thread_nested()
        else:
            self.nz_number()
            while self.peek(b" "):
                self.sp()
                if self.peek(b"("):
                    self._thread_nested()
                    break
                self.nz_number()
        self.expect(b")")

    def _thread_nested(self) -> None:
        self.thread_list()
        if not self.peek(b"("):
            raise self.fail("thread-nested: at least two thread-lists")
        while self.peek(b"("):
            self.thread_list()

    def thread_data(self) -> None:
        """RFC 5256 §5: thread-data = "THREAD" [SP 1*thread-list]."""
        if self.peek(b" "):
            self.sp()
            self.thread_list()
            while self.peek(b"("):
                self.thread_list()

    def esearch_data(self) -> None:
        if self.peek(b" ("):
            self.expect(b" (TAG ")
            self.string()
            self.expect(b")")
        if self.peek_ci(b" UID") and not _ATOM.match(self.data, self.pos + 4):
            self.pos += 4
        while self.peek(b" "):
            self.sp()
            name = self.atom().upper()
            self.sp()
            if name in (b"MIN", b"MAX"):
                self.nz_number()
            elif name == b"ALL":
                self.sequence_set()
            elif name in (b"COUNT",):
                self.number()
            elif name == b"MODSEQ":
                self.nz_number()
            elif name == b"PARTIAL":
                # RFC 5267 §5: "PARTIAL" SP "(" partial-range SP partial-results ")"
                self.expect(b"(")
                self.nz_number()
                self.expect(b":")
                self.nz_number()
                self.sp()
                if not self.nil():
                    self.sequence_set()
                self.expect(b")")
            elif name in (b"ADDTO", b"REMOVEFROM"):
                # RFC 5267 §5: "(" context-position SP sequence-set
                #              *(SP context-position SP sequence-set) ")"
                self.expect(b"(")
                self.number()
                self.sp()
                self.sequence_set()
                while self.peek(b" "):
                    self.sp()
                    self.number()
                    self.sp()
                    self.sequence_set()
                self.expect(b")")
            else:
                raise self.fail("ESEARCH return data")

    def namespace_data(self) -> None:
        for _ in range(3):
            self.sp()
            if self.nil():
                continue
            self.expect(b"(")
            while self.peek(b"("):
                self.pos += 1
                self.string()
                self.sp()
                if not self.nil():
                    self.match(re.compile(rb'"([^"\\\r\n]|\\["\\])"'), "delimiter")
                self.expect(b")")
            self.expect(b")")

    def untagged(self) -> None:
        self.expect(b"* ")
        if _NUMBER.match(self.data, self.pos):
            n = self.number()
            self.sp()
            word = self.atom().upper()
            if word == b"FETCH":
                if n == 0:
                    raise self.fail("nz-number before FETCH")
                self.sp()
                self.fetch()
            elif word == b"EXPUNGE":
                if n == 0:
                    raise self.fail("nz-number before EXPUNGE")
            elif word not in (b"EXISTS", b"RECENT"):
                raise self.fail("EXISTS, RECENT, EXPUNGE or FETCH")
            return
        word = self.atom().upper()
        if word in _STATUS_WORDS:
            self.sp()
            self.resp_text()
        elif word == b"CAPABILITY":
            self.capability_data()
        elif word == b"FLAGS":
            self.sp()
            self.flag_list()
        elif word in (b"LIST", b"LSUB"):
            self.list_data()
        elif word == b"STATUS":
            self.status_data()
        elif word in (b"SEARCH", b"SORT"):  # RFC 5256 §5 sort-data: as search-data
            self.search_data()
        elif word == b"THREAD":
            self.thread_data()
        elif word == b"ESEARCH":
            self.esearch_data()
        elif word == b"ENABLED":
            while self.peek(b" "):
                self.sp()
                self.atom()
        elif word == b"VANISHED":
            self.sp()
            if self.peek(b"("):
                self.expect_ci(b"(EARLIER) ")
            self.sequence_set()
        elif word == b"NAMESPACE":
            self.namespace_data()
        elif word == b"QUOTA":
            self.sp()
            self.astring()
            self.sp()
            self.expect(b"(")
            while not self.peek(b")"):
                self.atom()
                self.sp()
                self.number()
                self.sp()
                self.number()
                if self.peek(b" "):
                    self.sp()
            self.expect(b")")
        elif word == b"QUOTAROOT":
            self.sp()
            self.mailbox()
            while self.peek(b" "):
                self.sp()
                self.astring()
        elif word == b"ACL":
            self.sp()
            self.mailbox()
            while self.peek(b" "):
                self.sp()
                self.astring()
                self.sp()
                self.astring()
        elif word == b"METADATA":
            # RFC 5464 §5: "METADATA" SP mailbox SP ("(" entry SP value *(SP entry SP value)
            # ")" / entry-list); value = nstring / literal8
            self.sp()
            self.astring()
            self.sp()
            self.expect(b"(")
            while True:
                self.astring()
                self.sp()
                self.nstring(binary=True)
                if self.peek(b")"):
                    break
                self.sp()
            self.expect(b")")
        elif word == b"MYRIGHTS":
            self.sp()
            self.mailbox()
            self.sp()
            self.astring()
        elif word == b"LISTRIGHTS":
            self.sp()
            self.mailbox()
            self.sp()
            self.astring()
            self.sp()
            self.astring()
            while self.peek(b" "):
                self.sp()
                self.astring()
        elif word == b"ID":
            self.sp()
            if not self.nil():
                self.expect(b"(")
                while not self.peek(b")"):
                    self.string()
                    self.sp()
                    self.nstring()
                    if self.peek(b" "):
                        self.sp()
                self.expect(b")")
        else:
            raise self.fail("a known untagged response")

    def response(self) -> None:
        if self.peek(b"* "):
            self.untagged()
        elif self.peek(b"+"):
            self.pos += 1
            if self.peek(b" "):
                self.sp()
                self.match(_TEXT, "continuation text") if not self.peek(b"\r\n") else None
        else:
            self.match(_TAG, "tag")
            self.sp()
            word = self.atom().upper()
            if word not in (b"OK", b"NO", b"BAD"):
                raise self.fail("OK, NO or BAD")
            self.sp()
            self.resp_text()
        self.crlf_end()


def check_response(data: bytes, *, utf8: bool = False) -> None:
    """Raises :class:`GrammarError` unless ``data`` is exactly one server response."""
    ResponseReader(data, utf8=utf8).response()


def split_responses(stream: bytes) -> list[bytes]:
    """A connection's server bytes cut into whole responses (each line with its literals);
    a response cut short by the end of the stream is dropped."""
    out: list[bytes] = []
    pos = 0
    while pos < len(stream):
        start = pos
        while True:
            eol = stream.find(b"\r\n", pos)
            if eol < 0:
                return out
            line_end = eol + 2
            m = _LITERAL.search(stream, pos, line_end)
            if m is not None and m.end() == line_end:
                pos = line_end + int(m.group(2))
                if pos > len(stream):
                    return out
                continue
            pos = line_end
            break
        out.append(stream[start:pos])
    return out


def check_stream(stream: bytes) -> list[str]:
    """Every response of a connection checked in order; the problems found (empty when
    all parse). UTF-8 strings are allowed after ``* ENABLED`` names UTF8=ACCEPT or
    IMAP4rev2 (RFC 6855 §3, RFC 9051 §6.3.1)."""
    problems: list[str] = []
    utf8 = False
    for resp in split_responses(stream):
        try:
            check_response(resp, utf8=utf8)
        except GrammarError as exc:
            problems.append(f"{exc} in {resp[:300]!r}")
        if resp.startswith(b"* ENABLED") and (b"UTF8=ACCEPT" in resp.upper()
                                              or b"IMAP4REV2" in resp.upper()):
            utf8 = True
    return problems
