"""The portal's public pages over TLS: home, sign-up with field messages, confirmation
link, CSRF, cookie flags, no inline code, no account enumeration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.accounts.registration_data import signup_data
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import (
    confirmation_path,
    csrf,
    form_token,
    last_mail_to,
    outbox,
    portal,
)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


async def test_home_page_in_french_with_its_style_sheet_and_no_inline_code(
    gw: RunningGateway,
) -> None:
    async with portal(gw) as http:
        home = await http.get("/")
        css = await http.get("/static/portal.css")
        signup = await http.get("/inscription")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in home.text and "S'inscrire" in home.text
    assert '<link rel="stylesheet" href="/static/portal.css">' in home.text
    for page in (home.text, signup.text):
        assert "<script" not in page and "<style" not in page and " style=" not in page
        assert " on" not in page.replace(" one", "")  # no onclick= and the like
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "unsafe-inline" not in home.headers["content-security-policy"]
    assert home.headers["strict-transport-security"].startswith("max-age=")


async def test_session_cookie_flags(gw: RunningGateway) -> None:
    async with portal(gw) as http:
        answer = await http.get("/inscription")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-mssante=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"path=/", "secure", "httponly", "samesite=strict"} <= flags
    assert not any(flag.startswith("domain=") for flag in flags)


async def test_every_form_is_refused_without_the_session_csrf_token(
    gw: RunningGateway,
) -> None:
    async with portal(gw) as http, portal(gw) as other:
        token = await form_token(http, "/inscription")
        other_token = await form_token(other, "/inscription")
        for path in ("/inscription", "/connexion", "/confirmer", "/confirmer/renvoyer",
                     "/connexion/code", "/deconnexion", "/compte/mots-de-passe",
                     "/admin/demandes/1/accepter", "/admin/demandes/1/refuser"):
            missing = await http.post(path, data=signup_data())
            assert missing.status_code == 403, path
            assert "formulaire a expiré" in missing.text
            stolen = await http.post(path, data={**signup_data(), "csrf": other_token})
            assert stolen.status_code == 403, path
        assert token != other_token
    async with portal(gw) as fresh:  # no session cookie at all
        answer = await fresh.post("/inscription", data={**signup_data(), "csrf": token})
        assert answer.status_code == 403
    assert outbox(gw) == []


async def test_sign_up_errors_are_shown_next_to_their_fields(gw: RunningGateway) -> None:
    async with portal(gw) as http:
        token = await form_token(http, "/inscription")
        answer = await http.post("/inscription", data={
            **signup_data(rpps="123", postal_code="75001", phone1="12",
                          password="azerty123", password_confirm="azerty123"),
            "csrf": token})
    assert answer.status_code == 400
    page = answer.text
    assert "Votre demande n&#39;a pas été envoyée" in page
    assert "Le numéro RPPS comporte exactement 11 chiffres." in page
    assert "ne correspond pas au département 31" in page
    assert "Numéro de téléphone invalide" in page
    assert "majuscule ou un caractère non alphanumérique" in page
    assert 'value="Dupont"' in page  # kept for correction
    assert "azerty123" not in page  # passwords are never sent back
    assert outbox(gw) == []


async def test_sign_up_then_confirmation_link(gw: RunningGateway) -> None:
    async with portal(gw) as http:
        token = await form_token(http, "/inscription")
        answer = await http.post("/inscription", data={**signup_data(), "csrf": token})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/inscription/envoyee"
        sent = await http.get("/inscription/envoyee")
        assert "Si cette adresse peut être inscrite" in sent.text
        subject, body = last_mail_to(gw, "helene.dupont@exemple.fr")
        assert "Confirmez" in subject
        page = await http.get(confirmation_path(body))
        assert page.status_code == 200 and "Confirmer mon adresse" in page.text
        jeton = confirmation_path(body).split("jeton=")[1]
        done = await http.post("/confirmer", data={"csrf": csrf(page.text), "jeton": jeton})
        assert done.status_code == 200 and "Adresse confirmée" in done.text
        again = await http.post("/confirmer", data={"csrf": csrf(page.text), "jeton": jeton})
        assert again.status_code == 400 and "déjà été utilisé" in again.text


async def test_no_account_enumeration_on_sign_up(gw: RunningGateway) -> None:
    answers = []
    async with portal(gw) as http:
        for surname in ("Dupont", "Durand"):
            token = await form_token(http, "/inscription")
            answer = await http.post("/inscription",
                                     data={**signup_data(surname=surname), "csrf": token})
            page = await http.get(answer.headers["location"])
            answers.append((answer.status_code, answer.headers["location"],
                            page.text.replace(csrf(page.text), "")))
    assert answers[0] == answers[1]
    subjects = [s for to, s, _b in outbox(gw) if to == "helene.dupont@exemple.fr"]
    assert len(subjects) == 1  # the notice is throttled like links; no second link


async def test_resend_answers_alike_for_unknown_addresses(gw: RunningGateway) -> None:
    async with portal(gw) as http:
        token = await form_token(http, "/inscription")
        known = await http.post("/confirmer/renvoyer",
                                data={"csrf": token, "email": "helene.dupont@exemple.fr"})
        unknown = await http.post("/confirmer/renvoyer",
                                  data={"csrf": token, "email": "personne@exemple.fr"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text


async def test_sign_ups_share_the_address_hashing_budget(tmp_path: Path) -> None:
    """Each sign-up costs an argon2 hash: one client address may not make the server hash
    without limit (the budget of [auth] address_hash_budget, shared with logins)."""
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False},
                                auth={"address_hash_budget": 2, "hash_budget_window": 3600})
    async with running_gateway(settings) as gw, portal(gw) as http:
        statuses = []
        for n in range(3):
            token = await form_token(http, "/inscription")
            answer = await http.post("/inscription", data={
                **signup_data(email=f"pro{n}@exemple.fr"), "csrf": token})
            statuses.append(answer.status_code)
        assert statuses == [303, 303, 429]
        assert "Trop de demandes" in answer.text
        assert len(outbox(gw)) == 2
