"""Two gateways on loopback, each with its own domain, relaying to each other.

A user of A submits to a user of B (A's ``[transport]`` points at B's relay port); the
message lands in B's INBOX; B's user replies and the reply lands in A's INBOX. Both sides
keep their proofs. Both gateways use the development PKI's CA as trust anchor.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiosmtplib

from tests.fixtures.gateway import RunningGateway, free_port, gateway_settings, running_gateway
from tests.fixtures.pki import DevPkiBundle
from trustspace.pki import ensure_dev_pki

A_DOMAIN = "mssante.test"
B_DOMAIN = "hopital-b.mssante.test"


def _settings(tmp: Path, dev_pki: DevPkiBundle, domain: str, other: str, own_port: int,
              other_port: int) -> Any:
    """Each side presents a certificate naming its own domain: the relay refuses a peer whose
    certificate names only the receiving operator's domains, and the transport names only an
    address, so each checks the other's certificate against the destination domain."""
    tls = dev_pki.tls_overrides()
    if domain == B_DOMAIN:
        tls |= {"cert_file": str(dev_pki.peer_server.chain_file),
                "key_file": str(dev_pki.peer_server.key_file)}
    return gateway_settings(
        tmp, trusted=(other,), tls=tls,
        gateway={"domains": (domain,)},
        smtp={"relay_port": own_port},
        directory={"enabled": False},
        transport={other: f"127.0.0.1:{other_port}"},
    )


async def _submit(gw: RunningGateway, login: str, password: str, to: str, subject: str) -> str:
    msgid = f"<{subject}@{gw.settings.primary_domain}>"
    raw = (f"From: {login}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
           f"X-MSS-CODECDA: 11502-2\r\n\r\nbonjour\r\n")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    await aiosmtplib.send(raw, sender=login, recipients=[to], hostname="127.0.0.1",
                          port=gw.submission_port, start_tls=True, tls_context=ctx,
                          username=login, password=password)
    return msgid


async def _wait_inbox(gw: RunningGateway, address: str, subject: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            for row in await gw.inbox_messages(address):
                if row["subject"] == subject:
                    return row
            await asyncio.sleep(0.1)


async def _wait_proof(gw: RunningGateway, ref: str, kind: str) -> None:
    """The sender records "relayed" once the peer's 250 reached it, which may be a moment
    after the peer filed the message: wait for it rather than race it."""
    for _ in range(150):
        if kind in [p["kind"] for p in await gw.proofs_for(ref)]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {kind} proof for {ref} within 15 s")


async def test_two_gateways_exchange_mail_with_proofs_on_both_sides(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    port_a, port_b = free_port(), free_port()
    sa = _settings(tmp_path / "a", dev_pki, A_DOMAIN, B_DOMAIN, port_a, port_b)
    sb = _settings(tmp_path / "b", dev_pki, B_DOMAIN, A_DOMAIN, port_b, port_a)
    async with running_gateway(sa) as a, running_gateway(sb) as b:
        msgid = await _submit(a, a.demo_address, a.demo_password, b.demo_address, "aller")
        row = await _wait_inbox(b, b.demo_address, "aller")
        assert b"X-MSS-CODECDA: 11502-2" in await b.raw_message(row)
        await _wait_proof(a, msgid, "relayed")
        kinds_a = [p["kind"] for p in await a.proofs_for(msgid)]
        assert "submitted" in kinds_a
        relayed = [p for p in await a.proofs_for(msgid) if p["kind"] == "relayed"][0]
        assert "TLSv1" in relayed["details"]
        kinds_b = [p["kind"] for p in await b.proofs_for(msgid)]
        assert "received" in kinds_b and "delivered" in kinds_b

        reply = await _submit(b, b.demo_address, b.demo_password, a.demo_address, "retour")
        await _wait_inbox(a, a.demo_address, "retour")
        await _wait_proof(b, reply, "relayed")
        assert "delivered" in [p["kind"] for p in await a.proofs_for(reply)]
        assert all(r["state"] == "sent" for r in await a.queue_rows())


async def test_two_gateways_with_their_own_development_cas(tmp_path: Path) -> None:
    """The README's two-operator path with two separate development PKIs: each gateway lists
    the other's CA beside its own in [tls] anchors and routes by address; only its own CA
    has a CRL (the embedded one), and the other's peers are still accepted (leaf mode)."""
    port_a, port_b = free_port(), free_port()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"

    def settings(own: Path, domain: str, other: str, other_dir: Path, own_port: int,
                 other_port: int) -> Any:
        return gateway_settings(
            own, trusted=(other,), gateway={"domains": (domain,)},
            smtp={"relay_port": own_port}, directory={"enabled": False},
            tls={"anchors": (str(own / "pki" / "ca.pem"), str(other_dir / "pki" / "ca.pem"))},
            transport={other: f"127.0.0.1:{other_port}"},
        )

    sa = settings(a_dir, A_DOMAIN, B_DOMAIN, b_dir, port_a, port_b)
    sb = settings(b_dir, B_DOMAIN, A_DOMAIN, a_dir, port_b, port_a)
    for s in (sa, sb):  # each CA must exist before the other gateway loads it as an anchor
        await asyncio.to_thread(ensure_dev_pki, s)
    assert (a_dir / "pki" / "ca.pem").read_bytes() != (b_dir / "pki" / "ca.pem").read_bytes()
    async with running_gateway(sa) as a, running_gateway(sb) as b:
        msgid = await _submit(a, a.demo_address, a.demo_password, b.demo_address, "aller")
        await _wait_inbox(b, b.demo_address, "aller")
        await _wait_proof(a, msgid, "relayed")
        reply = await _submit(b, b.demo_address, b.demo_password, a.demo_address, "retour")
        await _wait_inbox(a, a.demo_address, "retour")
        await _wait_proof(b, reply, "relayed")
