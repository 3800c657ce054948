"""The operator relay (port 25) of the real gateway: mutual TLS, trust space, local mailboxes.

The gateway uses the shared development PKI with its CRL configured, so the peers of the
refusal rows (unknown CA, expired, revoked) are real certificates verified by OpenSSL.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle
from trustspace.pki import IssuedFiles

pytestmark = pytest.mark.timeout(60)

PEER_SENDER = "secretariat@hopital-b.mssante.test"


@pytest.fixture
async def relay_gw(tmp_path: Path, dev_pki: DevPkiBundle) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", tls=dev_pki.tls_overrides(with_crl=True))
    async with running_gateway(settings) as running:
        yield running


def message(to: str, subject: str) -> bytes:
    return (
        f"From: <{PEER_SENDER}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@hopital-b.mssante.test>\r\n"
        "Date: Mon, 18 Mar 2024 10:00:00 +0100\r\n\r\nResultats joints.\r\n"
    ).encode()


def relay_session(
    gw: RunningGateway, pki: DevPkiBundle, identity: IssuedFiles | None
) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gw.relay_port, timeout=30, local_hostname="mx.hopital-b")
    client.starttls(context=pki.client_context(identity, with_crl=True))
    client.ehlo()
    return client


def transaction(gw: RunningGateway, pki: DevPkiBundle, identity: IssuedFiles | None,
                sender: str, rcpt: str) -> list[tuple[int, bytes]]:
    with relay_session(gw, pki, identity) as client:
        replies = [client.mail(sender)]
        if replies[0][0] == 250:
            replies.append(client.rcpt(rcpt))
        return replies


async def test_relay_delivers_with_client_certificate(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    bob, _ = await relay_gw.add_mailbox("bob")
    original = message(bob, "relay-1")

    def run() -> dict[str, tuple[int, bytes]]:
        with relay_session(relay_gw, dev_pki, dev_pki.peer_server) as client:
            assert not client.has_extn("auth")
            return client.sendmail(PEER_SENDER, [bob], original)

    assert await asyncio.to_thread(run) == {}
    [row] = await relay_gw.inbox_messages(bob)
    stored = await relay_gw.raw_message(row)
    assert stored.endswith(original)
    added = stored[: -len(original)]
    assert added.startswith(b"Received: from mx.hopital-b (localhost [127.0.0.1])")
    assert re.search(rb"\(using TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\)\)", added)
    fingerprint = dev_pki.peer_server.fingerprint
    assert f'sha256 {fingerprint} verified OK)'.encode() in added
    assert b"CN=hopital-b.mssante.test" in added
    assert b"with ESMTPS id " in added
    assert b"Message-ID" not in added  # only submission adds missing fields
    proofs = await relay_gw.proofs_for("<relay-1@hopital-b.mssante.test>")
    assert [p["kind"] for p in proofs] == ["received", "delivered"]
    assert fingerprint in proofs[0]["details"]
    assert "hopital-b.mssante.test" in proofs[0]["actor"]
    assert '"client_ip":"127.0.0.1"' in proofs[0]["details"]


async def test_swaks_relay_with_client_certificate(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    bob, _ = await relay_gw.add_mailbox("bob")
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--server", "127.0.0.1", "--port", str(relay_gw.relay_port), "--tls",
        "--tls-verify", "--tls-ca-path", str(dev_pki.ca_file),
        "--tls-cert", str(dev_pki.peer_server.cert_file),
        "--tls-key", str(dev_pki.peer_server.key_file),
        "--from", PEER_SENDER, "--to", bob, "--header", "Subject: swaks relay",
        "--header", f"From: <{PEER_SENDER}>", "--body", "via swaks",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    [row] = await relay_gw.inbox_messages(bob)
    assert row["subject"] == "swaks relay"


async def test_plaintext_mail_is_refused(relay_gw: RunningGateway) -> None:
    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", relay_gw.relay_port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            return client.mail(PEER_SENDER)

    assert await asyncio.to_thread(run) == (
        530, b"5.7.0 Must issue a STARTTLS command first")


async def test_missing_client_certificate_is_refused(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    bob, _ = await relay_gw.add_mailbox("bob")
    replies = await asyncio.to_thread(transaction, relay_gw, dev_pki, None, PEER_SENDER, bob)
    assert replies == [(530, b"5.7.0 a client certificate of the health PKI is required to "
                             b"relay mail between MSSante operators")]


@pytest.mark.parametrize("which", ["unknown_server", "expired"])
async def test_untrusted_client_certificate_fails_handshake(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle, which: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OpenSSL refuses these during the handshake: the peer never reaches MAIL FROM."""
    bob, _ = await relay_gw.add_mailbox("bob")
    identity: IssuedFiles = getattr(dev_pki, which)
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        await asyncio.to_thread(transaction, relay_gw, dev_pki, identity, PEER_SENDER, bob)
    assert await relay_gw.inbox_messages(bob) == []
    expected = {"unknown_server": "unable to get local issuer certificate",
                "expired": "certificate has expired"}[which]
    for _ in range(20):
        if expected in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert expected in caplog.text


async def test_revoked_client_certificate_refused_at_mail(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    """Revocation is checked after the handshake (CRLs reloaded while running): the peer
    is told in SMTP which certificate was revoked and when."""
    bob, _ = await relay_gw.add_mailbox("bob")
    replies = await asyncio.to_thread(
        transaction, relay_gw, dev_pki, dev_pki.revoked, PEER_SENDER, bob)
    assert len(replies) == 1 and replies[0][0] == 550, replies
    text = replies[0][1]
    assert text.startswith(b"5.7.1 Relay refused: the certificate (serial "), text
    assert b"was revoked on" in text
    assert await relay_gw.inbox_messages(bob) == []


async def test_sender_outside_trust_space_is_refused(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    replies = await asyncio.to_thread(
        transaction, relay_gw, dev_pki, dev_pki.peer_server, "spam@evil.example",
        "demo@mssante.test")
    assert replies == [(550, b"5.7.1 evil.example is not in the MSSante trust space")]


async def test_non_local_recipient_is_relay_denied(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    replies = await asyncio.to_thread(
        transaction, relay_gw, dev_pki, dev_pki.peer_server, PEER_SENDER,
        "dr@ch-exemple.mssante.fr")
    assert replies[1] == (
        550, b"5.7.1 relay denied: ch-exemple.mssante.fr is not a domain of this operator")


async def test_unknown_and_suspended_mailboxes_are_refused(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    bob, _ = await relay_gw.add_mailbox("bob")
    await relay_gw.set_status(bob, "suspended")
    unknown = await asyncio.to_thread(
        transaction, relay_gw, dev_pki, dev_pki.peer_server, PEER_SENDER, "nobody@mssante.test")
    assert unknown[1] == (550, b"5.1.1 mailbox nobody@mssante.test does not exist here")
    suspended = await asyncio.to_thread(
        transaction, relay_gw, dev_pki, dev_pki.peer_server, PEER_SENDER, bob)
    assert suspended[1] == (
        550, f"5.2.1 mailbox {bob} is suspended and does not accept mail".encode())


async def test_auth_is_not_offered_on_relay(
    relay_gw: RunningGateway, dev_pki: DevPkiBundle
) -> None:
    def run() -> tuple[int, bytes]:
        with relay_session(relay_gw, dev_pki, dev_pki.peer_server) as client:
            return client.docmd("AUTH", "PLAIN AGFAYg==")

    code, reply = await asyncio.to_thread(run)
    assert code == 502 and reply.startswith(b"5.5.1 AUTH is not offered on the relay")
