"""Organisational mailboxes from the portal (created by an administrator, members managed
by the responsible or a member holding the administer right) and the applicative
mailbox's page (certificate binding, send-only setting refused by SMTP with 5.2.1)."""

from __future__ import annotations

import asyncio
import imaplib
import json
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from accounts.portal_password import set_portal_password
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import form_token, portal, sign_in
from tests.web.test_portal_admin_accounts import admin_client, said

DOCTOR_PW = "Tilleul-47!"  # noqa: S105 - test value
SECRETARY_PW = "Marronnier-82!"  # noqa: S105 - test value


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


async def person(gw: RunningGateway, local: str, password: str) -> tuple[str, str, str]:
    """A PER mailbox with a portal password: (address, app password, usual address)."""
    address, app_pw = await gw.add_mailbox(local)
    usual = f"{local}@exemple.fr"
    assert gw.gw.db is not None
    await set_portal_password(gw.gw.db, address, password, usual)
    return address, app_pw, usual


async def post(http: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    token = await form_token(http, "/compte")
    return await http.post(path, data={"csrf": token, **data})


def imap_shared(gw: RunningGateway, address: str, password: str) -> list[bytes]:
    port = next(int(s.server.tls_port) for s in gw.gw.services  # type: ignore[attr-defined]
                if s.name == "IMAP")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=30) as imap:
        imap.login(address, password)
        typ, data = imap.list('""', "Shared/*")
        assert typ == "OK"
        return [d for d in data if isinstance(d, bytes)]


async def test_org_created_by_admin_managed_by_responsible(gw: RunningGateway) -> None:
    doctor, _doc_app, doctor_usual = await person(gw, "dr.cardio", DOCTOR_PW)
    secretary, sec_app, sec_usual = await person(gw, "julie.petit", SECRETARY_PW)
    org = "secretariat.cardio@mssante.test"
    async with portal(gw) as http:
        admin = await admin_client(gw, http)
        answer = await post(http, "/admin/boites-org", adresse=org, nom="Secrétariat",
                            responsable=doctor)
        assert answer.status_code == 200 and f"La boîte {org} est créée." in said(answer)
        again = await post(http, "/admin/boites-org", adresse=org, nom="Secrétariat",
                           responsable=doctor)
        assert again.status_code == 400 and f"L'adresse '{org}' a déjà une boîte." in said(
            again)
        bad = await post(http, "/admin/boites-org", adresse="autre@mssante.test", nom="X",
                         responsable=secretary + "x")
        assert bad.status_code == 400 and "n'a pas de boîte ici" in said(bad)
    async with portal(gw) as http:
        await sign_in(gw, http, doctor, DOCTOR_PW, doctor_usual)
        page = await http.get(f"/boites/{org}")
        assert page.status_code == 200 and "(responsable)" in said(page)
        answer = await post(http, f"/boites/{org}/membres", membre=secretary,
                            niveau="lecture")
        assert answer.status_code == 200 and f"{secretary} : lecture." in said(answer)
        refused = await post(http, f"/boites/{org}/membres/retirer", membre=doctor)
        assert refused.status_code == 400 and "ne peut pas être retiré" in said(refused)
        refused = await post(http, f"/boites/{org}/membres", membre=secretary,
                             niveau="tout")
        assert refused.status_code == 400 and "Niveau d'accès 'tout' inconnu" in said(refused)
        refused = await post(http, f"/boites/{org}/membres", membre=admin, niveau="lecture",
                             envoi="oui")
        assert refused.status_code == 200  # an administrator's own mailbox may be a member
    listed = await asyncio.to_thread(imap_shared, gw, secretary, sec_app)
    assert any(f"Shared/{org}".encode() in line for line in listed), listed

    async with portal(gw) as http:
        await sign_in(gw, http, secretary, SECRETARY_PW, sec_usual)
        page = await http.get(f"/boites/{org}")
        assert page.status_code == 403 and "Vous ne pouvez pas gérer cette boîte." in said(page)
        answer = await post(http, f"/boites/{org}/membres", membre=secretary,
                            niveau="gestion")
        assert answer.status_code == 403
    async with portal(gw) as http:
        await sign_in(gw, http, doctor, DOCTOR_PW, doctor_usual)
        await post(http, f"/boites/{org}/membres", membre=secretary, niveau="gestion",
                   envoi="oui")
    async with portal(gw) as http:
        await sign_in(gw, http, secretary, SECRETARY_PW, sec_usual)
        answer = await post(http, f"/boites/{org}/membres/retirer", membre=admin)
        assert answer.status_code == 200 and f"{admin} n'est plus membre." in said(answer)
    story = [(p["kind"], p["actor"]) for p in await gw.proofs_for(f"account:{org}")]
    assert story == [("account-created", admin), ("delegation-granted", admin),
                     ("delegation-granted", doctor), ("delegation-granted", doctor),
                     ("delegation-changed", doctor), ("delegation-revoked", secretary)]


async def test_app_page_binding_and_send_only(gw: RunningGateway) -> None:
    app, _pw = await gw.add_mailbox("dpi", type="APP", structure_id="330000000", name="DPI")
    async with portal(gw) as http:
        admin = await admin_client(gw, http)
        page = await http.get(f"/boites/{app}")
        assert page.status_code == 200 and "330000000" in page.text
        assert "envoi et réception" in said(page)
        answer = await post(http, f"/boites/{app}/mode", mode="lecture-seule")
        assert answer.status_code == 400 and "Mode 'lecture-seule' inconnu" in said(answer)
        answer = await post(http, f"/boites/{app}/mode", mode="send-only")
        assert answer.status_code == 200 and '<dd id="mode">envoi seulement' in answer.text
    # the change is proved, naming the administrator (before: no proof at all)
    changed = [p for p in await gw.proofs_for(f"account:{app}")
               if p["kind"] == "account-changed"]
    details = [json.loads(p["details"]) for p in changed]
    assert [(d["setting"], d["from"], d["to"]) for d in details] == [
        ("app_mode", "send-and-receive", "send-only")]
    assert changed[0]["actor"] == admin

    def rcpt() -> tuple[int, bytes]:
        with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port,
                              context=ssl.create_default_context(cafile=str(gw.ca_file))) as s:
            s.login(gw.demo_address, gw.demo_password)
            s.mail(gw.demo_address)
            return s.rcpt(app)
    code, text = await asyncio.to_thread(rcpt)
    assert code == 550 and text.startswith(b"5.2.1") and b"only sends" in text, (code, text)


async def test_a_holder_cannot_open_another_mailbox_page(gw: RunningGateway) -> None:
    doctor, _app, usual = await person(gw, "dr.curieux", DOCTOR_PW)
    app, _pw = await gw.add_mailbox("dpi2", type="APP", structure_id="330000000", name="DPI")
    async with portal(gw) as http:
        await sign_in(gw, http, doctor, DOCTOR_PW, usual)
        for target in (app, gw.demo_address, "nobody@mssante.test"):
            page = await http.get(f"/boites/{target}")
            assert page.status_code == 403, target
        answer = await post(http, "/admin/boites-org", adresse="x@mssante.test", nom="X",
                            responsable=doctor)
        assert answer.status_code == 403 and "réservée aux administrateurs" in said(answer)
