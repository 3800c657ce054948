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


def _charset_decode(data: bytes, charset: str | None) -> str:
    """Unicode text of ``data``; an unknown or missing charset is read as UTF-8 when it
    is valid UTF-8, else as Windows-1252 (the usual unlabeled 8-bit text)."""
    if charset:
        try:
            codec = codecs.lookup(charset.strip().strip('"'))
        except LookupError:
            codec = None
        if codec is not None:
            return data.decode(codec.name, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


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


def _collect(raw: bytes, entity: Entity, out: list[str]) -> None:
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
    out.append(_charset_decode(data, _param(entity, "charset")))


def _collect_message(raw: bytes, message: Message, out: list[str], *, nested: bool) -> None:
    if nested:
        out.append("\n".join(f"{name}: {decode_words(value) or ''}"
                             for name, value in message.header.fields))
    _collect(raw, message.body, out)


def body_text(raw: bytes, message: Message | None = None) -> str:
    """The case-folded decoded text of every text part of the message's body."""
    if message is None:
        message = parse_message(raw)
    out: list[str] = []
    _collect_message(raw, message, out, nested=False)
    return "\n".join(out).casefold()


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
    text = body_text(raw, message)
    return text if len(text) <= limit else None
