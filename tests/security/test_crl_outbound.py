"""Outbound relay: a peer operator whose server certificate is revoked gets nothing.

OpenSSL no longer checks CRLs in the client context (``trustspace.crl`` explains why), so
the outbound worker asks the same CRL store after the handshake: the row is deferred with
``4.7.5`` and the reason, and the peer never sees MAIL FROM.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.pki import DevPkiBundle
from tests.security.test_crl_urls import make_crl
from tests.smtp.test_outbound import (  # noqa: F401 - sender_gateway is a fixture
    PEER_DOMAIN,
    SenderFactory,
    message,
    peer_server,
    sender_gateway,
)
from trustspace.crl import CrlStore
from trustspace.pki import issue_certificate


async def test_peer_with_revoked_server_certificate_is_deferred(
    tmp_path: Path, dev_pki: DevPkiBundle, sender_gateway: SenderFactory  # noqa: F811
) -> None:
    peer = issue_certificate(dev_pki.pki, "server", domain=PEER_DOMAIN,
                             extra_names=("localhost", "127.0.0.1"), out_dir=tmp_path / "iss")
    crl_file = tmp_path / "peer-ca.crl"
    crl_file.write_bytes(make_crl(dev_pki.pki.ca, [peer.serial]))
    store = CrlStore(dev_pki.settings_for(tmp_path / "crl", tls={"crl_files": (str(crl_file),)}))
    await store.load_initial()
    async with peer_server(tmp_path, dev_pki, identity=peer) as (server, policy):
        a = await sender_gateway(server.port)
        [qid] = await a.submit(message(1), f"bob@{PEER_DOMAIN}")
        worker = a.worker()
        worker.revocation = store
        await worker.run_once()
        row = await a.row(qid)
        assert row.state == "deferred"
        assert row.last_reply.startswith("451 4.7.5"), row.last_reply
        assert "revoked" in row.last_reply
        assert policy.accepted == []
