"""IMAP body sections resolved to byte ranges of the stored message (RFC 3501 §6.4.5).

The IMAP server reads only the ranges a FETCH needs from the encrypted store (which decrypts
only the segments it touches), so everything here works on offsets from a
:class:`mail.views.MessageView`, never on the whole message.

Section kinds: ``""``, ``HEADER``, ``TEXT``, ``HEADER.FIELDS (…)``, ``HEADER.FIELDS.NOT (…)``,
each optionally after a part number, plus ``N`` and ``N.MIME``. Rules:

- A non-multipart message has one part, ``1``: its body, whose MIME header (``1.MIME``) is
  the message header.
- ``HEADER``/``TEXT`` after a part number apply to the message encapsulated in a
  message/rfc822 part; for any other part they are an empty string.
- A part number that does not exist gives an empty string: it is not an error to ask
  (clients probe), and an empty string tells them there is nothing there.
- Every header fetch includes the blank line that ends the header, except for a message that
  has neither body nor blank line.
- A partial ``<origin.octets>`` is applied after the section is resolved; an origin beyond
  the end gives an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from mail.views import MessageView

Range = tuple[int, int]

_KINDS = frozenset({"", "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})
_FIELD_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')


class SectionError(ValueError):
    """A section specifier that the IMAP grammar does not allow (answer BAD)."""


@dataclass(frozen=True, slots=True)
class Section:
    """A parsed section specifier: part number, kind and header field names."""

    part: tuple[int, ...]
    kind: str  # one of _KINDS, uppercase
    fields: tuple[str, ...] = ()

    @property
    def filters_fields(self) -> bool:
        """True when the bytes of the ranges must go through :func:`filter_header_fields`."""
        return self.kind.startswith("HEADER.FIELDS")


def parse_section(spec: str) -> Section:
    """Parse the text between ``[`` and ``]`` of ``BODY[…]`` (RFC 3501 §9 ``section``)."""
    text = spec.strip()
    fields: tuple[str, ...] = ()
    paren = text.find("(")
    if paren >= 0:
        if not text.endswith(")"):
            raise SectionError(f"header field list is not closed in section {spec!r}")
        names = []
        for m in _FIELD_TOKEN.finditer(text[paren + 1 : -1]):
            if m.group(1) is not None:
                names.append(re.sub(r"\\(.)", r"\1", m.group(1)))
            else:
                names.append(m.group(2))
        fields = tuple(names)
        text = text[:paren].rstrip()
        if not fields:
            # RFC 3501 §9: header-list = "(" header-fld-name *(SP header-fld-name) ")"
            raise SectionError(f"empty header field list in section {spec!r}")
    pieces = text.split(".") if text else []
    numbers: list[int] = []
    # RFC 3501 §9 nz-number is ASCII digits (isdigit() alone accepts "²" and "٣")
    while pieces and pieces[0].isascii() and pieces[0].isdigit():
        number = int(pieces.pop(0))
        if number == 0:
            # RFC 3501 §9: section-part = nz-number *("." nz-number)
            raise SectionError(f"part numbers start at 1, got 0 in section {spec!r}")
        numbers.append(number)
    kind = ".".join(pieces).upper()
    if kind not in _KINDS:
        raise SectionError(f"unknown section text {kind!r} in section {spec!r}")
    if kind == "MIME" and not numbers:
        # RFC 3501 §6.4.5: "The MIME part specifier MUST be prefixed by one or more numeric
        # part specifiers."
        raise SectionError(f"MIME needs a part number, as in 1.MIME, in section {spec!r}")
    if kind.startswith("HEADER.FIELDS") and not fields:
        raise SectionError(f"{kind} needs a list of header field names in section {spec!r}")
    if fields and not kind.startswith("HEADER.FIELDS"):
        raise SectionError(f"a field list is only allowed after HEADER.FIELDS in {spec!r}")
    return Section(tuple(numbers), kind, fields)


def section_ranges(view: MessageView, section: Section | str) -> list[Range]:
    """Byte ranges of the stored message that make up the section (empty list: empty string).

    For ``HEADER.FIELDS`` kinds the ranges are those of the whole header; pass their bytes to
    :func:`filter_header_fields`.
    """
    if isinstance(section, str):
        section = parse_section(section)
    kind = section.kind
    if not section.part:
        if kind == "":
            return [(0, view.size)]
        if kind == "TEXT":
            return [(view.text_start, view.size)]
        return [(0, view.text_start)]  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT
    part = view.parts.get(".".join(str(n) for n in section.part))
    if part is None:
        return []
    if kind == "":
        return [(part.body_start, part.body_end)]
    if kind == "MIME":
        return [(part.header_start, part.header_end)]
    if part.text_start is None:
        return []  # HEADER/TEXT of a part that is not an encapsulated message
    if kind == "TEXT":
        return [(part.text_start, part.body_end)]
    return [(part.body_start, part.text_start)]


def ranges_size(ranges: Iterable[Range]) -> int:
    """Total octets of the ranges (the literal size of a FETCH answer without filtering)."""
    return sum(end - start for start, end in ranges)


def partial_ranges(ranges: list[Range], origin: int, count: int | None = None) -> list[Range]:
    """The sub-ranges of ``<origin.count>`` (RFC 3501 §6.4.5 partial fetch)."""
    out: list[Range] = []
    skip = origin
    left = count
    for start, end in ranges:
        if left is not None and left <= 0:
            break
        length = end - start
        if skip >= length:
            skip -= length
            continue
        start += skip
        skip = 0
        if left is not None:
            end = min(end, start + left)
            left -= end - start
        if end > start:
            out.append((start, end))
    return out


def partial_bytes(data: bytes, origin: int, count: int | None = None) -> bytes:
    """``<origin.count>`` applied to already materialised section bytes."""
    if origin >= len(data):
        return b""
    return data[origin:] if count is None else data[origin : origin + count]


def filter_header_fields(header: bytes, names: Iterable[str], negate: bool) -> bytes:
    """The header fields named (or, with ``negate``, not named) in ``names``, in order.

    RFC 3501 §6.4.5: matching is case-insensitive but otherwise exact; each field keeps its
    folded lines as stored; "Subsetting does not exclude the [RFC-2822] delimiting blank line
    between the header and the body" — the blank line is kept when ``header`` has one.
    """
    wanted = {n.lower() for n in names}
    out: list[bytes] = []
    keep = False
    pos = 0
    size = len(header)
    while pos < size:
        nl = header.find(b"\n", pos)
        stop = size if nl < 0 else nl + 1
        line = header[pos:stop]
        pos = stop
        if line in (b"\r\n", b"\n"):
            out.append(line)  # the blank line ends the header
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)  # RFC 5322 §2.2.3: continuation of the current field
            continue
        colon = line.find(b":")
        name = line[:colon].rstrip(b" \t").decode("ascii", "replace").lower() if colon > 0 else ""
        keep = (name in wanted) != negate if name else negate
        if keep:
            out.append(line)
    return b"".join(out)


Partial = tuple[int, int | None]


def _assemble(section: Section, chunks: list[bytes], partial: Partial | None) -> bytes:
    data = b"".join(chunks)
    if section.filters_fields:
        data = filter_header_fields(data, section.fields, section.kind.endswith(".NOT"))
    if partial is not None:
        data = partial_bytes(data, partial[0], partial[1])
    return data


def read_section(
    view: MessageView,
    section: Section | str,
    read: Callable[[int, int], bytes],
    partial: Partial | None = None,
) -> bytes:
    """The bytes of ``BODY[section]<partial>``, reading only the needed ranges via ``read``."""
    if isinstance(section, str):
        section = parse_section(section)
    ranges = section_ranges(view, section)
    if partial is not None and not section.filters_fields:
        ranges = partial_ranges(ranges, partial[0], partial[1])
        return b"".join(read(s, e) for s, e in ranges)
    return _assemble(section, [read(s, e) for s, e in ranges], partial)


async def aread_section(
    view: MessageView,
    section: Section | str,
    read: Callable[[int, int], Awaitable[bytes]],
    partial: Partial | None = None,
) -> bytes:
    """:func:`read_section` for an asynchronous store reader."""
    if isinstance(section, str):
        section = parse_section(section)
    ranges = section_ranges(view, section)
    if partial is not None and not section.filters_fields:
        ranges = partial_ranges(ranges, partial[0], partial[1])
        return b"".join([await read(s, e) for s, e in ranges])
    return _assemble(section, [await read(s, e) for s, e in ranges], partial)
