"""Item 14: one broken MIME parameter must not make a message undeliverable.

Broken mailers send RFC 2231 parameters whose charset is not a charset (``\\xff``, a NUL) or
whose section number is a Unicode digit (``filename*²=``). The view builder must accept any
bytes and fall back to the value as written; submission and IMAP APPEND must store the
message, never answer with an exception's text.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mail.views import build_view
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle

pytestmark = pytest.mark.timeout(90)

BROKEN_DISPOSITIONS = {
    "charset-ff": b"Content-Disposition: attachment; filename*=\xff''x.pdf",
    "charset-nul": b"Content-Disposition: attachment; filename*=a\x00b''x.pdf",
    "unicode-section": "Content-Disposition: attachment; filename*²=z.pdf".encode(),
    "unicode-section-star": "Content-Disposition: attachment; filename*0*=utf-8''a; "
                            "filename*¹*=b.pdf".encode(),
}
BROKEN_TYPES = {
    "type-name-ff": b"Content-Type: application/pdf; name*=\xff''w.pdf",
    "type-name-nul": b"Content-Type: application/pdf; name*=\x00''y.pdf",
    "type-name-sections-nul": b"Content-Type: application/pdf; name*0*=\x00''v; name*1=.pdf",
}
BROKEN = {**BROKEN_DISPOSITIONS, **BROKEN_TYPES}


def message(sender: str, to: str, field: bytes) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: broken parameter\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nvoir PJ\r\n--b\r\n"
    ).encode() + (
        field + b"\r\n" if field.startswith(b"Content-Type") else
        b"Content-Type: application/pdf\r\n" + field + b"\r\n"
    ) + b"\r\n%PDF-1.4\r\n--b--\r\n"


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_build_view_accepts_broken_rfc2231_parameters(name: str) -> None:
    view = build_view(message("a@mssante.test", "b@mssante.test", BROKEN[name]))
    [attachment] = view.search.attachments
    assert attachment.part == "2" and attachment.content_type == "application/pdf"
    # the file name falls back to the value as written (never an exception)
    assert attachment.filename is None or isinstance(attachment.filename, str)


def test_broken_charset_falls_back_to_the_raw_value() -> None:
    view = build_view(message("a@mssante.test", "b@mssante.test", BROKEN["charset-ff"]))
    assert view.search.attachments[0].filename == "\xff''x.pdf"


async def test_submission_stores_messages_with_broken_parameters(
    gateway: RunningGateway,
) -> None:
    bob, _ = await gateway.add_mailbox("bob")

    def run() -> list[tuple[int, bytes]]:
        replies = []
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.starttls(context=gateway.client_context())
            client.login(gateway.demo_address, gateway.demo_password)
            for name in sorted(BROKEN):
                client.mail(gateway.demo_address)
                client.rcpt(bob)
                replies.append(client.data(message(gateway.demo_address, bob, BROKEN[name])))
        return replies

    replies = await asyncio.to_thread(run)
    assert [code for code, _ in replies] == [250] * len(BROKEN), replies
    assert len(await gateway.inbox_messages(bob)) == len(BROKEN)


def _imap_service(gateway: RunningGateway) -> object:
    for service in gateway.gw.services:
        if service.name == "IMAP":
            return service
    raise AssertionError("the IMAP service is not running")


async def test_imap_append_stores_messages_with_broken_parameters(
    gateway: RunningGateway,
) -> None:
    server = _imap_service(gateway).server  # type: ignore[attr-defined]

    def run() -> list[tuple[str, list[bytes]]]:
        answers = []
        with imaplib.IMAP4_SSL("127.0.0.1", server.tls_port,
                               ssl_context=gateway.client_context()) as client:
            client.login(gateway.demo_address, gateway.demo_password)
            for name in sorted(BROKEN):
                if b"\x00" in BROKEN[name]:
                    continue  # a NUL needs literal8 in IMAP (RFC 3516), refused in a literal
                raw = message(gateway.demo_address, gateway.demo_address, BROKEN[name])
                answers.append(client.append("INBOX", None, None, raw))
            client.select("INBOX")
            answers.append(client.fetch("1:*", "(BODYSTRUCTURE)"))
        return answers

    answers = await asyncio.to_thread(run)
    appended = [n for n in BROKEN if b"\x00" not in BROKEN[n]]
    assert [status for status, _ in answers] == ["OK"] * (len(appended) + 1), answers


# Found by the fuzz target tests/fuzz mime_views: an encoded word whose charset holds an
# 8-bit octet made email.header raise CharsetError (not a LookupError) out of build_view.
ENCODED_WORDS = [
    "Subject: =?ut\u00e6-8?q?compte_rendu?=".encode(),
    "Subject: =?io\u00b5s-8859-1?q?x?=".encode(),
    b"Subject: =?\xff?b?eA==?=",
    "From: =?ut\u00e6-8?q?Dr_A?= <a@mssante.test>".encode(),
]


@pytest.mark.parametrize("field", ENCODED_WORDS)
def test_build_view_accepts_encoded_words_with_broken_charsets(field: bytes) -> None:
    raw = field + b"\r\nTo: <b@mssante.test>\r\n\r\nbody\r\n"
    view = build_view(raw)
    assert view.size == len(raw)


async def test_submission_stores_a_subject_with_a_broken_charset(
    gateway: RunningGateway,
) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    raw = (f"From: <{gateway.demo_address}>\r\nTo: <{bob}>\r\n").encode() + ENCODED_WORDS[0] \
        + b"\r\n\r\nbonjour\r\n"

    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.starttls(context=gateway.client_context())
            client.login(gateway.demo_address, gateway.demo_password)
            client.mail(gateway.demo_address)
            client.rcpt(bob)
            return client.data(raw)

    code, reply = await asyncio.to_thread(run)
    assert code == 250, reply


@pytest.fixture
async def relay_gw(tmp_path: Path, dev_pki: DevPkiBundle) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", tls=dev_pki.tls_overrides(with_crl=True))
    async with running_gateway(settings) as running:
        yield running


async def test_relay_stores_messages_with_broken_parameters(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    """Another operator's message with such a header is delivered, not refused."""
    bob, _ = await relay_gw.add_mailbox("bob")
    sender = "secretariat@hopital-b.mssante.test"
    fields = [*BROKEN.values(), ENCODED_WORDS[0]]

    def run() -> list[tuple[int, bytes]]:
        replies = []
        with smtplib.SMTP("127.0.0.1", relay_gw.relay_port, timeout=30,
                          local_hostname="mx.hopital-b") as client:
            client.starttls(context=dev_pki.client_context(dev_pki.peer_server, with_crl=True))
            client.ehlo()
            for field in fields:
                client.mail(sender)
                client.rcpt(bob)
                replies.append(client.data(message(sender, bob, field)))
        return replies

    replies = await asyncio.to_thread(run)
    assert [code for code, _ in replies] == [250] * len(fields), replies
    assert len(await relay_gw.inbox_messages(bob)) == len(fields)
