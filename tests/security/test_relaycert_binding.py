"""A relaying operator is tied to the sender's domain (issue 9, item 2).

With another operator's valid certificate, nobody may write as one of *our* users, neither
in the envelope nor in ``From:`` (``550 5.7.1``, whatever the binding mode). Beyond that,
``[smtp] relay_sender_binding`` decides: ``none`` (envelope sender in the trust space, the
MSSanté rule, From: free), ``trust-space`` (envelope and From: domains in the trust space),
``certificate`` (and named by the peer certificate or mapped to it in ``[relay_peers]``).
The ``received`` proof records the peer fingerprint and the binding decision.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.pki import DevPkiBundle
from tests.security.relaycert_support import (
    PEER_DOMAIN,
    PEER_SENDER,
    message,
    refused_5_7_1,
    relay,
    relay_gateway,
)

pytestmark = pytest.mark.timeout(120)

ALICE = "alice@mssante.test"
OTHER_OPERATOR = "dr.durand@ch-exemple.mssante.fr"


def _binding(mode: str, peers: dict[str, Any] | None = None) -> dict[str, Any]:
    sections: dict[str, Any] = {"smtp": {"relay_sender_binding": mode}}
    if peers is not None:
        sections["relay_peers"] = peers
    return sections


@pytest.mark.parametrize("mode", ["none", "trust-space", "certificate"])
async def test_our_domain_is_refused_as_envelope_sender(
    tmp_path: Path, dev_pki: DevPkiBundle, mode: str
) -> None:
    async with relay_gateway(tmp_path, dev_pki, **_binding(mode)) as gw:
        bob, _ = await gw.add_mailbox("bob")
        await gw.add_mailbox("alice")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, ALICE, bob, message(ALICE, bob, "forged"))
        refused_5_7_1(out.mail, "mssante.test", "domain of this operator")
        assert await gw.inbox_messages(bob) == []


@pytest.mark.parametrize("mode", ["none", "trust-space", "certificate"])
async def test_our_domain_is_refused_in_from_header(
    tmp_path: Path, dev_pki: DevPkiBundle, mode: str
) -> None:
    async with relay_gateway(tmp_path, dev_pki, **_binding(mode)) as gw:
        bob, _ = await gw.add_mailbox("bob")
        raw = message(PEER_SENDER, bob, "forged-from", from_header=ALICE)
        out = await asyncio.to_thread(relay, gw, dev_pki, dev_pki.peer_server, PEER_SENDER,
                                      bob, raw)
        assert out.mail[0] == 250 and out.rcpt is not None and out.rcpt[0] == 250
        assert out.data is not None
        refused_5_7_1(out.data, "From", "mssante.test", "domain of this operator")
        assert await gw.inbox_messages(bob) == []


async def test_default_mode_is_trust_space(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    """No setting: From: outside the trust space is refused, another operator's is not."""
    async with relay_gateway(tmp_path, dev_pki) as gw:
        bob, _ = await gw.add_mailbox("bob")
        outside = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, PEER_SENDER, bob,
            message(PEER_SENDER, bob, "outside", from_header="ceo@evil.example"))
        assert outside.data is not None
        refused_5_7_1(outside.data, "evil.example", "trust space")
        other = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, OTHER_OPERATOR, bob,
            message(OTHER_OPERATOR, bob, "other-operator"))
        assert other.data is not None and other.data[0] == 250, other
        [row] = await gw.inbox_messages(bob)
        assert row["subject"] == "other-operator"


async def test_none_mode_leaves_from_header_free(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    async with relay_gateway(tmp_path, dev_pki, **_binding("none")) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, PEER_SENDER, bob,
            message(PEER_SENDER, bob, "free-from", from_header="list@lists.example"))
        assert out.data is not None and out.data[0] == 250, out
        envelope = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, "spam@evil.example", bob,
            message("spam@evil.example", bob, "spam"))
        refused_5_7_1(envelope.mail, "evil.example is not in the MSSante trust space")


async def test_certificate_mode_binds_sender_to_certificate(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki, **_binding("certificate")) as gw:
        bob, _ = await gw.add_mailbox("bob")
        own = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, PEER_SENDER, bob,
            message(PEER_SENDER, bob, "own-domain"))
        assert own.data is not None and own.data[0] == 250, own
        other = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, OTHER_OPERATOR, bob,
            message(OTHER_OPERATOR, bob, "not-mine"))
        refused_5_7_1(other.mail, "ch-exemple.mssante.fr", PEER_DOMAIN, "[relay_peers]")
        from_other = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, PEER_SENDER, bob,
            message(PEER_SENDER, bob, "from-other", from_header=OTHER_OPERATOR))
        assert from_other.data is not None
        refused_5_7_1(from_other.data, "From", "ch-exemple.mssante.fr")


@pytest.mark.parametrize("key", ["name", "fingerprint"])
async def test_relay_peers_table_maps_more_domains(
    tmp_path: Path, dev_pki: DevPkiBundle, key: str
) -> None:
    fingerprint = dev_pki.peer_server.fingerprint
    peer_key = f"mx.{PEER_DOMAIN}" if key == "name" else f"sha256:{fingerprint.upper()}"
    peers = {peer_key: ["ch-exemple.mssante.fr"]}
    async with relay_gateway(tmp_path, dev_pki, **_binding("certificate", peers)) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, OTHER_OPERATOR, bob,
            message(OTHER_OPERATOR, bob, f"mapped-{key}"))
        assert out.data is not None and out.data[0] == 250, out
        [proof] = [p for p in await gw.proofs_for(f"<mapped-{key}@{PEER_DOMAIN}>")
                   if p["kind"] == "received"]
        details = json.loads(proof["details"])
        assert details["sender_binding"] == "certificate"
        assert "[relay_peers]" in details["binding_decision"]


async def test_received_proof_records_fingerprint_and_decision(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki, **_binding("certificate")) as gw:
        bob, _ = await gw.add_mailbox("bob")
        out = await asyncio.to_thread(
            relay, gw, dev_pki, dev_pki.peer_server, PEER_SENDER, bob,
            message(PEER_SENDER, bob, "proof"))
        assert out.data is not None and out.data[0] == 250, out
        proofs = await gw.proofs_for(f"<proof@{PEER_DOMAIN}>")
        assert [p["kind"] for p in proofs] == ["received", "delivered"]
        details = json.loads(proofs[0]["details"])
        assert details["peer_fingerprint"] == dev_pki.peer_server.fingerprint
        assert details["peer_family"] == "server"
        assert details["peer_domains"] == [PEER_DOMAIN]
        assert details["sender_binding"] == "certificate"
        assert details["sender_domains"] == [PEER_DOMAIN]
        assert "named by the peer certificate" in details["binding_decision"]
