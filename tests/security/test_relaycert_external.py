"""SASL EXTERNAL follows the certificate family (issue 9, item 1, client side).

MSSanté client rules: an applicative (APP) mailbox authenticates with its organisation's
applicative certificate only; a professional's CPS certificate opens a nominative (PER)
mailbox only; an operator's server certificate opens no mailbox.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import smtplib
from pathlib import Path
from typing import Any

import pytest

from accounts.mailboxes import add_mailbox
from storage import credentials as credential_rows
from storage.accounts import get_by_address
from tests.fixtures.gateway import RunningGateway
from tests.fixtures.imap import ImapEnv
from tests.fixtures.pki import APP_STRUCTURE, CPS_IDNAT, DevPkiBundle
from tests.security.relaycert_support import relay_gateway
from trustspace.pki import IssuedFiles
from trustspace.tls import client_context

pytestmark = pytest.mark.timeout(90)


def external(gw: RunningGateway, identity: IssuedFiles, authzid: str = "") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
        client.starttls(context=gw.client_context(identity.cert_file, identity.key_file))
        client.ehlo()
        argument = base64.b64encode(authzid.encode()).decode() if authzid else "="
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


async def test_imap_app_mailbox_refuses_cps_certificate(
    imap_env: ImapEnv, dev_pki: DevPkiBundle
) -> None:
    """Same rule on IMAP AUTHENTICATE EXTERNAL (the authenticator is shared)."""
    db = imap_env.gateway.db
    assert db is not None
    dpi = await add_mailbox(db, "dpi@mssante.test", type="APP", name="DPI",
                            structure_id=APP_STRUCTURE)
    async with db.begin() as conn:
        await credential_rows.add(conn, dpi.account.id, "certificate",
                                  cert_fingerprint=dev_pki.cps.fingerprint)

    def run(identity: IssuedFiles) -> tuple[str, list[Any]]:
        ctx = client_context(imap_env.settings, cert_file=identity.cert_file,
                             key_file=identity.key_file)
        imap = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port, ssl_context=ctx, timeout=10)
        try:
            authzid = base64.b64encode(b"dpi@mssante.test").decode()
            typ, data = imap._simple_command(  # type: ignore[attr-defined]
                "AUTHENTICATE", "EXTERNAL", authzid)
            return typ, data
        except imaplib.IMAP4.error as exc:
            return "NO", [str(exc).encode()]
        finally:
            with contextlib.suppress(Exception):
                imap.shutdown()

    typ, data = await asyncio.to_thread(run, dev_pki.cps)
    assert typ == "NO" and b"AUTHENTICATIONFAILED" in data[0], data
    typ, data = await asyncio.to_thread(run, dev_pki.app)
    assert typ == "OK", data
