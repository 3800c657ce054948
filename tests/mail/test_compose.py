"""The message the webmail builds: fields a form cannot inject into, a display name with a
comma kept as one author, attachments base64-encoded chunk by chunk and read back byte for
byte, a forwarded message attached whole (never base64), Bcc only in drafts."""

from __future__ import annotations

import os
from email import message_from_bytes, policy

from mail.compose import Letter, Part, build_message
from mail.views import build_view


def parse(raw: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(raw, policy=policy.default)


def test_fields_cannot_be_injected() -> None:
    raw = build_message(Letter(author="a@mssante.test", author_name="Dupont, Hélène",
                               to=["b@mssante.test"], subject="x\r\nBcc: evil@x.test",
                               in_reply_to="<m@x>\nX-Evil: 1", draft_bcc=()), "h")
    msg = parse(raw)
    assert "X-Evil" not in msg and "Bcc" not in msg
    assert [a.display_name for a in msg["From"].addresses] == ["Dupont, Hélène"]
    assert msg["Subject"] == "x  Bcc: evil@x.test"


def test_attachments_round_trip_and_forward() -> None:
    data = os.urandom(1_000_003)
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    original = build_message(Letter(author="c@mssante.test", to=["a@mssante.test"],
                                    subject="Original", body="texte"), "h")
    raw = build_message(Letter(
        author="a@mssante.test", to=["b@mssante.test"], subject="Pièces",
        body="Voir pièces jointes.", draft_bcc=["secret@mssante.test"],
        attachments=[Part("scanner é.bin", "application/octet-stream", lambda: chunks),
                     Part("Original.eml", "message/rfc822", lambda: [original]),
                     Part("bad.bin", "not a type", lambda: [b"x"])]), "h")
    msg = parse(raw)
    assert str(msg["Bcc"]) == "secret@mssante.test"  # a draft keeps it
    first, forwarded, odd = list(msg.iter_attachments())
    assert first.get_filename() == "scanner é.bin" and first.get_content() == data
    assert forwarded.get_content_type() == "message/rfc822"
    assert forwarded["Content-Transfer-Encoding"] == "8bit"
    assert forwarded.get_content()["Subject"] == "Original"
    assert odd.get_content_type() == "application/octet-stream"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    view = build_view(raw)  # what the pipeline and IMAP will serve
    assert view.size == len(raw)
