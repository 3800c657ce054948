"""The decoded text SEARCH BODY/TEXT compare (mail/searchtext.py, RFC 9051 §6.4.4)."""

from __future__ import annotations

import base64

import pytest

from mail.searchtext import body_text, header_text, indexed_text


def _multipart(*parts: str) -> bytes:
    body = "".join(f"--B\r\n{p}\r\n" for p in parts) + "--B--\r\n"
    return ("Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n"
            "\r\n" + body).encode("utf-8", "surrogateescape")


def test_every_text_part_decoded_nested_messages_included() -> None:
    """RFC 2045 §6.7/§6.8 encodings undone, RFC 2046 §4.1.2 charsets converted, text parts
    at any depth, an encapsulated message's header fields decoded (RFC 2047)."""
    inner = ("Subject: =?iso-8859-1?q?R=E9sum=E9?=\r\nContent-Type: text/html; charset=utf-8\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n"
             + base64.b64encode("<p>Tension art\u00e9rielle</p>".encode()).decode())
    raw = _multipart(
        "Content-Type: text/plain; charset=windows-1252\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\nGlyc=E9mie =\r\n=E0 jeun",
        "Content-Type: message/rfc822\r\n\r\n" + inner,
        "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"pixelsecret").decode(),
    )
    text = body_text(raw)
    assert "glycémie à jeun" in text
    assert "subject: résumé" in text
    assert "tension artérielle" in text
    assert "pixelsecret" not in text and "cgl4zwxz" not in text


def test_damaged_and_unknown_encodings_are_best_effort() -> None:
    """Search never fails on a damaged part: base64 with junk decodes what it can, an
    unknown charset is read as UTF-8 (or Windows-1252 when that fails). A part in an unknown
    transfer encoding is not text: RFC 2045 §6.4 treats it as application/octet-stream."""
    raw = _multipart(
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"lisible").decode() + "!!*\r\n=====",
        "Content-Type: text/plain; charset=x-inconnu\r\n\r\nd\u00e9j\u00e0",
        "Content-Type: text/plain; charset=x-inconnu\r\nContent-Transfer-Encoding: x-uue"
        "\r\n\r\nbrut",
    )
    text = body_text(raw)
    assert "lisible" in text and "déjà" in text and "brut" not in text


def test_header_text_and_index_bound() -> None:
    """TEXT matches the header as written and decoded; the index is bounded."""
    assert "compte rendu écho" in header_text(
        b"Subject: =?utf-8?q?Compte_rendu_=C3=A9cho?=\r\n\r\n")
    raw = b"Subject: x\r\n\r\n" + b"mot " * 100
    assert indexed_text(raw, 1000) == body_text(raw)
    assert indexed_text(raw, 100) is None
    assert indexed_text(raw, 0) is None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain; charset=utf-8", ("é" * 40000 + "\r\n").encode()),  # 2 octets a char
        ("text/plain", ("é" * 40000 + "\r\n").encode()),  # unlabeled, valid UTF-8
        ("text/plain", b"\xe9" * 70000 + b"\r\n"),  # unlabeled, not UTF-8: Windows-1252
        ("text/plain; charset=iso-8859-1", b"A\xc9" * 40000 + b"\r\n"),
    ],
    ids=["utf-8", "unlabeled-utf-8", "unlabeled-cp1252", "latin-1"],
)
def test_index_bound_is_exact_for_parts_larger_than_it(content_type: str, body: bytes) -> None:
    """A part over the bound is decoded only until the text passes it (not whole, then
    dropped), with the same answer as decoding everything: the text when it fits, None
    when it is one character longer, on either side of a multi-octet character."""
    head = f"Subject: x\r\nContent-Type: {content_type}\r\n\r\n".encode()
    raw = head + body
    text = body_text(raw)
    n = len(text)
    assert indexed_text(raw, n) == text
    assert indexed_text(raw, n + 1) == text
    assert indexed_text(raw, n - 1) is None
    assert indexed_text(raw, n // 3) is None
    two = _multipart(f"Content-Type: {content_type}\r\n\r\nmot", "Content-Type: text/plain\r\n\r\n"
                     + body.decode("latin-1")[:1000])
    both = body_text(two)
    assert indexed_text(two, len(both)) == both and indexed_text(two, len(both) - 1) is None
