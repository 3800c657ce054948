"""The precomputed IMAP views of a message, built once when it is stored.

SMTP accept and IMAP APPEND call :func:`build_view` on the raw bytes and store
:meth:`MessageView.to_json` beside the encrypted body. IMAP FETCH then answers ENVELOPE, BODY,
BODYSTRUCTURE and RFC822.SIZE from the view, resolves body sections to byte ranges
(:mod:`mail.sections`) and reads only those ranges from the store; SEARCH uses the decoded
search fields. No FETCH ever re-parses a whole message.

Rendered strings (envelope, body, bodystructure) are IMAP text decoded with UTF-8 and
``surrogateescape``: use :func:`mail.imapstring.wire_bytes` to put them on the wire.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import unquote_to_bytes

from mail.addresses import parse_address_list
from mail.bodystructure import render_structures
from mail.dates import parse_date
from mail.encodedwords import decode_encoded_words
from mail.envelope import render_envelope
from mail.imapstring import ENCODING, ERRORS
from mail.mime import Entity, Message, body_text_parts, parse_message
from mail.mimeheader import Header, parse_disposition, parse_token_value

VIEW_VERSION = 1


class ViewFormatError(ValueError):
    """A stored view cannot be read by this version (rebuild it from the raw message)."""


@dataclass(frozen=True, slots=True)
class PartOffsets:
    """Byte offsets of one numbered part in the stored message.

    The MIME header is ``[header_start, header_end)`` (blank line included) and the body is
    ``[body_start, body_end)``. For a message/rfc822 part, the encapsulated message's header is
    ``[body_start, text_start)`` and its text ``[text_start, body_end)``; ``text_start`` is
    ``None`` for other parts.
    """

    header_start: int
    header_end: int
    body_start: int
    body_end: int
    text_start: int | None = None

    @property
    def is_message(self) -> bool:
        return self.text_start is not None


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attached file, for the per-attachment size rule and for display.

    Every leaf part is listed except the readable text of the message (see
    :func:`_attachment`), so that marking a file inline or leaving out its name cannot bypass
    the size rule. A forwarded message is listed, and its own parts too.
    """

    part: str
    filename: str | None
    content_type: str  # lowercase type/subtype
    decoded_size: int  # estimate of the size after transfer decoding, in octets


@dataclass(frozen=True, slots=True)
class SearchFields:
    """Decoded header values for SEARCH (RFC 3501 §6.4.4) and listings."""

    subject: str | None
    from_: str | None
    to: str | None
    cc: str | None
    bcc: str | None
    date: int | None  # Date header as a UTC epoch (None when absent or unreadable)
    # RFC 3501 §6.4.4: SENTBEFORE/SENTON/SENTSINCE compare the Date header "disregarding time
    # and timezone", i.e. the calendar date as written by the sender, kept as YYYY-MM-DD.
    sent_date: str | None
    message_id: str | None
    header_size: int
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class MessageView:
    """Everything IMAP needs to answer FETCH and SEARCH without reading the whole message."""

    size: int  # RFC822.SIZE: octets as stored
    text_start: int  # end of the top-level header (blank line included), start of TEXT
    envelope: str
    body: str
    bodystructure: str
    parts: dict[str, PartOffsets]
    search: SearchFields

    @property
    def header_end(self) -> int:
        """End of the top-level header: the header includes its blank line."""
        return self.text_start

    def to_json(self) -> str:
        """Compact JSON for the message row (stable across processes and engines)."""
        data: dict[str, Any] = {
            "v": VIEW_VERSION,
            "size": self.size,
            "text_start": self.text_start,
            "envelope": self.envelope,
            "body": self.body,
            "bodystructure": self.bodystructure,
            "parts": {
                k: [p.header_start, p.header_end, p.body_start, p.body_end, p.text_start]
                for k, p in self.parts.items()
            },
            "search": asdict(self.search),
        }
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MessageView:
        """Read a stored view; refuses an unknown format version rather than guessing."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ViewFormatError(f"stored message view is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("v") != VIEW_VERSION:
            version = data.get("v") if isinstance(data, dict) else None
            raise ViewFormatError(
                f"stored message view has format version {version!r}, expected "
                f"{VIEW_VERSION}; rebuild it from the stored message"
            )
        s = data["search"]
        search = SearchFields(
            subject=s["subject"],
            from_=s["from_"],
            to=s["to"],
            cc=s["cc"],
            bcc=s["bcc"],
            date=s["date"],
            sent_date=s["sent_date"],
            message_id=s["message_id"],
            header_size=s["header_size"],
            attachments=tuple(Attachment(**a) for a in s["attachments"]),
        )
        return cls(
            size=data["size"],
            text_start=data["text_start"],
            envelope=data["envelope"],
            body=data["body"],
            bodystructure=data["bodystructure"],
            parts={k: PartOffsets(*v) for k, v in data["parts"].items()},
            search=search,
        )


def _readable(value: str) -> str:
    """Text for search: raw 8-bit header bytes that are not UTF-8 are read as Windows-1252."""
    try:
        value.encode(ENCODING)
        return value
    except UnicodeEncodeError:
        return value.encode(ENCODING, ERRORS).decode("cp1252", "replace")


def decode_words(value: str | None) -> str | None:
    """RFC 2047 encoded words decoded (see :mod:`mail.encodedwords`); those that cannot be
    are kept as written."""
    if value is None:
        return None
    return decode_encoded_words(_readable(value))


def _addresses_text(value: str | None) -> str | None:
    if value is None:
        return None
    out: list[str] = []
    group = ""  # the "name:" of a group whose first member is still to come
    for name, _adl, mailbox, host in parse_address_list(value):
        if host is None:
            # RFC 3501 §6.4.4: TO/FROM/CC/BCC match the field's text, which holds the
            # display name of a group (RFC 5322 §3.4): "name: members;".
            if mailbox:
                group = f"{decode_words(mailbox) or mailbox}: "
            elif out or group:
                if group:
                    out.append(group.rstrip())
                    group = ""
                out[-1] += ";"
            continue
        addr = f"{mailbox}@{host}"
        shown = decode_words(name)
        out.append(group + (f"{shown} <{addr}>" if shown else addr))
        group = ""
    return _readable(", ".join(out)) if out else None


def date_instant(value: str | None) -> int | None:
    """The instant a Date field names, in UTC epoch seconds, or None when it is missing or
    unreadable. The one reading of the sent date: the search fields, the stored
    ``messages.sent_at`` and SORT DATE (RFC 5256 §2.2) all take it from here."""
    return _date(value)[0]


def _date(value: str | None) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    try:
        when = parse_date(_readable(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, None
    sent = when.date().isoformat()
    if when.tzinfo is None:
        # RFC 5322 §3.3: "-0000" means no zone information; read it as UTC.
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()), sent


_SECTION = re.compile(r"([0-9]{1,4})(\*?)")
"""An RFC 2231 §3 section number, ASCII digits only: ``str.isdigit`` also accepts ``²``,
which ``int`` refuses, and a very long number costs ``int`` time for nothing (no real
parameter is split into 10,000 sections)."""


def decode_param(params: list[tuple[str, str]], name: str) -> str | None:
    """A parameter value with RFC 2231 continuations and charsets decoded, then RFC 2047.

    RFC 2231 §3: ``name*0``, ``name*1``… are concatenated; §4: a section ending in ``*`` is
    percent-encoded, the first one prefixed by ``charset'language'``. Many mailers put RFC 2047
    encoded words in quoted file names instead; those are decoded too.

    Never raises: broken mailers write charsets that are not charsets (8-bit octets, a NUL,
    a codec such as ``base64`` that is not a text encoding) and section numbers that are not
    numbers. A section that cannot be numbered is ignored; a value whose charset cannot
    decode it is returned as written, so the message still gets its view and is delivered.
    """
    sections: dict[int, tuple[str, bool]] = {}
    plain: str | None = None
    prefix = name + "*"
    for key, value in params:
        if key == name:
            if plain is None:
                plain = value
        elif key.startswith(prefix):
            rest = key[len(prefix) :]
            if rest == "":
                index, encoded = 0, True
            else:
                section = _SECTION.fullmatch(rest)
                if section is None:
                    continue
                index, encoded = int(section.group(1)), bool(section.group(2))
            sections.setdefault(index, (value, encoded))
    if not sections:
        return decode_words(plain)
    charset = "utf-8"
    chunks: list[bytes] = []
    written: list[str] = []
    index = 0
    while index in sections:
        value, encoded = sections[index]
        written.append(value)
        if encoded:
            if index == 0 and value.count("'") >= 2:
                charset, _language, value = value.split("'", 2)
                charset = charset or "utf-8"
            chunks.append(unquote_to_bytes(value.encode(ENCODING, ERRORS)))
        else:
            chunks.append(value.encode(ENCODING, ERRORS))
        index += 1
    data = b"".join(chunks)
    decoded = _decode_charset(data, charset)
    return _readable("".join(written)) if decoded is None else decoded


def _decode_charset(data: bytes, charset: str) -> str | None:
    """``data`` decoded with a charset named by the sender, or None when it cannot be.

    The name comes from the message: it may be unknown (LookupError), not a text encoding
    (``base64``: LookupError), unencodable as a codec name (a lone surrogate from an 8-bit
    octet: UnicodeError) or contain a NUL (ValueError).
    """
    try:
        return data.decode(charset, "replace")
    except (LookupError, UnicodeError, ValueError):
        return None


def _decoded_size(raw: bytes, ent: Entity) -> int:
    """Octets after transfer decoding, estimated with C-level counts (no decoding)."""
    start, end = ent.body_start, ent.body_end
    length = end - start
    encoding = (parse_token_value(ent.header.get("content-transfer-encoding")) or "").lower()
    if encoding == "base64":
        # RFC 2045 §6.8: 4 characters for 3 octets; whitespace is ignored, "=" pads the end.
        spaces = sum(raw.count(c, start, end) for c in (b"\r", b"\n", b" ", b"\t"))
        tail = raw[max(start, end - 16) : end].rstrip(b" \t\r\n")
        padding = min(2, len(tail) - len(tail.rstrip(b"=")))
        return max(0, (length - spaces) * 3 // 4 - padding)
    if encoding == "quoted-printable":
        # RFC 2045 §6.7: "=XX" is one octet; soft line breaks vanish.
        return max(0, length - 2 * raw.count(b"=", start, end))
    return length


def _attachment(raw: bytes, ent: Entity, body: frozenset[int]) -> Attachment | None:
    """The leaf as an attachment, or None when it is the readable text of its message.

    Every leaf counts except a body text part (:func:`mail.mime.body_text_parts`) that
    neither names a file nor is marked ``attachment``: marking a PDF inline, leaving out
    its file name or its Content-Type cannot take it past the size rule.
    """
    disposition = parse_disposition(ent.header.get("content-disposition"))
    filename = None
    if disposition is not None:
        filename = decode_param(disposition[1], "filename")
    if filename is None and ent.explicit_type:
        filename = decode_param(ent.params, "name")
    is_attachment = disposition is not None and disposition[0].lower() == "attachment"
    if id(ent) in body and not is_attachment and filename is None:
        return None
    return Attachment(ent.number, filename, ent.media_type, _decoded_size(raw, ent))


def _dropped(ent: Entity) -> Attachment | None:
    """What lies past the part-count limit, as one unnamed attachment of its raw size."""
    if ent.dropped is None:
        return None
    start, end = ent.dropped
    number = f"{ent.number}.{len(ent.children) + 1}" if ent.number else str(len(ent.children) + 1)
    return Attachment(number, None, "application/octet-stream", end - start)


def _walk(
    raw: bytes,
    ent: Entity,
    parts: dict[str, PartOffsets],
    found: list[Attachment],
    body: frozenset[int],
) -> None:
    if ent.number:
        parts.setdefault(
            ent.number,
            PartOffsets(
                ent.header_start,
                ent.body_start,
                ent.body_start,
                ent.body_end,
                None if ent.message is None else ent.message.text_start,
            ),
        )
    if ent.is_multipart:
        for child in ent.children:
            _walk(raw, child, parts, found, body)
        dropped = _dropped(ent)
        if dropped is not None:
            found.append(dropped)
        return
    attachment = _attachment(raw, ent, body)
    if attachment is not None:
        found.append(attachment)
    if ent.message is not None:
        _walk_message(raw, ent.message, parts, found)


def _walk_message(
    raw: bytes, message: Message, parts: dict[str, PartOffsets], found: list[Attachment]
) -> None:
    body = message.body
    texts = frozenset(id(e) for e in body_text_parts(body))
    if body.is_multipart:
        # The multipart body of a message is its TEXT, not a numbered part: its number is the
        # prefix of its children's numbers and must not shadow the part that encloses it.
        for child in body.children:
            _walk(raw, child, parts, found, texts)
        dropped = _dropped(body)
        if dropped is not None:
            found.append(dropped)
    else:
        _walk(raw, body, parts, found, texts)


def _search_fields(header: Header, text_start: int, found: list[Attachment]) -> SearchFields:
    epoch, sent = _date(header.get("date"))
    message_id = header.get("message-id")
    return SearchFields(
        subject=decode_words(header.get("subject")),
        from_=_addresses_text(header.get("from")),
        to=_addresses_text(header.get("to")),
        cc=_addresses_text(header.get("cc")),
        bcc=_addresses_text(header.get("bcc")),
        date=epoch,
        sent_date=sent,
        message_id=None if message_id is None else _readable(message_id),
        header_size=text_start,
        attachments=tuple(found),
    )


def build_view(raw: bytes) -> MessageView:
    """Parse the stored message once and precompute every IMAP view of it."""
    message = parse_message(raw)
    body, bodystructure = render_structures(message.body)
    parts: dict[str, PartOffsets] = {}
    found: list[Attachment] = []
    _walk_message(raw, message, parts, found)
    return MessageView(
        size=len(raw),
        text_start=message.text_start,
        envelope=render_envelope(message.header),
        body=body,
        bodystructure=bodystructure,
        parts=parts,
        search=_search_fields(message.header, message.text_start, found),
    )


class ViewCache:
    """Decoded views of recently fetched messages, keyed by their stored JSON, bounded.

    Decoding the JSON again for each message of each FETCH costs more than serving the
    answer. The key is the stored text itself (hashing and comparing it is far cheaper than
    decoding it), so an entry can never answer for another message or another database.
    Least recently used entries go first; a simple message's view takes about 3 KB, so
    the default holds a large mailbox being paged through for some 50 MB.
    """

    def __init__(self, capacity: int = 16384) -> None:
        self.capacity = capacity
        self._views: OrderedDict[str, MessageView] = OrderedDict()

    def get(self, text: str) -> MessageView:
        """The view stored as ``text``, decoded only when not already held."""
        return self._held(text, MessageView.from_json)

    def get_stored(self, stored: str) -> MessageView:
        """The view of a ``messages.view`` column read as it is stored (a JSON string
        literal, see :class:`storage.types.JSONText`): a cached view costs neither
        unescaping the literal nor decoding it."""
        return self._held(stored, lambda literal: MessageView.from_json(json.loads(literal)))

    def _held(self, key: str, decode: Callable[[str], MessageView]) -> MessageView:
        views = self._views
        view = views.get(key)
        if view is not None:
            views.move_to_end(key)
            return view
        view = views[key] = decode(key)
        if len(views) > self.capacity:
            views.popitem(last=False)
        return view

    def __len__(self) -> int:
        return len(self._views)


VIEWS = ViewCache()
"""The process-wide cache used by the IMAP server."""
