"""SASL EXTERNAL follows the certificate family (issue 9, item 1, client side).

MSSanté client rules: an applicative (APP) mailbox authenticates with its organisation's
applicative certificate only; a professional's CPS certificate opens a nominative (PER)
mailbox only; an operator's server certificate opens no mailbox.
"""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest

from storage import credentials as credential_rows
from storage.accounts import get_by_address
from tests.fixtures.gateway import RunningGateway
from tests.fixtures.pki import APP_STRUCTURE, CPS_IDNAT, DevPkiBundle
from tests.security.relaycert_support import relay_gateway
from trustspace.pki import IssuedFiles

pytestmark = pytest.mark.timeout(90)


def external(gw: RunningGateway, identity: IssuedFiles, authzid: str = "") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
        client.starttls(context=gw.client_context(identity.cert_file, identity.key_file))
        client.ehlo()
        argument = "=" if not authzid else __import__("base64").b64encode(
            authzid.encode()).decode()
        return client.docmd("AUTH", f"EXTERNAL {argument}")


async def _register(gw: RunningGateway, address: str, identity: IssuedFiles) -> None:
    assert gw.gw.db is not None
    async with gw.gw.db.begin() as conn:
        account = await get_by_address(conn, address)
        assert account is not None
        await credential_rows.add(conn, account.id, "certificate",
                                  cert_fingerprint=identity.fingerprint)


async def test_app_mailbox_refuses_cps_certificate(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    """The responsible professional's idNatPS on an APP mailbox does not let the CPS in."""
    async with relay_gateway(tmp_path, dev_pki) as gw:
        dpi, _ = await gw.add_mailbox("dpi", type="APP", structure_id="330000000",
                                      idnat=CPS_IDNAT, name="DPI du CH")
        code, text = await asyncio.to_thread(external, gw, dev_pki.cps, dpi)
        assert code == 535, text
        assert text.startswith(b"5.7.8 ")
        assert b"personal certificate" in text and b"applicative" in text


async def test_app_mailbox_refuses_registered_cps_fingerprint(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki) as gw:
        dpi, _ = await gw.add_mailbox("dpi", type="APP", structure_id="330000000",
                                      name="DPI du CH")
        await _register(gw, dpi, dev_pki.cps)
        code, text = await asyncio.to_thread(external, gw, dev_pki.cps, dpi)
        assert code == 535 and b"personal certificate" in text, text


async def test_app_mailbox_accepts_its_applicative_certificate(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki) as gw:
        await gw.add_mailbox("dpi", type="APP", structure_id=APP_STRUCTURE, name="DPI")
        code, text = await asyncio.to_thread(external, gw, dev_pki.app)
        assert code == 235, text


async def test_per_mailbox_refuses_applicative_certificate(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki) as gw:
        alice, _ = await gw.add_mailbox("alice", idnat=CPS_IDNAT)
        await _register(gw, alice, dev_pki.app)
        code, text = await asyncio.to_thread(external, gw, dev_pki.app, alice)
        assert code == 535 and b"applicative" in text, text
        code, text = await asyncio.to_thread(external, gw, dev_pki.cps, alice)
        assert code == 235, text


async def test_server_certificate_opens_no_mailbox(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    async with relay_gateway(tmp_path, dev_pki) as gw:
        alice, _ = await gw.add_mailbox("alice", idnat=CPS_IDNAT)
        await _register(gw, alice, dev_pki.peer_server)
        code, text = await asyncio.to_thread(external, gw, dev_pki.peer_server, alice)
        assert code == 535 and b"server certificate" in text, text
