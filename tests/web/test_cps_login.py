"""CPS card login on the portal's ``[web] cps_port`` listener (client certificate required):
the card's idNatPS opens the nominative mailbox as SASL EXTERNAL does, no code follows;
applicative, revoked, expired and unknown-authority certificates are refused (a French page
or the TLS handshake). Clients: httpx and curl with the test PKI's certificates."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.fixtures.pki import APP_STRUCTURE, CPS_IDNAT, DevPkiBundle
from tests.web.portal_client import outbox
from trustspace.pki import IssuedFiles


@pytest.fixture
async def gw(tmp_path: Path, dev_pki: DevPkiBundle) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", tls=dev_pki.tls_overrides(with_crl=True),
                                directory={"enabled": False})
    async with running_gateway(settings) as running:
        await running.add_mailbox("alice.martin", idnat=CPS_IDNAT, name="Dr Alice Martin")
        await running.add_mailbox("dpi", type="APP", structure_id=APP_STRUCTURE,
                                  name="DPI Résultats")
        yield running


def cps_port(gw: RunningGateway) -> int:
    for service in gw.gw.services:
        if service.name == "web":
            return int(service.cps_server.port)  # type: ignore[attr-defined]
    raise AssertionError("no web service")


def card(pki: DevPkiBundle, identity: IssuedFiles | None) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    if identity is not None:
        ctx.load_cert_chain(identity.cert_file, identity.key_file)
    return httpx.AsyncClient(verify=ctx, timeout=30)


async def test_a_cps_card_opens_the_account_without_a_code(
        gw: RunningGateway, dev_pki: DevPkiBundle) -> None:
    async with card(dev_pki, dev_pki.cps) as http:
        login = await http.get(f"https://127.0.0.1:{gw.web_port}/connexion")
        assert "Se connecter avec la carte CPS" in login.text
        hop = await http.get(f"https://127.0.0.1:{gw.web_port}/connexion/cps")
        assert hop.status_code == 303
        assert hop.headers["location"] == f"https://127.0.0.1:{cps_port(gw)}/connexion/cps"
        before = http.cookies.get("__Host-mssante")
        answer = await http.get(hop.headers["location"])
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == f"https://127.0.0.1:{gw.web_port}/compte"
        assert http.cookies.get("__Host-mssante") not in (None, before)  # rotated
        page = await http.get(answer.headers["location"])
        assert page.status_code == 200 and "alice.martin@mssante.test" in page.text
    assert outbox(gw) == []  # no one-time code after a CPS login


@pytest.mark.parametrize(("who", "words"), [
    ("app", "certificat d&#39;organisation"),
    ("revoked", "a été révoqué"),
    ("cps_adeli", "aucune boîte nominative active"),
])
async def test_refused_certificates_get_a_french_page(
        gw: RunningGateway, dev_pki: DevPkiBundle, who: str, words: str) -> None:
    async with card(dev_pki, getattr(dev_pki, who)) as http:
        answer = await http.get(f"https://127.0.0.1:{cps_port(gw)}/connexion/cps")
        assert answer.status_code == 403 and words in answer.text, answer.text
        account = await http.get(f"https://127.0.0.1:{gw.web_port}/compte",
                                 follow_redirects=False)
        assert account.status_code == 303  # not signed in


@pytest.mark.parametrize("who", ["expired", "unknown", None])
async def test_expired_unknown_or_no_certificate_end_at_the_handshake(
        gw: RunningGateway, dev_pki: DevPkiBundle, who: str | None) -> None:
    identity = getattr(dev_pki, who) if who else None
    async with card(dev_pki, identity) as http:
        with pytest.raises(httpx.TransportError):
            await http.get(f"https://127.0.0.1:{cps_port(gw)}/connexion/cps")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by the set-up")
async def test_curl_with_the_card(gw: RunningGateway, dev_pki: DevPkiBundle) -> None:
    def run(identity: IssuedFiles) -> str:
        return subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             "--cacert", str(dev_pki.ca_file), "--cert", str(identity.cert_file),
             "--key", str(identity.key_file),
             f"https://127.0.0.1:{cps_port(gw)}/connexion/cps"],
            capture_output=True, text=True, timeout=60, check=False).stdout

    good, app = await asyncio.gather(asyncio.to_thread(run, dev_pki.cps),
                                     asyncio.to_thread(run, dev_pki.app))
    assert good == f"303 https://127.0.0.1:{gw.web_port}/compte"
    assert app.startswith("403")
