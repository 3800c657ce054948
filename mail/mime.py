"""One pass over a raw message: the MIME tree with the byte offsets of every part.

Bodies are never split into lines in Python: multipart boundaries are found with
``bytes.find`` and lines are counted with ``bytes.count``, so a 10 MB base64 attachment costs a
few C-level scans. Only header blocks are parsed field by field.

Offsets refer to the stored bytes. Line ends are CRLF as stored; bare LF is tolerated.

Part numbers follow RFC 3501 §6.4.5: the parts of a top-level multipart are ``1``, ``2``…; a
non-multipart message has a single part ``1`` (its body, with the message header as MIME
header); the parts of a message/rfc822 part ``N`` are numbered ``N.1``… in the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from mail.imapstring import wire_bytes
from mail.mimeheader import (
    Header,
    find_body_start,
    parse_content_type,
    parse_header,
    parse_token_value,
)

LF = 0x0A
CR = 0x0D

# Hostile nesting must not exhaust the stack; deeper multiparts are shown as opaque leaves.
MAX_DEPTH = 50
# A message of tiny parts must not produce an unbounded view.
MAX_PARTS = 10_000

# RFC 2045 §6.1: encodings under which an encapsulated message can be read as is.
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
# RFC 2046 §5.2.1 and RFC 6532 §3.7 (message/global, listed in RFC 9051 §7.5.2).
_MESSAGE_SUBTYPES = frozenset({"rfc822", "global"})


@dataclass(slots=True)
class Entity:
    """A MIME entity: a part with its MIME header, or the body of a message.

    ``number`` is the IMAP part number, or ``""`` for the body of a multipart message, which
    has no number of its own (it is the message TEXT).
    """

    number: str
    header_start: int
    body_start: int  # also the end of the MIME header, blank line included
    body_end: int
    header: Header
    mtype: str  # as written (or the default), e.g. "text"
    subtype: str
    params: list[tuple[str, str]]
    explicit_type: bool  # False when Content-Type was absent or invalid (defaults applied)
    lines: int = 0  # text lines of the body, counted for text/* and message/* leaves only
    children: list[Entity] = field(default_factory=list)
    message: Message | None = None
    # ``(start, end)`` of the parts dropped past MAX_PARTS: not in the tree, yet octets the
    # sender sent, which the attachment size rule must still count.
    dropped: tuple[int, int] | None = None

    @property
    def media_type(self) -> str:
        """``type/subtype`` in lowercase, for decisions (media types are case-insensitive)."""
        return f"{self.mtype}/{self.subtype}".lower()

    @property
    def is_multipart(self) -> bool:
        """True when the body was split into parts (a multipart past the limits is a leaf)."""
        return bool(self.children)

    @property
    def kind(self) -> str:
        """How IMAP shows the entity (RFC 3501 §9 body): ``multipart``, ``message``,
        ``text`` or ``basic``.

        One decision for BODYSTRUCTURE and for the attachment rule, so that a part the
        client sees as a file is a file for the size limit too: a multipart left unsplit
        (too deep) and a message/rfc822 that cannot be read as is (base64) are ``basic``.
        """
        if self.children:
            return "multipart"
        if self.message is not None:
            return "message"
        if self.mtype.lower() == "text":
            return "text"
        return "basic"


@dataclass(slots=True)
class Message:
    """A message (top-level or encapsulated): its header, its text and its body entity."""

    header_start: int
    text_start: int  # end of the header, blank line included
    end: int
    header: Header
    body: Entity


@dataclass(slots=True)
class _Budget:
    parts: int = 0


def split_multipart(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Regions ``(start, end)`` of the body parts between boundary delimiters.

    RFC 2046 §5.1.1: a delimiter is ``--boundary`` at the start of a line, optionally followed
    by ``--`` (close delimiter) and linear white space; the line break *before* it belongs to
    the delimiter, so a part ends before that CRLF. Preamble and epilogue are not parts.
    An unterminated multipart ends at ``end``.

    The reading is the grammar's: after ``--boundary`` (or ``--boundary--``) only transport
    padding (spaces and tabs) may come before the line break; a line such as
    ``--boundaryX`` or ``--boundary text`` is content. Dovecot reads any line that *starts*
    with the delimiter as one (the note to implementors of §5.1.1 allows it) and then picks
    the longest boundary of the enclosing multiparts; this parser splits an outer multipart
    before it reads the inner ones' boundaries, so the prefix reading would cut a nested
    multipart whose boundary extends the outer one (``abc`` / ``abcd``), which the grammar
    reading never does.
    """
    delim = b"--" + boundary
    regions: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while True:
        p = raw.find(delim, pos, end)
        if p < 0:
            break
        if p != start and raw[p - 1] != LF:
            pos = p + 1
            continue
        after = p + len(delim)
        closing = raw.startswith(b"--", after, end)
        eol = raw.find(b"\n", after, end)
        line_end = end if eol < 0 else eol
        rest = raw[after + 2 if closing else after : line_end]
        if rest.strip(b" \t\r"):
            # A longer boundary sharing this prefix, or text: not a delimiter.
            pos = p + 1
            continue
        if part_start >= 0:
            stop = p
            if stop > part_start and raw[stop - 1] == LF:
                stop -= 1
                if stop > part_start and raw[stop - 1] == CR:
                    stop -= 1
            regions.append((part_start, stop))
        if closing:
            return regions
        part_start = end if eol < 0 else eol + 1
        pos = part_start
    if part_start >= 0:
        regions.append((part_start, end))
    return regions


_BOUNDARY_SECTION = re.compile(r"boundary\*(?:([0-9]{1,3}))?(\*?)")
"""``boundary*``, ``boundary*0``, ``boundary*1*``…: the boundary in RFC 2231 form."""


def boundary_of(params: list[tuple[str, str]]) -> str | None:
    """The boundary parameter of a multipart, RFC 2231 sections joined.

    RFC 2231 §3 lets any parameter be split (``boundary*0="ab"; boundary*1="cd"`` is the
    boundary ``abcd``) and §4 percent-encoded (``boundary*=''ab%2Dcd``); a boundary is
    ASCII (RFC 2046 §5.1.1 bchars), so the charset and language prefix are dropped.
    """
    plain = next((v for k, v in params if k == "boundary"), None)
    if plain:
        return plain
    sections: dict[int, str] = {}
    for key, value in params:
        found = _BOUNDARY_SECTION.fullmatch(key)
        if found is None:
            continue
        index = int(found.group(1) or 0)
        if found.group(1) is None or found.group(2):
            if index == 0 and value.count("'") >= 2:
                value = value.split("'", 2)[2]
            value = unquote(value, encoding="ascii", errors="replace")
        sections.setdefault(index, value)
    joined: list[str] = []
    while len(joined) in sections:
        joined.append(sections[len(joined)])
    return "".join(joined) or None


def _child_number(parent: str, index: int) -> str:
    return f"{parent}.{index}" if parent else str(index)


def _entity(
    raw: bytes,
    number: str,
    header_start: int,
    body_start: int,
    body_end: int,
    header: Header,
    depth: int,
    budget: _Budget,
    in_digest: bool,
) -> Entity:
    ctype = parse_content_type(header.get("content-type"))
    explicit = ctype is not None
    if ctype is None:
        # RFC 2046 §5.1.5: in a multipart/digest the default is message/rfc822;
        # RFC 2045 §5.2: otherwise text/plain; charset=us-ascii.
        if in_digest:
            ctype = ("message", "rfc822", [])
        else:
            ctype = ("text", "plain", [("charset", "us-ascii")])
    mtype, subtype, params = ctype
    lower_type = mtype.lower()
    ent = Entity(
        number, header_start, body_start, body_end, header, mtype, subtype, params, explicit
    )
    if lower_type == "text":
        ent.lines = count_lines(raw, body_start, body_end)
    if depth >= MAX_DEPTH:
        return ent
    if lower_type == "multipart":
        boundary = boundary_of(params)
        if not boundary:
            # RFC 2046 §5.1.1 makes the boundary mandatory; without it the body cannot be
            # split, so it is shown as text/plain (RFC 2045 §5.2 fallback for invalid types).
            ent.mtype, ent.subtype, ent.params = "text", "plain", [("charset", "us-ascii")]
            ent.explicit_type = False
            ent.lines = count_lines(raw, body_start, body_end)
            return ent
        digest = subtype.lower() == "digest"
        regions = split_multipart(raw, body_start, body_end, wire_bytes(boundary))
        if not regions:
            # IMAP needs at least one part (RFC 3501 §9 body-type-mpart = 1*body): an empty one.
            regions = [(body_end, body_end)]
        for index, (ps, pe) in enumerate(regions, start=1):
            budget.parts += 1
            if budget.parts > MAX_PARTS:
                ent.dropped = (ps, regions[-1][1])
                break
            pb = find_body_start(raw, ps, pe)
            child = _entity(
                raw,
                _child_number(number, index),
                ps,
                pb,
                pe,
                parse_header(raw, ps, pb),
                depth + 1,
                budget,
                digest,
            )
            ent.children.append(child)
        return ent
    if lower_type == "message" and subtype.lower() in _MESSAGE_SUBTYPES:
        encoding = (parse_token_value(header.get("content-transfer-encoding")) or "7bit").lower()
        if encoding in _IDENTITY_ENCODINGS:
            ent.message = _message(raw, body_start, body_end, number, depth + 1, budget)
            ent.lines = count_lines(raw, body_start, body_end)
    return ent


def _message(raw: bytes, start: int, end: int, prefix: str, depth: int, budget: _Budget) -> Message:
    text_start = find_body_start(raw, start, end)
    header = parse_header(raw, start, text_start)
    ctype = parse_content_type(header.get("content-type"))
    is_multipart = (
        ctype is not None
        and ctype[0].lower() == "multipart"
        and boundary_of(ctype[2]) is not None
        and depth < MAX_DEPTH
    )
    # The body of a multipart message has no number; a single-part body is part "<prefix>.1".
    number = prefix if is_multipart else _child_number(prefix, 1)
    body = _entity(raw, number, start, text_start, end, header, depth, budget, False)
    return Message(start, text_start, end, header, body)


def body_text_parts(body: Entity) -> list[Entity]:
    """The text leaves a mail client shows as the message itself, not as attachments.

    The body of a message is its first part, recursively, except that every alternative
    of a multipart/alternative is the body (RFC 2046 §5.1.4: the same content in several
    forms, HTML included). The root of a multipart/related is its first part (RFC 2387 §3.2);
    the other parts (inline images, style sheets) are resources, counted as attachments.
    Only ``text`` entities qualify: a PDF, an image or a forwarded message is never the
    body, whatever its position or disposition.
    """
    kind = body.kind
    if kind == "text":
        return [body]
    if kind != "multipart":
        return []
    if body.subtype.lower() == "alternative":
        return [leaf for child in body.children for leaf in body_text_parts(child)]
    return body_text_parts(body.children[0])


def parse_message(raw: bytes) -> Message:
    """The MIME tree of a whole stored message."""
    return _message(raw, 0, len(raw), "", 0, _Budget())


def count_lines(raw: bytes, start: int, end: int) -> int:
    """Text lines of ``raw[start:end]`` for BODYSTRUCTURE (RFC 3501 §7.4.2 body-fld-lines).

    The lines ended by a line break: inside a multipart the CRLF before the boundary belongs
    to the delimiter (RFC 2046 §5.1.1), so ``un CRLF deux CRLF --B`` holds ``un CRLF deux``,
    one line, and the size and BODY[n] octets say the same (Dovecot counts alike).
    """
    if end <= start:
        return 0
    return raw.count(b"\n", start, end)
