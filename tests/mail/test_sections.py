"""Section resolution (RFC 3501 §6.4.5) checked against the raw corpus bytes.

Expected bytes are cut from the raw message by searching for the text a section must return,
independently of the offsets the view computed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mail.sections import (
    Section,
    SectionError,
    aread_section,
    filter_header_fields,
    parse_section,
    partial_ranges,
    ranges_size,
    read_section,
    section_ranges,
)
from mail.views import MessageView, build_view

CORPUS = Path(__file__).parent / "corpus"


def load(name: str) -> tuple[bytes, MessageView]:
    raw = (CORPUS / f"{name}.eml").read_bytes()
    return raw, build_view(raw)


def fetch(raw: bytes, view: MessageView, spec: str, partial=None) -> bytes:
    reads: list[tuple[int, int]] = []

    def read(start: int, end: int) -> bytes:
        reads.append((start, end))
        return raw[start:end]

    data = read_section(view, spec, read, partial)
    assert all(0 <= s <= e <= len(raw) for s, e in reads)
    return data


def between(raw: bytes, start: bytes, end: bytes) -> bytes:
    """``raw`` from the first ``start`` up to (excluded) the following ``end``."""
    i = raw.index(start)
    return raw[i : raw.index(end, i)]


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", Section((), "")),
        ("header", Section((), "HEADER")),
        ("TEXT", Section((), "TEXT")),
        ("1", Section((1,), "")),
        ("4.2.2.1", Section((4, 2, 2, 1), "")),
        ("2.MIME", Section((2,), "MIME")),
        ("3.HEADER", Section((3,), "HEADER")),
        ("3.TEXT", Section((3,), "TEXT")),
        ("HEADER.FIELDS (From To)", Section((), "HEADER.FIELDS", ("From", "To"))),
        (
            '2.header.fields.not ("Subject" x-mss-ins)',
            Section((2,), "HEADER.FIELDS.NOT", ("Subject", "x-mss-ins")),
        ),
    ],
)
def test_parse_section(spec: str, expected: Section) -> None:
    assert parse_section(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("MIME", "MIME needs a part number"),
        ("0", "part numbers start at 1"),
        ("1.0.TEXT", "part numbers start at 1"),
        ("1.BODY", "unknown section text 'BODY'"),
        ("HEADER.FIELDS", "needs a list of header field names"),
        ("HEADER.FIELDS ()", "empty header field list"),
        ("HEADER.FIELDS (From", "header field list is not closed"),
        ("TEXT (From)", "only allowed after HEADER.FIELDS"),
    ],
)
def test_parse_section_refusals(spec: str, message: str) -> None:
    with pytest.raises(SectionError, match=message.replace("(", r"\(")):
        parse_section(spec)


# --- whole message and top level -------------------------------------------------------


def test_top_level_sections() -> None:
    raw, view = load("nested")
    header_end = raw.index(b"\r\n\r\n") + 4
    assert fetch(raw, view, "") == raw
    assert fetch(raw, view, "HEADER") == raw[:header_end]
    assert fetch(raw, view, "TEXT") == raw[header_end:]
    assert view.header_end == view.text_start == header_end


def test_single_part_message_part_one_is_its_body() -> None:
    """RFC 3501 §6.4.5: a non-multipart message has a part 1, its body."""
    raw, view = load("simple")
    header_end = raw.index(b"\r\n\r\n") + 4
    assert fetch(raw, view, "1") == raw[header_end:] == b"Hello,\r\nthis is the body.\r\n"
    assert fetch(raw, view, "1.MIME") == raw[:header_end]
    assert fetch(raw, view, "2") == b""
    assert fetch(raw, view, "1.1") == b""
    assert fetch(raw, view, "1.HEADER") == b""


# --- multipart parts -------------------------------------------------------------------


def test_nested_multipart_parts() -> None:
    raw, view = load("nested")
    assert fetch(raw, view, "1.1") == b"Bonjour =C3=A0 tous"
    assert fetch(raw, view, "1.2.1") == b'<p>Bonjour <img src="cid:logo@a"></p>'
    assert fetch(raw, view, "1.2.2") == b"iVBORw0KGgo="
    assert fetch(raw, view, "2") == b"JVBE"
    assert fetch(raw, view, "1.2.2.MIME") == between(raw, b"Content-Type: image/png", b"iVBOR")
    assert fetch(raw, view, "2.MIME").endswith(b"http://example.org/cr.pdf\r\n\r\n")
    # A multipart part's body runs from after its MIME header to before the CRLF that
    # precedes the enclosing delimiter (RFC 2046 §5.1.1), boundaries included.
    assert fetch(raw, view, "1") == between(raw, b"--alt\r\n", b"\r\n--outer\r\nContent-Type: app")
    assert fetch(raw, view, "1.2") == between(raw, b"--rel\r\n", b"\r\n--alt--")
    alt_header = b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    assert fetch(raw, view, "1.MIME") == alt_header


def test_out_of_range_parts_are_empty() -> None:
    raw, view = load("nested")
    for spec in ("3", "1.3", "1.2.3", "2.1", "9.MIME", "2.HEADER", "2.TEXT", "1.HEADER"):
        assert fetch(raw, view, spec) == b"", spec
        assert section_ranges(view, spec) == []


# --- encapsulated message -----------------------------------------------------------------


def test_forwarded_message_sections() -> None:
    raw, view = load("forwarded")
    inner = between(raw, b"From: Labo", b"\r\n--fwd--")
    inner_header = inner[: inner.index(b"\r\n\r\n") + 4]
    assert fetch(raw, view, "2") == inner
    assert fetch(raw, view, "2.HEADER") == inner_header
    assert fetch(raw, view, "2.TEXT") == inner[len(inner_header) :]
    assert fetch(raw, view, "2.MIME") == between(
        raw, b"Content-Type: message/rfc822", b"From: Labo"
    )
    assert fetch(raw, view, "2.1") == b"Results attached."
    assert fetch(raw, view, "2.2") == b"QUJDRA=="
    assert fetch(raw, view, "2.2.MIME") == (
        b"Content-Type: application/pdf; name=res.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    assert fetch(raw, view, "2.HEADER.FIELDS (subject message-id)") == (
        b"Subject: Resultats\r\nMessage-ID: <res-42@labo-y.mssante.fr>\r\n\r\n"
    )
    assert fetch(raw, view, "1.TEXT") == b""


def test_top_level_message_rfc822_numbering() -> None:
    """A message whose body is a message: part 1 is the inner message, 1.1 its body."""
    inner = b"Subject: inner\r\nContent-Type: text/plain\r\n\r\ninner body\r\n"
    raw = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    view = build_view(raw)
    assert fetch(raw, view, "1") == inner
    assert fetch(raw, view, "1.HEADER") == b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n"
    assert fetch(raw, view, "1.TEXT") == b"inner body\r\n"
    assert fetch(raw, view, "1.1") == b"inner body\r\n"
    assert fetch(raw, view, "1.1.MIME") == b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n"
    assert fetch(raw, view, "1.MIME") == b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n"


# --- header fields -----------------------------------------------------------------------


def test_header_fields_keep_order_folding_and_blank_line() -> None:
    raw, view = load("simple")
    got = fetch(raw, view, "HEADER.FIELDS (CC subject)")
    assert got == (
        b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
        b"cc: minutes@CNRI.Reston.VA.US,\r\n   John Klensin <KLENSIN@MIT.EDU>\r\n\r\n"
    )


def test_header_fields_not() -> None:
    raw, view = load("xdm")
    got = fetch(
        raw, view, "HEADER.FIELDS.NOT (From To Subject Date Message-ID MIME-Version Content-Type)"
    )
    assert got == (
        b"X-MSS-CODECDA: 11488-4^Compte rendu de consultation^LOINC\r\n"
        b"X-MSS-INS: 1234567890123^1.2.250.1.213.1.4.8\r\n\r\n"
    )


def test_header_fields_none_matching_is_only_the_blank_line() -> None:
    raw, view = load("xdm")
    assert fetch(raw, view, "HEADER.FIELDS (X-Absent)") == b"\r\n"


def test_filter_without_blank_line_adds_none() -> None:
    """RFC 3501 §6.4.5: no blank line for a message that has no body and no blank line."""
    header = b"Subject: a\r\nFrom: b@c.d\r\n"
    assert filter_header_fields(header, ["from"], negate=False) == b"From: b@c.d\r\n"
    raw = header
    view = build_view(raw)
    assert fetch(raw, view, "HEADER") == raw
    assert fetch(raw, view, "TEXT") == b""
    assert fetch(raw, view, "HEADER.FIELDS (SUBJECT)") == b"Subject: a\r\n"


def test_filter_matches_names_exactly() -> None:
    header = b"X-MSS-INS: 1\r\nX-MSS-INS-Extra: 2\r\nX-MSS-IN: 3\r\n\r\n"
    assert filter_header_fields(header, ["X-MSS-INS"], negate=False) == b"X-MSS-INS: 1\r\n\r\n"


# --- partial ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "origin", "count"),
    [
        ("", 0, 10),
        ("", 5, None),
        ("TEXT", 3, 7),
        ("1.2.1", 3, 7),
        ("2", 1, 100),
        ("HEADER.FIELDS (From Subject)", 4, 12),
        ("1.2.1", 1000, 5),
        ("2.MIME", 0, 0),
    ],
)
def test_partial_matches_slicing(spec: str, origin: int, count: int | None) -> None:
    raw, view = load("nested")
    whole = fetch(raw, view, spec)
    expected = whole[origin:] if count is None else whole[origin : origin + count]
    assert fetch(raw, view, spec, (origin, count)) == expected


def test_partial_ranges_reads_only_the_slice() -> None:
    _raw, view = load("xdm")
    ranges = section_ranges(view, "2")
    (start, end) = ranges[0]
    assert partial_ranges(ranges, 4, 8) == [(start + 4, start + 12)]
    assert partial_ranges(ranges, end - start, 8) == []
    assert partial_ranges([(0, 4), (10, 20)], 2, 5) == [(2, 4), (10, 13)]
    assert ranges_size(ranges) == 32


async def test_async_reader() -> None:
    raw, view = load("forwarded")

    async def read(start: int, end: int) -> bytes:
        return raw[start:end]

    assert await aread_section(view, "2.1", read) == b"Results attached."
    assert await aread_section(view, "2.1", read, (8, None)) == b"attached."
    assert await aread_section(view, "HEADER.FIELDS (To)", read) == (
        b"To: secretariat@chu-x.mssante.fr\r\n\r\n"
    )
