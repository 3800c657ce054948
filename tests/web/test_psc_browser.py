"""« Se connecter avec Pro Santé Connect » in a real chromium (Selenium, headless): the
button, the provider's redirect back (another site: the portal's SameSite=Strict cookie
is not sent on the way back), and the account page reached without any code.
Screenshots under ``test-artifacts/portal/``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.fixtures.oidc_provider import OidcProvider, psc_gateway_for
from tests.fixtures.pki import DevPkiBundle
from tests.web import test_portal_browser as portal_browser
from tests.web.portal_client import outbox
from tests.web.test_portal_browser import CHROMIUM, DRIVER, Browser, spki_hash

ARTIFACTS = Path(os.environ.get("MSSANTE_TEST_ARTIFACTS") or
                 Path(__file__).resolve().parents[2] / "test-artifacts") / "portal"

pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="chromium and chromedriver are installed by the set-up")


async def test_psc_login_in_chromium(oidc_provider_elsewhere: OidcProvider,
                                     dev_pki: DevPkiBundle, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portal_browser, "ARTIFACTS", ARTIFACTS)
    async with psc_gateway_for(oidc_provider_elsewhere, dev_pki, tmp_path / "gw") as gw:
        spki = ",".join([spki_hash(gw.running.settings.tls_cert_file),
                         spki_hash(dev_pki.peer_server.cert_file)])

        def browse() -> tuple[str, str, str]:
            b = Browser(f"https://127.0.0.1:{gw.running.web_port}", spki)
            try:
                b.get("/connexion")
                b.shot("psc-connexion")
                b.click("a#psc")  # to localhost (the provider), back, then /compte
                from selenium.webdriver.support.ui import WebDriverWait
                WebDriverWait(b.driver, 30).until(lambda d: d.current_url.endswith("/compte"))
                b.shot("psc-compte")
                return b.path(), b.text(), str(b.cookie()["sameSite"])
            finally:
                b.quit()

        path, text, same_site = await asyncio.to_thread(browse)
        assert path == "/compte", text
        assert gw.address in text and same_site == "Strict"
        assert outbox(gw.running) == []  # no one-time code after Pro Santé Connect
    assert (ARTIFACTS / "02-psc-compte.png").exists()
