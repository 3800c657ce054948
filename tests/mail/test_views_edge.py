"""Malformed and limit cases of the view builder, and the 10 MB attachment."""

from __future__ import annotations

import base64
import os
import time

import pytest

from mail.imapstring import astring, nstring
from mail.mime import MAX_DEPTH
from mail.sections import read_section
from mail.views import MessageView, ViewFormatError, build_view

H = b"From: a@b.c\r\nSubject: t\r\n"


def section(raw: bytes, spec: str) -> bytes:
    return read_section(build_view(raw), spec, lambda s, e: raw[s:e])


def test_imap_string_rules() -> None:
    assert nstring(None) == "NIL"
    assert astring("") == '""'
    assert astring('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert astring("é") == "{2}\r\né"
    assert astring("a\rb") == "{3}\r\na\rb"


def test_unterminated_multipart_ends_at_message_end() -> None:
    raw = H + (
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\none\r\n--x\r\n\r\ntwo\r\n"
    )
    view = build_view(raw)
    assert section(raw, "1") == b"one"
    assert section(raw, "2") == b"two\r\n"
    assert view.body == (
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0)'
        '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1) "mixed")'
    )


def test_multipart_without_any_delimiter_has_one_empty_part() -> None:
    raw = H + b"Content-Type: multipart/mixed; boundary=x\r\n\r\nno parts at all\r\n"
    view = build_view(raw)
    assert view.body == '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")'
    assert section(raw, "1") == b""


def test_multipart_without_boundary_is_text() -> None:
    raw = H + b"Content-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n"
    view = build_view(raw)
    assert view.body == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 2)'
    assert section(raw, "1") == b"--x\r\nbody\r\n"


def test_boundary_prefix_and_transport_padding() -> None:
    """``--abc`` must not match inside ``--abcd``; spaces may follow a delimiter."""
    raw = (
        H + b'Content-Type: multipart/mixed; boundary="abc"\r\n\r\n'
        b"--abc  \r\n\r\nfirst\r\n--abcd\r\nstill first\r\n"
        b"x--abc\r\n--abc\t\r\n\r\nsecond\r\n--abc-- \r\nepilogue\r\n"
    )
    assert section(raw, "1") == b"first\r\n--abcd\r\nstill first\r\nx--abc"
    assert section(raw, "2") == b"second"
    assert section(raw, "3") == b""


def test_part_without_header_and_empty_part() -> None:
    raw = H + (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nno header\r\n--b\r\n--b--\r\n"
    )
    assert section(raw, "1.MIME") == b"\r\n"
    assert section(raw, "1") == b"no header"
    assert section(raw, "2") == b""
    assert section(raw, "2.MIME") == b""


def test_digest_parts_default_to_message_rfc822() -> None:
    """RFC 2046 §5.1.5: in multipart/digest a part without Content-Type is a message."""
    raw = (
        H + b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
        b"Subject: inner\r\n\r\ntext\r\n--d--\r\n"
    )
    view = build_view(raw)
    assert view.body.startswith('(("message" "rfc822" NIL NIL NIL "7bit" 22 (NIL "inner"')
    assert section(raw, "1.HEADER") == b"Subject: inner\r\n\r\n"
    assert section(raw, "1.TEXT") == b"text"


def test_base64_message_rfc822_is_an_opaque_part() -> None:
    """An encoded message/rfc822 cannot be read in place: no envelope, no inner parts, so
    it is a basic body (RFC 3501 §9 body-type-msg needs them; RFC 2046 §5.2.1 forbids the
    encoding)."""
    raw = H + (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"U3ViamVjdDogeA==\r\n"
    )
    view = build_view(raw)
    assert view.body == '("application" "octet-stream" NIL NIL NIL "base64" 18)'
    assert section(raw, "1.HEADER") == b""


def test_invalid_content_type_falls_back_to_text_plain() -> None:
    raw = H + b"Content-Type: garbage\r\n\r\nx"
    assert build_view(raw).body == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)'


def test_text_without_charset_gets_us_ascii_appended() -> None:
    raw = H + b"Content-Type: text/html; format=flowed\r\n\r\n<p>"
    assert build_view(raw).body == (
        '("text" "html" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 3 0)'
    )


def test_deep_nesting_is_bounded() -> None:
    depth = MAX_DEPTH + 20
    head = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(depth)
    )
    raw = H + b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + head + b"deep\r\n"
    view = build_view(raw)
    assert view.bodystructure.count("(") < 10 * depth
    assert MessageView.from_json(view.to_json()) == view


def test_no_blank_line_header_only() -> None:
    raw = b"Subject: only a header"
    view = build_view(raw)
    assert view.text_start == len(raw)
    assert view.body == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'


def test_empty_message() -> None:
    view = build_view(b"")
    assert view.envelope == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert view.size == 0


def test_from_json_refuses_other_versions() -> None:
    text = build_view(H + b"\r\nx").to_json().replace('"v":1', '"v":99', 1)
    with pytest.raises(ViewFormatError, match="format version 99, expected 1"):
        MessageView.from_json(text)
    with pytest.raises(ViewFormatError, match="not valid JSON"):
        MessageView.from_json("{")


def test_non_utf8_header_bytes_round_trip() -> None:
    raw = b"Subject: caf\xe9\r\nFrom: Andr\xe9 <a@b.c>\r\n\r\nx"
    view = MessageView.from_json(build_view(raw).to_json())
    assert view.search.subject == "café"
    assert "{4}\r\ncaf\udce9" in view.envelope
    assert view.envelope.encode("utf-8", "surrogateescape").count(b"{4}\r\ncaf\xe9") == 1


def test_ten_megabyte_attachment_is_fast() -> None:
    """A 10 MB base64 attachment: boundary scan and counts in C, well under a second."""
    payload = os.urandom(10 * 1024 * 1024)
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = (
        H + b'Content-Type: multipart/mixed; boundary="=_big"\r\n\r\n'
        b"--=_big\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
        b"--=_big\r\nContent-Type: application/zip; name=IHE_XDM.ZIP\r\n"
        b"Content-Disposition: attachment; filename=IHE_XDM.ZIP\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--=_big--\r\n"
    )
    # CPU time of this process: what the build costs, whatever else the machine runs (the
    # suite runs in parallel workers beside other work).
    started = time.process_time()
    view = build_view(raw)
    elapsed = time.process_time() - started
    attachment = view.search.attachments[0]
    assert attachment.filename == "IHE_XDM.ZIP"
    assert attachment.decoded_size == len(payload)
    assert view.parts["2"].body_end - view.parts["2"].body_start == len(encoded) - 2
    assert elapsed < 0.5, f"building the view took {elapsed:.3f}s of CPU"
