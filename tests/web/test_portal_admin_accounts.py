"""Administrators' account list in the portal: search, suspend, reactivate, close after a
confirmation; each change proved with the administrator as actor; refusals in French."""

from __future__ import annotations

import asyncio
import html
import imaplib
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from accounts.portal_password import set_portal_password
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import (
    ADMIN_PASSWORD,
    ADMIN_USUAL,
    form_token,
    give_admin_portal_access,
    portal,
    sign_in,
)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


def said(answer: httpx.Response) -> str:
    """The page's text with HTML entities decoded (quotes are escaped in pages)."""
    return html.unescape(answer.text)


async def admin_client(gw: RunningGateway, http: httpx.AsyncClient) -> str:
    admin = await give_admin_portal_access(gw)
    answer = await sign_in(gw, http, admin, ADMIN_PASSWORD, ADMIN_USUAL)
    assert answer.status_code == 303
    return admin


async def act(http: httpx.AsyncClient, address: str, action: str,
              **extra: str) -> httpx.Response:
    token = await form_token(http, "/admin/comptes")
    return await http.post("/admin/comptes/action",
                           data={"csrf": token, "adresse": address, "action": action, **extra})


def imap_login(gw: RunningGateway, address: str, password: str) -> str:
    port = next(int(s.server.tls_port) for s in gw.gw.services  # type: ignore[attr-defined]
                if s.name == "IMAP")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=30) as imap:
        try:
            imap.login(address, password)
        except imaplib.IMAP4.error as exc:
            return f"refused {exc}"
        return "ok"


def rcpt_to(gw: RunningGateway, sender: str, password: str, rcpt: str) -> tuple[int, bytes]:
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port,
                          context=ssl.create_default_context(cafile=str(gw.ca_file))) as s:
        s.login(sender, password)
        s.mail(sender)
        return s.rcpt(rcpt)


async def test_search_suspend_reactivate_close_with_proofs(gw: RunningGateway) -> None:
    doctor, doctor_pw = await gw.add_mailbox("dr.lefebvre", name="Dr Hélène Lefebvre")
    await gw.add_mailbox("dr.other", name="Dr Autre")
    async with portal(gw) as http:
        admin = await admin_client(gw, http)
        page = await http.get("/admin/comptes", params={"recherche": "lefeb"})
        assert page.status_code == 200
        assert doctor in said(page) and "dr.other@" not in said(page)

        answer = await act(http, doctor, "suspend")
        assert answer.status_code == 200 and f"La boîte {doctor} est suspendue." in said(answer)
        assert (await asyncio.to_thread(imap_login, gw, doctor, doctor_pw)).startswith(
            "refused")
        suspended = await http.get("/admin/comptes", params={"statut": "suspended"})
        assert doctor in suspended.text and "dr.other@" not in suspended.text

        answer = await act(http, doctor, "reactivate")
        assert answer.status_code == 200 and "est réactivée" in said(answer)
        assert await asyncio.to_thread(imap_login, gw, doctor, doctor_pw) == "ok"

        asked = await act(http, doctor, "close")
        assert asked.status_code == 200 and "Fermer définitivement" in said(asked)
        assert "ne peut pas être rouverte" in said(asked)
        assert (await asyncio.to_thread(imap_login, gw, doctor, doctor_pw)) == "ok"
        answer = await act(http, doctor, "close", confirmer="oui")
        assert answer.status_code == 200 and "est fermée" in said(answer)

        again = await act(http, doctor, "reactivate")
        assert again.status_code == 400
        assert "est fermée : seule une boîte suspendue peut être réactivée" in said(again)

    assert (await asyncio.to_thread(imap_login, gw, doctor, doctor_pw)).startswith("refused")
    code, text = await asyncio.to_thread(rcpt_to, gw, gw.demo_address, gw.demo_password,
                                         doctor)
    assert code == 550 and text.startswith(b"5.1.1"), (code, text)
    proofs = await gw.proofs_for(f"account:{doctor}")
    assert [(p["kind"], p["actor"]) for p in proofs][-3:] == [
        ("account-suspended", admin), ("account-reactivated", admin),
        ("account-closed", admin)]


async def test_closed_holder_cannot_sign_in_to_the_portal(gw: RunningGateway) -> None:
    doctor, _pw = await gw.add_mailbox("dr.ferme")
    assert gw.gw.db is not None
    await set_portal_password(gw.gw.db, doctor, "Tilleul-47!", "ferme@exemple.fr")
    async with portal(gw) as http:
        await admin_client(gw, http)
        await act(http, doctor, "close", confirmer="oui")
    async with portal(gw) as http:
        token = await form_token(http, "/connexion")
        answer = await http.post("/connexion", data={"csrf": token, "email": doctor,
                                                     "password": "Tilleul-47!"})
        assert answer.status_code == 400 and "Adresse ou mot de passe incorrect." in said(answer)


async def test_refusals(gw: RunningGateway) -> None:
    doctor, _pw = await gw.add_mailbox("dr.refus")
    async with portal(gw) as http:
        admin = await admin_client(gw, http)
        answer = await act(http, "personne@mssante.test", "suspend")
        assert answer.status_code == 400
        assert "L'adresse 'personne@mssante.test' n'a pas de boîte ici." in said(answer)
        answer = await act(http, doctor, "reactivate")
        assert answer.status_code == 400
        assert "est active : seule une boîte suspendue peut être réactivée" in said(answer)
        answer = await act(http, admin, "suspend")
        assert answer.status_code == 400 and "est la vôtre" in said(answer)
        answer = await act(http, doctor, "explode")
        assert answer.status_code == 400 and "Action 'explode' inconnue." in said(answer)
        answer = await http.get("/admin/comptes", params={"statut": "gelé"})
        assert answer.status_code == 400 and "Statut 'gelé' inconnu" in said(answer)
        answer = await http.post("/admin/comptes/action",
                                 data={"adresse": doctor, "action": "suspend"})
        assert answer.status_code == 403 and "Ce formulaire a expiré" in said(answer)
    assert gw.gw.db is not None
    await set_portal_password(gw.gw.db, doctor, "Tilleul-47!", "refus@exemple.fr")
    async with portal(gw) as http:
        assert (await http.get("/admin/comptes")).headers["location"] == "/connexion"
        await sign_in(gw, http, doctor, "Tilleul-47!", "refus@exemple.fr")
        page = await http.get("/admin/comptes")
        assert page.status_code == 403 and "réservée aux administrateurs" in said(page)
        answer = await act_as_user(http, admin)
        assert answer.status_code == 403
    statuses = [p["kind"] for p in await gw.proofs_for(f"account:{doctor}")]
    assert "account-suspended" not in statuses


async def act_as_user(http: httpx.AsyncClient, target: str) -> httpx.Response:
    token = await form_token(http, "/compte")
    return await http.post("/admin/comptes/action",
                           data={"csrf": token, "adresse": target, "action": "suspend"})
