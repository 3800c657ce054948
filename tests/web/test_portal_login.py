"""Portal sign-in: password then a 6-digit code from the usual address; the same answer for
an unknown address and a wrong password; tries, single use, admin pages, sign-out."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.schema import traces
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import (
    ADMIN_PASSWORD,
    ADMIN_USUAL,
    code_in,
    form_token,
    give_admin_portal_access,
    last_mail_to,
    outbox,
    portal,
    sign_in,
)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


async def test_password_then_code_signs_in_and_rotates_the_session(gw: RunningGateway) -> None:
    admin = await give_admin_portal_access(gw)
    async with portal(gw) as http:
        await http.get("/connexion")
        before = http.cookies.get("__Host-mssante")
        answer = await sign_in(gw, http, admin, ADMIN_PASSWORD, ADMIN_USUAL)
        assert answer.status_code == 303 and answer.headers["location"] == "/compte"
        assert http.cookies.get("__Host-mssante") not in (None, before)  # no fixation
        page = await http.get("/compte")
        assert page.status_code == 200 and admin in page.text
        assert ADMIN_USUAL in page.text
        queue = await http.get("/admin/demandes")
        assert queue.status_code == 200 and "Aucune demande en attente" in queue.text
        token = await form_token(http, "/compte")
        out = await http.post("/deconnexion", data={"csrf": token})
        assert out.status_code == 303
        assert (await http.get("/compte")).headers["location"] == "/connexion"
    subject, body = last_mail_to(gw, ADMIN_USUAL)
    assert "code de connexion" in subject and "10 minutes" in body


async def test_unknown_address_and_wrong_password_answer_alike(gw: RunningGateway) -> None:
    admin = await give_admin_portal_access(gw)
    async with portal(gw) as http:
        answers = []
        for email, password in ((admin, "Faux-mot2passe"), ("inconnu@mssante.test", "X1!yyyyy")):
            token = await form_token(http, "/connexion")
            answer = await http.post("/connexion", data={"csrf": token, "email": email,
                                                         "password": password})
            answers.append((answer.status_code,
                            "Adresse ou mot de passe incorrect." in answer.text))
    assert answers == [(400, True), (400, True)]
    assert [to for to, _s, _b in outbox(gw)] == []  # no code sent


async def test_an_application_password_does_not_open_the_portal(gw: RunningGateway) -> None:
    async with portal(gw) as http:
        token = await form_token(http, "/connexion")
        answer = await http.post("/connexion", data={
            "csrf": token, "email": gw.demo_address, "password": gw.demo_password})
    assert answer.status_code == 400 and "incorrect" in answer.text


async def test_five_wrong_codes_end_the_attempt_and_a_code_serves_once(
    gw: RunningGateway,
) -> None:
    admin = await give_admin_portal_access(gw)
    async with portal(gw) as http:
        token = await form_token(http, "/connexion")
        await http.post("/connexion", data={"csrf": token, "email": admin,
                                            "password": ADMIN_PASSWORD})
        good = code_in(last_mail_to(gw, ADMIN_USUAL)[0])
        wrong = f"{(int(good) + 1) % 1000000:06d}"
        for left in (4, 3, 2, 1):
            answer = await http.post("/connexion/code", data={"csrf": token, "code": wrong})
            assert answer.status_code == 400
            assert f"Il vous reste {left} essai(s)" in answer.text
        answer = await http.post("/connexion/code", data={"csrf": token, "code": wrong})
        assert answer.status_code == 400 and "reconnectez-vous" in answer.text
        answer = await http.post("/connexion/code", data={"csrf": token, "code": good})
        assert answer.status_code == 303 and answer.headers["location"] == "/connexion"
        assert (await http.get("/compte")).status_code == 303


async def test_code_resend_is_throttled(gw: RunningGateway) -> None:
    admin = await give_admin_portal_access(gw)
    async with portal(gw) as http:
        token = await form_token(http, "/connexion")
        await http.post("/connexion", data={"csrf": token, "email": admin,
                                            "password": ADMIN_PASSWORD})
        answer = await http.post("/connexion/code/renvoyer", data={"csrf": token})
        assert answer.status_code == 429 and "attendez une minute" in answer.text
    assert len(outbox(gw)) == 1


async def test_admin_pages_are_for_administrators_only(gw: RunningGateway) -> None:
    assert gw.gw.db is not None
    from accounts.portal_password import set_portal_password

    await set_portal_password(gw.gw.db, gw.demo_address, "Tilleul-47!", "camille@exemple.fr")
    async with portal(gw) as http:
        assert (await http.get("/admin/demandes")).headers["location"] == "/connexion"
        answer = await sign_in(gw, http, gw.demo_address, "Tilleul-47!", "camille@exemple.fr")
        assert answer.status_code == 303
        queue = await http.get("/admin/demandes")
        assert queue.status_code == 403 and "réservée aux administrateurs" in queue.text
        token = await form_token(http, "/compte")
        approve = await http.post("/admin/demandes/1/accepter", data={"csrf": token})
        assert approve.status_code == 403


async def test_sign_in_attempts_are_traced_for_the_web(gw: RunningGateway) -> None:
    admin = await give_admin_portal_access(gw)
    async with portal(gw) as http:
        await sign_in(gw, http, admin, ADMIN_PASSWORD, ADMIN_USUAL)
    assert gw.gw.authenticator is not None and gw.gw.db is not None
    await gw.gw.authenticator.traces.flush()
    async with gw.gw.db.read() as conn:
        rows = (await conn.execute(select(traces).where(traces.c.service == "web"))).all()
    methods = sorted((r.detail["method"], r.event) for r in rows)
    assert methods == [("portal-otp", "auth_success"), ("portal-password", "auth_success")]


async def test_portal_guesses_lock_the_login_for_imap_too(tmp_path: Path) -> None:
    """One limiter for the portal, IMAP, SMTP and LDAP: wrong portal passwords lock the
    name; then the right portal password and the right IMAP password fail alike."""
    settings = gateway_settings(
        tmp_path / "gw", directory={"enabled": False},
        auth={"lock_after_failures": 3, "delay_after_failures": 50,
              "address_delay_after_failures": 50, "address_lock_after_failures": 50,
              "delay_max": 0, "lock_duration": 600})
    async with running_gateway(settings) as gw:
        admin = await give_admin_portal_access(gw)
        assert gw.gw.first_start is not None
        app_password = gw.gw.first_start.admin_password
        imaps = next(int(s.server.tls_port) for s in gw.gw.services  # type: ignore[attr-defined]
                     if s.name == "IMAP")
        ctx = ssl.create_default_context(cafile=str(gw.ca_file))

        def imap_login() -> str:
            with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=30) as imap:
                try:
                    imap.login(admin, app_password)
                except imaplib.IMAP4.error as exc:
                    return f"refused {exc}"
                return "ok"

        assert await asyncio.to_thread(imap_login) == "ok"
        async with portal(gw) as http:
            token = await form_token(http, "/connexion")
            for _ in range(3):
                answer = await http.post("/connexion", data={
                    "csrf": token, "email": admin, "password": "Mauvais-42x"})
                assert answer.status_code == 400
            answer = await http.post("/connexion", data={
                "csrf": token, "email": admin, "password": ADMIN_PASSWORD})
            assert answer.status_code == 400 and "incorrect" in answer.text
        assert outbox(gw) == []
        assert (await asyncio.to_thread(imap_login)).startswith("refused")
