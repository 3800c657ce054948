"""Only an operator's server certificate may relay (issue 9, item 1).

Every certificate here chains to the gateway's trust anchor and passes the TLS handshake;
the relay must still refuse those that are not the server certificate of an operator of the
trust space: a professional's CPS certificate, an applicative (organisation) certificate, a
server certificate for a domain outside the trust space. Decided by certificate policy and
key usage, never by the shape of the commonName.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.pki import DevPkiBundle
from tests.security.relaycert_support import (
    PEER_SENDER,
    message,
    refused_5_7_1,
    relay,
    relay_gateway,
)
from trustspace.pki import issue_certificate

pytestmark = pytest.mark.timeout(90)


async def test_cps_certificate_cannot_relay(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    async with relay_gateway(tmp_path, dev_pki) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.cps, PEER_SENDER, bob, message(PEER_SENDER, bob, "cps"))
        refused_5_7_1(out.mail, "personal certificate", "server certificate of an MSSante operator")
        assert await gw.inbox_messages(bob) == []


async def test_applicative_certificate_cannot_relay(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.app, PEER_SENDER, bob, message(PEER_SENDER, bob, "app"))
        refused_5_7_1(out.mail, "applicative", "server certificate of an MSSante operator")
        assert await gw.inbox_messages(bob) == []


async def test_server_certificate_outside_trust_space_cannot_relay(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    evil = await asyncio.to_thread(
        issue_certificate, dev_pki.pki, "server", domain="evil.example",
        extra_names=("localhost", "127.0.0.1"), out_dir=tmp_path / "evil",
    )
    async with relay_gateway(tmp_path, dev_pki) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, evil, PEER_SENDER, bob, message(PEER_SENDER, bob, "evil"))
        refused_5_7_1(out.mail, "evil.example", "trust space")
        assert await gw.inbox_messages(bob) == []


async def test_server_certificate_naming_only_our_domain_cannot_relay(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    """A certificate for this operator's own domain is not another operator's."""
    ours = await asyncio.to_thread(
        issue_certificate, dev_pki.pki, "server", domain="mssante.test",
        out_dir=tmp_path / "ours",
    )
    async with relay_gateway(tmp_path, dev_pki) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, ours, PEER_SENDER, bob, message(PEER_SENDER, bob, "ours"))
        refused_5_7_1(out.mail, "mssante.test")


async def test_trust_space_operator_server_certificate_relays(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, PEER_SENDER, bob,
            message(PEER_SENDER, bob, "operator"))
        assert out.mail[0] == 250 and out.rcpt is not None and out.rcpt[0] == 250
        assert out.data is not None and out.data[0] == 250, out
        [row] = await gw.inbox_messages(bob)
        assert row["subject"] == "operator"
