"""Forgotten password: a code to the usual address, the same answer for unknown
addresses, throttled, 5 tries, single use; the new password through the policy; every
session of the account ends; the change is proved."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import code_in, form_token, last_mail_to, outbox, portal, sign_in
from tests.web.test_portal_admin_accounts import said
from tests.web.test_portal_mailboxes import DOCTOR_PW, person

NEW_PW = "Peuplier-93!"  # noqa: S105 - test value
SENT = "Si un compte actif correspond à cette adresse, un code à usage unique vient"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


async def ask(http: httpx.AsyncClient, email: str) -> httpx.Response:
    token = await form_token(http, "/mot-de-passe-oublie")
    return await http.post("/mot-de-passe-oublie", data={"csrf": token, "email": email})


async def answer(http: httpx.AsyncClient, **data: str) -> httpx.Response:
    token = await form_token(http, "/mot-de-passe-oublie/code")
    return await http.post("/mot-de-passe-oublie/code", data={"csrf": token, **data})


async def test_reset_by_code_ends_every_session(gw: RunningGateway) -> None:
    doctor, _app, usual = await person(gw, "dr.oubli", DOCTOR_PW)
    async with portal(gw) as elsewhere:
        assert (await sign_in(gw, elsewhere, doctor, DOCTOR_PW, usual)).status_code == 303
        async with portal(gw) as http:
            asked = await ask(http, doctor)
            assert asked.status_code == 303
            page = await http.get("/mot-de-passe-oublie/code")
            assert SENT in said(page)
            subject, body = last_mail_to(gw, usual)
            assert "réinitialisation" in subject and "10 minutes" in body
            code = code_in(subject)
            wrong = f"{(int(code) + 1) % 1000000:06d}"
            bad = await answer(http, code=wrong, password=NEW_PW, password_confirm=NEW_PW)
            assert bad.status_code == 400
            assert "Code incorrect. Il vous reste 4 essai(s)." in said(bad)
            weak = await answer(http, code=code, password="azerty", password_confirm="azerty")
            assert weak.status_code == 400
            assert "au minimum 7 caractères" in said(weak)
            assert 'name="code"' not in weak.text  # the code is verified, not asked again
            named = await answer(http, password="Oubli-2026x", password_confirm="Oubli-2026x")
            assert named.status_code == 400 and "ni votre nom" in said(named)
            differ = await answer(http, password=NEW_PW, password_confirm=NEW_PW + "x")
            assert differ.status_code == 400
            assert "Les deux mots de passe ne sont pas identiques." in said(differ)
            done = await answer(http, password=NEW_PW, password_confirm=NEW_PW)
            assert done.status_code == 200 and "toutes vos sessions sont fermées" in said(done)
            again = await http.get("/mot-de-passe-oublie/code")
            assert again.status_code == 303  # the code served once; this session is gone
        gone = await elsewhere.get("/compte")
        assert gone.status_code == 303 and gone.headers["location"] == "/connexion"
    async with portal(gw) as http:
        token = await form_token(http, "/connexion")
        old = await http.post("/connexion", data={"csrf": token, "email": doctor,
                                                  "password": DOCTOR_PW})
        assert old.status_code == 400 and "Adresse ou mot de passe incorrect." in said(old)
        assert (await sign_in(gw, http, doctor, NEW_PW, usual)).status_code == 303
    changes = [(p["kind"], json.loads(p["details"]).get("reason"), p["actor"])
               for p in await gw.proofs_for(f"account:{doctor}")
               if p["kind"].startswith("credential")][-2:]
    assert changes == [("credential-revoked", "reset", f"portal:{doctor}"),
                       ("credential-added", "reset", f"portal:{doctor}")]


async def test_unknown_address_answers_alike_and_requests_are_throttled(
    gw: RunningGateway,
) -> None:
    doctor, _app, usual = await person(gw, "dr.throttle", DOCTOR_PW)
    async with portal(gw) as http:
        asked = await ask(http, "personne@mssante.test")
        assert asked.status_code == 303
        page = await http.get("/mot-de-passe-oublie/code")
        assert page.status_code == 200 and SENT in said(page)
        for left in (4, 3, 2, 1):
            bad = await answer(http, code="123456", password=NEW_PW, password_confirm=NEW_PW)
            assert bad.status_code == 400 and f"Il vous reste {left} essai(s)" in said(bad)
        spent = await answer(http, code="123456", password=NEW_PW, password_confirm=NEW_PW)
        assert spent.status_code == 400
        assert "Ce code a expiré, a déjà servi ou a été trop souvent mal saisi" in said(spent)
        assert outbox(gw) == []

        assert (await ask(http, doctor)).status_code == 303
        for email in (doctor, "personne@mssante.test"):
            again = await ask(http, email)
            assert again.status_code == 429
            assert "Trop de demandes : attendez quelques minutes" in said(again)
        assert [to for to, _s, _b in outbox(gw)] == [usual]
        refused = await http.post("/mot-de-passe-oublie", data={"email": doctor})
        assert refused.status_code == 403 and "Ce formulaire a expiré" in said(refused)
