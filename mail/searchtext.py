"""The decoded text of a message, as SEARCH BODY and TEXT compare it (RFC 9051 §6.4.4).

RFC 9051 §6.4.4 asks for a case-insensitive substring match of the *text* of the message,
not of its transfer encoding: a word in a base64 or quoted-printable part must be found,
and ``=C3=A9`` (the quoted-printable spelling of "é") must not match as such. So each text
part (``text/*``, at any depth, encapsulated messages included) is decoded from its
Content-Transfer-Encoding (RFC 2045 §6.7, §6.8), converted from its charset to Unicode
(RFC 2046 §4.1.2) and case-folded; the parts are joined by line breaks. Other parts
(images, PDF files…) are not text and are never matched. An encapsulated message
(message/rfc822, message/global) contributes its header fields, encoded words decoded
(RFC 2047), as its header is part of the enclosing message's body.

The accept path stores this text, bounded by ``[storage] search_text_max``, sealed with the
other search fields (:mod:`storage.metadata`); SEARCH decodes on the fly only the messages
stored before, or too large to index.
"""

from __future__ import annotations

import binascii
import codecs
import re

from mail.mime import Entity, Message, parse_message
from mail.views import decode_words

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_CTE = re.compile(r"[\s]+|\([^()]*\)")


def _transfer_decode(data: bytes, encoding: str) -> bytes:
    """``data`` with its transfer encoding undone; a damaged encoding is read as far as
    it goes (search is best effort, never an error)."""
    if encoding == "base64":
        # RFC 2045 §6.8: characters outside the alphabet (line breaks) are ignored.
        # Junk and padding are dropped, then the padding the length needs is put back.
        cleaned = _NOT_BASE64.sub(b"", data)
        rest = len(cleaned) % 4
        cleaned = cleaned[:-1] if rest == 1 else cleaned + b"=" * ((4 - rest) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:
            return b""
    if encoding == "quoted-printable":
        # RFC 2045 §6.7 rule 3: trailing white space of an encoded line is not content
        # (then "=" before the line break is a soft break, rule 5).
        lines = [line.rstrip(b"\r").rstrip(b" \t") for line in data.split(b"\n")]
        return binascii.a2b_qp(b"\r\n".join(lines))
    return data


def _charset_decode(data: bytes, charset: str | None, room: int | None = None) -> str | None:
    """Unicode text of ``data``; an unknown or missing charset is read as UTF-8 when it
    is valid UTF-8, else as Windows-1252 (the usual unlabeled 8-bit text).

    With ``room``: None as soon as the text is known to pass ``room`` characters, the rest
    left undecoded (see :func:`_decode_within`).
    """
    bounded = room is not None and len(data) > room
    if charset:
        try:
            codec = codecs.lookup(charset.strip().strip('"'))
        except LookupError:
            codec = None
        if codec is not None:
            if bounded:
                assert room is not None
                return _decode_within(data, codec.name, "replace", room)
            return data.decode(codec.name, "replace")
    if bounded:
        assert room is not None
        try:
            return _decode_within(data, "utf-8", "strict", room)
        except UnicodeDecodeError:
            return None  # Windows-1252: one character per octet, more than ``room``
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


_PIECE = 64 * 1024


def _decode_within(data: bytes, encoding: str, errors: str, room: int) -> str | None:
    """``data`` decoded piece by piece, or None once more than ``room`` characters came out.

    Why: the accept path indexes at most ``search_text_max`` characters; a text part of
    1 MB was decoded whole (and case-folded) only to be dropped. An incremental decoder
    gives the same text as a whole decode and never returns a character before its last
    octet, so what it returned is a lower bound of the whole text's length.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    pieces: list[str] = []
    size = 0
    for start in range(0, len(data), _PIECE):
        end = start + _PIECE
        text = decoder.decode(data[start:end], final=end >= len(data))
        size += len(text)
        if size > room:
            return None
        pieces.append(text)
    return "".join(pieces)


class _TooLong(Exception):
    """The text passed the bound: the remaining parts need not be decoded."""


class _Text:
    """The text parts collected so far, and how many characters they may still add."""

    def __init__(self, limit: int | None) -> None:
        self.parts: list[str] = []
        self.limit = limit
        self.size = 0  # characters so far, joining line breaks included

    @property
    def room(self) -> int | None:
        return None if self.limit is None else self.limit - self.size

    def add(self, text: str | None) -> None:
        if text is None:
            raise _TooLong
        self.size += len(text) + (1 if self.parts else 0)
        if self.limit is not None and self.size > self.limit:
            raise _TooLong
        self.parts.append(text)


def _param(entity: Entity, name: str) -> str | None:
    for key, value in entity.params:
        if key.lower() == name:
            return value
    return None


def _encoding(entity: Entity) -> str:
    value = entity.header.get("content-transfer-encoding") or ""
    return _CTE.sub("", value).lower()


KNOWN_ENCODINGS = frozenset({"", "7bit", "8bit", "binary", "base64", "quoted-printable"})
"""The Content-Transfer-Encodings of RFC 2045 §6.1 (none written means 7bit)."""

TEXTUAL_REPORTS = frozenset({
    "message/delivery-status", "message/global-delivery-status",
    "message/disposition-notification", "message/global-disposition-notification",
    "message/feedback-report", "message/global-headers",
})
"""Report parts that are text in all but name (RFC 3464 §2.1, RFC 6533, RFC 8098 §3.2.1,
RFC 5965): their words are the body's, as a reader sees them, so BODY finds them.
message/global-headers (RFC 6533 §4) is the UTF-8 form of text/rfc822-headers, which is
searched as the text part it is."""


def _collect(raw: bytes, entity: Entity, out: _Text) -> None:
    if entity.children:
        for child in entity.children:
            _collect(raw, child, out)
        return
    if entity.message is not None:
        _collect_message(raw, entity.message, out, nested=True)
        return
    if entity.kind != "text" and entity.media_type not in TEXTUAL_REPORTS:
        return
    encoding = _encoding(entity)
    if encoding not in KNOWN_ENCODINGS:
        # RFC 2045 §6.4: an entity with an unrecognized Content-Transfer-Encoding "must be
        # treated as if it has a Content-Type of application/octet-stream": not text.
        return
    data = _transfer_decode(raw[entity.body_start:entity.body_end], encoding)
    out.add(_charset_decode(data, _param(entity, "charset"), out.room))


def _collect_message(raw: bytes, message: Message, out: _Text, *, nested: bool) -> None:
    if nested:
        out.add("\n".join(f"{name}: {decode_words(value) or ''}"
                          for name, value in message.header.fields))
    _collect(raw, message.body, out)


def body_text(raw: bytes, message: Message | None = None) -> str:
    """The case-folded decoded text of every text part of the message's body."""
    text = _body_text(raw, message, None)
    assert text is not None  # unbounded
    return text


def _body_text(raw: bytes, message: Message | None, limit: int | None) -> str | None:
    """:func:`body_text`, or None as soon as it is known to be longer than ``limit``."""
    if message is None:
        message = parse_message(raw)
    out = _Text(limit)
    try:
        _collect_message(raw, message, out, nested=False)
    except _TooLong:
        return None
    return "\n".join(out.parts).casefold()


def header_text(header: bytes) -> str:
    """The case-folded text of a header block for SEARCH TEXT: the fields as written, and
    again with their RFC 2047 encoded words decoded."""
    text = header.decode("utf-8", "replace")
    unfolded = re.sub(r"\r?\n[ \t]", " ", text)
    decoded = [decode_words(line) or line for line in unfolded.splitlines()]
    return (text + "\n" + "\n".join(decoded)).casefold()


def indexed_text(raw: bytes, limit: int, message: Message | None = None) -> str | None:
    """:func:`body_text` to store at accept time, or None when it is longer than ``limit``
    characters (SEARCH then decodes the message when asked)."""
    if limit <= 0:
        return None
    # Case folding never shortens a text, so a text over the limit before it is over after.
    text = _body_text(raw, message, limit)
    return text if text is not None and len(text) <= limit else None
