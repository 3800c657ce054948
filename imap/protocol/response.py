"""Response writing: bytes for tagged/untagged status, data and continuations.

Values are encoded with the cheapest safe form (RFC 9051 §4.3): atom where the
grammar allows one, quoted string when the text is short 7-bit (or UTF-8 under
IMAP4rev2/UTF8=ACCEPT) without CR, LF or NUL, literal otherwise. Responses are
built by appending to one list and joining once, so a large FETCH costs one
copy of its data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union

from imap.protocol.mutf7 import mutf7_encode
from imap.protocol.sequence import SequenceSet

__all__ = [
    "Atom",
    "ImapRefusal",
    "Literal",
    "ResponseCode",
    "Value",
    "bye",
    "continuation",
    "encode_astring",
    "encode_mailbox",
    "encode_string",
    "fetch_response",
    "serialize",
    "tagged",
    "untagged",
    "untagged_data",
]

_QUOTED_MAX = 1024
_SAFE_QUOTED = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_SAFE_QUOTED_UTF8 = re.compile(rb"[^\x00\r\n]*\Z")
_ATOM_SAFE = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+\Z")
_CODE_NAME = re.compile(r"[A-Z0-9.\-]+\Z")
_STATUSES = frozenset({"OK", "NO", "BAD", "PREAUTH", "BYE"})


@dataclass(frozen=True, slots=True)
class Atom:
    """Written verbatim: keywords, flags, numbers already formatted, NIL."""

    text: str


@dataclass(frozen=True, slots=True)
class Literal:
    """Always written as a literal (``{n}`` CRLF data), e.g. BODY[] contents."""

    data: bytes
    binary: bool = False  # literal8 ~{n} for BINARY[] (RFC 3516 §4.2)


Value = Union[None, int, str, bytes, Atom, Literal, "SequenceSet", Sequence["Value"]]
"""What ``serialize`` accepts: None is NIL, int a number, str/bytes a string, lists in parens."""


def _text(text: str) -> str:
    """Human-readable response text: one line, printable (RFC 9051 §9 text)."""
    cleaned = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text)
    return cleaned.strip() or "Done"


def encode_string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """A string as quoted when safe, else as a literal (RFC 9051 §4.3)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) <= _QUOTED_MAX and (_SAFE_QUOTED_UTF8 if utf8 else _SAFE_QUOTED).match(raw):
        if b"\\" in raw or b'"' in raw:
            raw = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + raw + b'"'
    return b"{%d}\r\n" % len(raw) + raw


def encode_astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    """An atom when it is one (and not NIL), else a string."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if _ATOM_SAFE.match(raw) and raw.upper() != b"NIL":
        return raw
    return encode_string(raw, utf8=utf8)


def encode_mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name: UTF-8 for RFC 6855/9051 clients, modified UTF-7 otherwise."""
    if utf8:
        return encode_astring(name, utf8=True)
    return encode_astring(mutf7_encode(name))


def _serialize_into(out: list[bytes], value: Value, utf8: bool) -> None:
    if value is None:
        out.append(b"NIL")
    elif isinstance(value, Atom):
        out.append(value.text.encode("utf-8"))
    elif isinstance(value, bool):
        raise TypeError("booleans have no IMAP encoding")
    elif isinstance(value, int):
        out.append(b"%d" % value)
    elif isinstance(value, str | bytes):
        out.append(encode_string(value, utf8=utf8))
    elif isinstance(value, Literal):
        out.append(b"%s{%d}\r\n" % (b"~" if value.binary else b"", len(value.data)))
        out.append(value.data)
    elif isinstance(value, SequenceSet):
        out.append(value.format().encode("ascii"))
    else:
        out.append(b"(")
        first = True
        for item in value:
            if not first:
                out.append(b" ")
            first = False
            _serialize_into(out, item, utf8)
        out.append(b")")


def serialize(value: Value, *, utf8: bool = False) -> bytes:
    """Encode one value (recursively for lists)."""
    out: list[bytes] = []
    _serialize_into(out, value, utf8)
    return b"".join(out)


class ResponseCode:
    """A response code (RFC 9051 §7.1): ``[NAME args]``.

    Plain codes are built with ``ResponseCode("TRYCREATE")``; the factories
    build the codes that carry data.
    """

    __slots__ = ("name", "args")

    def __init__(self, name: str, args: str | None = None) -> None:
        if not _CODE_NAME.match(name):
            raise ValueError(f"invalid response code name {name!r}")
        if args is not None and ("]" in args or "\r" in args or "\n" in args):
            raise ValueError("response code arguments must not contain ']' or line breaks")
        self.name = name
        self.args = args

    def __str__(self) -> str:
        return f"{self.name} {self.args}" if self.args else self.name

    def __repr__(self) -> str:
        return f"ResponseCode({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResponseCode) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def uidnext(cls, n: int) -> ResponseCode:
        return cls("UIDNEXT", str(n))

    @classmethod
    def uidvalidity(cls, n: int) -> ResponseCode:
        return cls("UIDVALIDITY", str(n))

    @classmethod
    def highestmodseq(cls, n: int) -> ResponseCode:
        """RFC 7162 §3.1.2.1."""
        return cls("HIGHESTMODSEQ", str(n))

    @classmethod
    def appenduid(cls, uidvalidity: int, uids: SequenceSet | int) -> ResponseCode:
        """RFC 4315 §3: ``APPENDUID uidvalidity uid-set``."""
        return cls("APPENDUID", f"{uidvalidity} {uids}")

    @classmethod
    def copyuid(cls, uidvalidity: int, source: SequenceSet, dest: SequenceSet) -> ResponseCode:
        """RFC 4315 §3: ``COPYUID uidvalidity source-uids dest-uids`` (same order)."""
        return cls("COPYUID", f"{uidvalidity} {source} {dest}")

    @classmethod
    def capability(cls, caps: Iterable[str]) -> ResponseCode:
        return cls("CAPABILITY", " ".join(caps))

    @classmethod
    def permanentflags(cls, flags: Iterable[str]) -> ResponseCode:
        return cls("PERMANENTFLAGS", "(" + " ".join(flags) + ")")

    @classmethod
    def badcharset(cls, charsets: Iterable[str] = ("UTF-8", "US-ASCII")) -> ResponseCode:
        return cls("BADCHARSET", "(" + " ".join(charsets) + ")")

    @classmethod
    def modified(cls, uids: SequenceSet) -> ResponseCode:
        """RFC 7162 §3.1.3: messages that failed UNCHANGEDSINCE."""
        return cls("MODIFIED", uids.format())

    @classmethod
    def appendlimit(cls, n: int) -> ResponseCode:
        return cls("APPENDLIMIT", str(n))


CodeLike = ResponseCode | str | None


def _code(code: CodeLike) -> bytes:
    if code is None:
        return b""
    if isinstance(code, str):
        code = ResponseCode(*code.split(" ", 1)) if " " in code else ResponseCode(code)
    return b"[" + str(code).encode("ascii") + b"] "


def tagged(tag: str, status: str, text: str, code: CodeLike = None) -> bytes:
    """``tag OK|NO|BAD [code] text`` CRLF (RFC 9051 §7.1)."""
    if status not in ("OK", "NO", "BAD"):
        raise ValueError(f"invalid tagged status {status!r}")
    return b"%s %s %s%s\r\n" % (
        tag.encode("ascii"), status.encode("ascii"), _code(code), _text(text).encode("utf-8")
    )


def untagged(status: str, text: str, code: CodeLike = None) -> bytes:
    """``* OK|NO|BAD|PREAUTH|BYE [code] text`` CRLF."""
    if status not in _STATUSES:
        raise ValueError(f"invalid untagged status {status!r}")
    return b"* %s %s%s\r\n" % (status.encode("ascii"), _code(code), _text(text).encode("utf-8"))


def bye(text: str, code: CodeLike = None) -> bytes:
    """``* BYE`` before the server closes the connection (RFC 9051 §7.1.5)."""
    return untagged("BYE", text, code)


def untagged_data(*parts: Value, utf8: bool = False) -> bytes:
    """``* part part ...`` CRLF; str parts are atoms here (``"EXISTS"``), wrap strings.

    Example: ``untagged_data(3, "EXISTS")`` gives ``* 3 EXISTS``;
    ``untagged_data("LIST", [Atom("\\\\HasNoChildren")], "/", b"INBOX")`` quotes
    the bytes and the delimiter is written with :func:`encode_string` by passing
    it as bytes.
    """
    out: list[bytes] = [b"*"]
    for part in parts:
        out.append(b" ")
        if isinstance(part, str):
            out.append(part.encode("utf-8"))
        else:
            _serialize_into(out, part, utf8)
    out.append(b"\r\n")
    return b"".join(out)


def continuation(text: str = "Ready for literal data") -> bytes:
    """``+ text`` CRLF (RFC 9051 §7.5); for SASL pass the base64 challenge."""
    # RFC 4954-style empty challenge: "+ " CRLF, so no placeholder text here.
    line = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text).strip()
    return b"+ " + line.encode("utf-8") + b"\r\n"


def fetch_response(
    seq: int, items: Sequence[tuple[str, Value]], *, utf8: bool = False
) -> bytes:
    """``* seq FETCH (name value ...)`` CRLF (RFC 9051 §7.5.2).

    Names come from ``FetchAttr.response_name()`` or are plain (``UID``,
    ``FLAGS``); values that are already-encoded structures (ENVELOPE,
    BODYSTRUCTURE) may be passed as :class:`Atom`.
    """
    out: list[bytes] = [b"* %d FETCH (" % seq]
    first = True
    for name, value in items:
        if not first:
            out.append(b" ")
        first = False
        out.append(name.encode("ascii"))
        out.append(b" ")
        _serialize_into(out, value, utf8)
    out.append(b")\r\n")
    return b"".join(out)


class ImapRefusal(Exception):
    """A command refused with a known reply; raised by command handlers.

    ``raise ImapRefusal("NO", "TRYCREATE", "Mailbox does not exist")`` becomes
    ``tag NO [TRYCREATE] Mailbox does not exist``. ``BYE`` closes the session.
    """

    def __init__(self, status: str, code: CodeLike, text: str) -> None:
        if status not in ("NO", "BAD", "BYE"):
            raise ValueError(f"invalid refusal status {status!r}")
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text

    def response(self, tag: str | None) -> bytes:
        """The reply line: tagged NO/BAD, or untagged BYE (or when no tag)."""
        if self.status == "BYE":
            return bye(self.text, self.code)
        if tag is None:
            return untagged(self.status, self.text, self.code)
        return tagged(tag, self.status, self.text, self.code)
