"""Issue 9 item 7: nothing a message says about a patient is stored in clear.

A message sent over real SMTP submission carries a marker in its Subject, its From display
name, an attachment's file name and its body. The body was always encrypted; the Subject,
the From text and the file name also reached ``mssante.db`` in clear (search columns and
the ENVELOPE/BODYSTRUCTURE views). Every file under the data directory — the database, its
WAL while the gateway runs, and everything else — must hold no trace of the marker, while
IMAP FETCH ENVELOPE / BODYSTRUCTURE and SEARCH SUBJECT / FROM still answer from them.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import smtplib
from pathlib import Path
from urllib.parse import quote

from tests.fixtures.gateway import RunningGateway

ASCII = "Qz7DUPONTJEANX"
UTF8 = "Jéançois-Dupønt"
"""Markers: one ASCII (visible as such in every header form), one beyond ASCII."""


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _message(address: str) -> bytes:
    encoded_name = quote(f"{ASCII}-{UTF8}.pdf")
    return (
        f"From: {ASCII} {_encoded_word(UTF8)} <{address}>\r\n"
        f"To: <{address}>\r\n"
        f"Subject: CR patient {ASCII} {_encoded_word(UTF8)}\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
        "Message-ID: <privacy.1@mssante.test>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"Compte rendu de {ASCII} {UTF8}.\r\n"
        "--b1\r\n"
        "Content-Type: application/pdf\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{encoded_name}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n"
        "--b1--\r\n"
    ).encode()


def _needles() -> list[bytes]:
    forms = {ASCII, ASCII.lower(), ASCII.casefold(), UTF8, UTF8.casefold(), UTF8.upper()}
    needles = {f.encode() for f in forms}
    needles |= {json.dumps(f)[1:-1].encode() for f in forms}  # as JSON escapes them
    return sorted(needles)


def _hits(root: Path) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue  # a socket, or a file removed meanwhile
        lowered = data.lower()
        for needle in _needles():
            if needle in data or needle.lower() in lowered:
                found.append(f"{path.relative_to(root)}: {needle!r}")
    return found


def _imap_port(gateway: RunningGateway) -> int:
    for service in gateway.gw.services:
        if service.name == "IMAP":
            return int(service.server.tls_port)  # type: ignore[attr-defined]
    raise AssertionError("the IMAP service is not running")


def _submit(gateway: RunningGateway) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
        client.starttls(context=gateway.client_context())
        client.login(gateway.demo_address, gateway.demo_password)
        client.sendmail(gateway.demo_address, [gateway.demo_address],
                        _message(gateway.demo_address))


def _imap_checks(gateway: RunningGateway) -> None:
    imap = imaplib.IMAP4_SSL("127.0.0.1", _imap_port(gateway),
                             ssl_context=gateway.client_context(), timeout=30)
    try:
        imap.login(gateway.demo_address, gateway.demo_password)
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data == [b"1"], data
        typ, data = imap.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
        assert typ == "OK"
        answer = b"".join(p if isinstance(p, bytes) else b"".join(p) for p in data)
        assert f"CR patient {ASCII} {_encoded_word(UTF8)}".encode() in answer
        assert f'"{ASCII} {_encoded_word(UTF8)}" NIL "demo" "mssante.test"'.encode() in answer
        structure = answer.split(b"BODYSTRUCTURE", 1)[1]
        assert b'"application" "pdf"' in structure.lower(), structure
        assert f"{ASCII}-{quote(UTF8)}.pdf".encode() in structure, structure
        assert imap.search(None, "SUBJECT", ASCII.lower()) == ("OK", [b"1"])
        assert imap.search(None, "FROM", ASCII) == ("OK", [b"1"])
        assert imap.search(None, "SUBJECT", "absent-from-every-subject") == ("OK", [b""])
        imap.literal = UTF8.upper().encode()  # type: ignore[assignment]
        assert imap.search("UTF-8", "SUBJECT") == ("OK", [b"1"])
        imap.literal = UTF8.encode()  # type: ignore[assignment]
        assert imap.search("UTF-8", "FROM") == ("OK", [b"1"])
    finally:
        imap.logout()


async def test_marker_in_headers_and_file_name_is_nowhere_in_the_data_directory(
    gateway: RunningGateway,
) -> None:
    await asyncio.to_thread(_submit, gateway)
    rows = await gateway.inbox_messages(gateway.demo_address)
    assert len(rows) == 1
    await asyncio.to_thread(_imap_checks, gateway)
    data_dir = gateway.settings.data_dir
    assert (data_dir / "mssante.db-wal").exists()
    assert _hits(data_dir) == []
    # After a clean stop (WAL checkpointed into the database file) too.
    await gateway.gw.stop(grace=0)
    assert _hits(data_dir) == []
