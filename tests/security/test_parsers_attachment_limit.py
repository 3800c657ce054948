"""Item 8: the per-attachment size limit counts every part that is not the message's text.

A part used to count only with a file name or an ``attachment`` disposition, so an 11 MiB
PDF without either passed (and Thunderbird shows it as an attachment). Now every leaf that
is not the readable body counts, decided on the same MIME tree and with the same type rules
as BODYSTRUCTURE (:func:`mail.mime.body_text_parts`): inline images, forwarded messages,
parts deep in nested multiparts, parts without Content-Type, text parts after the body, and
whatever lies past the part-count limit. Each is sent through real SMTP submission.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle

pytestmark = pytest.mark.timeout(120)

LIMIT = 64 * 1024
"""A small limit for the variants, so that each message stays small on a loaded machine."""


@pytest.fixture
async def small_limit(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", smtp={"max_attachment_size": LIMIT})
    async with running_gateway(settings) as running:
        yield running


def b64(size: int) -> bytes:
    return base64.encodebytes(b"\x89" * size).replace(b"\n", b"\r\n")


def mime(gw: RunningGateway, to: str, body: bytes) -> bytes:
    return (
        f"From: <{gw.demo_address}>\r\nTo: <{to}>\r\nSubject: limit\r\nMIME-Version: 1.0\r\n"
    ).encode() + body


def submit(gw: RunningGateway, to: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=60) as client:
        client.starttls(context=gw.client_context())
        client.login(gw.demo_address, gw.demo_password)
        client.mail(gw.demo_address)
        client.rcpt(to)
        return client.data(raw)


def refused(part: str, ctype: str, octets: int, limit: str) -> bytes:
    mb = f"{octets / 1048576:.1f}"
    return (f"5.3.4 attachment part {part} ({ctype}) is {mb} MB ({octets} octets) once "
            f"decoded; each attachment may be at most {limit}").encode()


async def test_unnamed_pdf_over_10mb_is_refused(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    size = 11 * 1024 * 1024
    raw = mime(gateway, bob, (
        b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
        b"--zz\r\nContent-Type: text/plain\r\n\r\nvoir PJ\r\n"
        b"--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ) + b64(size) + b"--zz--\r\n")
    code, reply = await asyncio.to_thread(submit, gateway, bob, raw)
    assert (code, reply) == (
        552, refused("2", "application/pdf", size, "10.0 MB (10485760 octets)"))
    assert await gateway.inbox_messages(bob) == []


BIG = LIMIT + 4096

VARIANTS: dict[str, tuple[bytes, str, str]] = {
    "inline image in multipart/related": (
        b"Content-Type: multipart/related; boundary=\"r\"\r\n\r\n"
        b"--r\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:logo\">\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n"
        b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(BIG) + b"--r--\r\n",
        "2", "image/png",
    ),
    "forwarded message/rfc822": (
        b"Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"
        b"--m\r\nContent-Type: text/plain\r\n\r\nci-dessous\r\n"
        b"--m\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: <x@mssante.test>\r\nSubject: fwd\r\n\r\n"
        + b"texte transfere\r\n" * (BIG // 17 + 1) + b"--m--\r\n",
        "2", "message/rfc822",
    ),
    "deep in nested multiparts": (
        b"Content-Type: multipart/mixed; boundary=\"a\"\r\n\r\n"
        b"--a\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        b"--b\r\nContent-Type: multipart/alternative; boundary=\"c\"\r\n\r\n"
        b"--c\r\nContent-Type: text/plain\r\n\r\ntexte\r\n"
        b"--c\r\nContent-Type: text/html\r\n\r\n<p>texte</p>\r\n--c--\r\n"
        b"--b\r\nContent-Type: multipart/mixed; boundary=\"d\"\r\n\r\n"
        b"--d\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(BIG) + b"--d--\r\n"
        b"--b--\r\n--a--\r\n",
        "1.2.1", "application/octet-stream",
    ),
    "part without Content-Type": (
        b"Content-Type: multipart/mixed; boundary=\"n\"\r\n\r\n"
        b"--n\r\nContent-Type: text/plain\r\n\r\nbonjour\r\n"
        b"--n\r\n\r\n" + (b"x" * 76 + b"\r\n") * (BIG // 78 + 1) + b"--n--\r\n",
        "2", "text/plain",
    ),
    "text part after the body": (
        b"Content-Type: multipart/mixed; boundary=\"t\"\r\n\r\n"
        b"--t\r\nContent-Type: text/plain\r\n\r\nbonjour\r\n"
        b"--t\r\nContent-Type: text/csv\r\n\r\n" + b"1;2;3;4\r\n" * (BIG // 9 + 1)
        + b"--t--\r\n",
        "2", "text/csv",
    ),
    "whole message is a pdf": (
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(BIG),
        "1", "application/pdf",
    ),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
async def test_every_non_body_part_counts(small_limit: RunningGateway, name: str) -> None:
    gw = small_limit
    bob, _ = await gw.add_mailbox("bob")
    body, part, ctype = VARIANTS[name]
    code, reply = await asyncio.to_thread(submit, gw, bob, mime(gw, bob, body))
    assert code == 552, reply
    assert reply.startswith(f"5.3.4 attachment part {part} ({ctype}) is ".encode()), reply
    assert reply.endswith(b"each attachment may be at most 0.1 MB (65536 octets)"), reply
    assert await gw.inbox_messages(bob) == []


async def test_parts_past_the_part_limit_count(small_limit: RunningGateway) -> None:
    """Past 10,000 parts the tree stops; what follows still counts, as one attachment."""
    gw = small_limit
    bob, _ = await gw.add_mailbox("bob")
    tiny = b"--p\r\nContent-Type: text/plain\r\n\r\n.\r\n" * 10_000
    body = (b"Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n" + tiny
            + b"--p\r\nContent-Type: application/pdf\r\n\r\n"
            + (b"y" * 76 + b"\r\n") * (BIG // 78 + 1) + b"--p--\r\n")
    code, reply = await asyncio.to_thread(submit, gw, bob, mime(gw, bob, body))
    assert code == 552, reply
    assert reply.startswith(b"5.3.4 attachment part 10001 (application/octet-stream) is "), reply


async def test_large_body_text_is_not_an_attachment(small_limit: RunningGateway) -> None:
    """The readable text (plain and HTML alternatives, the root of a related) is the body."""
    gw = small_limit
    bob, _ = await gw.add_mailbox("bob")
    text = b"ligne de compte rendu\r\n" * (BIG // 23 + 1)
    body = (
        b"Content-Type: multipart/mixed; boundary=\"a\"\r\n\r\n"
        b"--a\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\n" + text
        + b"--b\r\nContent-Type: multipart/related; boundary=\"c\"\r\n\r\n"
        b"--c\r\nContent-Type: text/html\r\n\r\n" + text + b"--c--\r\n--b--\r\n"
        b"--a\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(1000) + b"--a--\r\n"
    )
    code, reply = await asyncio.to_thread(submit, gw, bob, mime(gw, bob, body))
    assert code == 250, reply
    assert len(await gw.inbox_messages(bob)) == 1


async def test_relay_applies_the_same_rule(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    """Another operator's message gets the same decision as a submitted one."""
    settings = gateway_settings(tmp_path / "gw", tls=dev_pki.tls_overrides(with_crl=True),
                                smtp={"max_attachment_size": LIMIT})
    sender = "secretariat@hopital-b.mssante.test"
    async with running_gateway(settings) as gw:
        bob, _ = await gw.add_mailbox("bob")
        body, part, ctype = VARIANTS["inline image in multipart/related"]
        raw = f"From: <{sender}>\r\nTo: <{bob}>\r\nMIME-Version: 1.0\r\n".encode() + body

        def run() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", gw.relay_port, timeout=60,
                              local_hostname="mx.hopital-b") as client:
                client.starttls(context=dev_pki.client_context(dev_pki.peer_server,
                                                               with_crl=True))
                client.ehlo()
                client.mail(sender)
                client.rcpt(bob)
                return client.data(raw)

        code, reply = await asyncio.to_thread(run)
        assert code == 552, reply
        assert reply.startswith(f"5.3.4 attachment part {part} ({ctype}) is ".encode()), reply
        assert await gw.inbox_messages(bob) == []
