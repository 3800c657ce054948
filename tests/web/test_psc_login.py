"""« Se connecter avec Pro Santé Connect »: the authorization code flow with PKCE against a
local OIDC provider, driven by an HTTP client following redirects as a browser does."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fixtures.oidc_provider import PscGateway
from tests.fixtures.pki import DevPkiBundle
from tests.web.portal_client import outbox


@pytest.fixture
async def browser(psc_gateway: PscGateway,
                  dev_pki: DevPkiBundle) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_for(psc_gateway, dev_pki) as http:
        yield http


def browser_for(gw: PscGateway, pki: DevPkiBundle) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(gw.running.ca_file))
    ctx.load_verify_locations(cafile=str(pki.ca_file))  # the provider's certificate
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{gw.running.web_port}", verify=ctx,
                             timeout=30, follow_redirects=True)


async def test_psc_login_opens_the_account_without_a_code(
        psc_gateway: PscGateway, browser: httpx.AsyncClient) -> None:
    page = await browser.get("/connexion")
    assert "Se connecter avec Pro Santé Connect" in page.text
    before = browser.cookies.get("__Host-mssante")
    done = await browser.get("/connexion/psc")
    hops = [str(r.url) for r in done.history]
    assert any("/protocol/openid-connect/auth?" in h for h in hops)  # went to the provider
    authorize = parse_qs(urlsplit(next(h for h in hops if "/auth?" in h)).query)
    assert authorize["code_challenge_method"] == ["S256"] and authorize["nonce"][0]
    assert done.status_code == 200 and "Connexion réussie" in done.text
    assert done.headers["refresh"] == "0; url=/compte"
    after = browser.cookies.get("__Host-mssante")
    assert after not in (None, before)  # signed in with a new session identifier
    account = await browser.get("/compte")
    assert account.status_code == 200 and psc_gateway.address in account.text
    assert outbox(psc_gateway.running) == []  # no one-time code after PSC
    # the provider got the PKCE verifier and the client secret, never the token back here
    sent = psc_gateway.provider.token_requests[-1]
    assert sent["grant_type"] == "authorization_code" and sent["code_verifier"]


async def test_the_way_back_serves_once(psc_gateway: PscGateway,
                                        browser: httpx.AsyncClient) -> None:
    done = await browser.get("/connexion/psc")
    callback = str(done.url)
    assert "/connexion/psc/retour?" in callback
    again = await browser.get(callback)
    assert again.status_code == 400 and "a expiré ou a déjà servi" in again.text


async def test_a_login_started_in_another_browser_is_refused(
        psc_gateway: PscGateway, dev_pki: DevPkiBundle, browser: httpx.AsyncClient) -> None:
    started = await browser.get("/connexion/psc", follow_redirects=False)
    to_provider = started.headers["location"]
    async with browser_for(psc_gateway, dev_pki) as victim:
        answer = await victim.get(to_provider)
        assert answer.status_code == 403
        assert "pas été commencée dans ce navigateur" in answer.text
        assert (await victim.get("/compte", follow_redirects=False)).status_code == 303


async def test_an_unknown_professional_is_told_to_register(
        psc_gateway: PscGateway, browser: httpx.AsyncClient) -> None:
    psc_gateway.provider.user = "810009999999"
    answer = await browser.get("/connexion/psc")
    assert answer.status_code == 403 and "aucune boîte nominative active" in answer.text
    assert (await browser.get("/compte", follow_redirects=False)).status_code == 303


@pytest.mark.parametrize("claims", [{"nonce": "another-login"}, {"aud": "another-client"},
                                    {"iss": "https://evil.example/auth"}])
async def test_a_wrong_id_token_is_refused(psc_gateway: PscGateway,
                                           browser: httpx.AsyncClient,
                                           claims: dict[str, str]) -> None:
    psc_gateway.provider.id_token_claims = claims
    answer = await browser.get("/connexion/psc")
    assert answer.status_code == 400
    assert "identité transmise" in answer.text
    assert (await browser.get("/compte", follow_redirects=False)).status_code == 303


async def test_the_provider_saying_no_is_a_refusal(psc_gateway: PscGateway,
                                                   browser: httpx.AsyncClient) -> None:
    started = await browser.get("/connexion/psc", follow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    answer = await browser.get(f"/connexion/psc/retour?error=access_denied&state={state}")
    assert answer.status_code == 400 and "a refusé ou annulé" in answer.text
