"""Writing and tracking in a real browser (Debian's chromium through Selenium): sign in with
password + code from the outbox, write to a colleague with a 9 MB attachment and both
notifications asked, see the tracking page say "remis", the colleague reads over IMAP, the
tracking page says "lu" and the receipt opens; an 11 MB attachment is refused in the form
before any upload. Screenshots of each step in ``test-artifacts/webmail/envoi/`` (or
``$MSSANTE_TEST_ARTIFACTS/webmail/envoi``), a directory of this test's own."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import code_in, last_mail_to
from tests.web.test_portal_browser import spki_hash
from tests.web.webmail_write_client import PORTAL_PASSWORD, imap_fetch_all, signed_in

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("MSSANTE_TEST_ARTIFACTS") or
                 Path(__file__).resolve().parents[2] / "test-artifacts") / "webmail" / "envoi"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1280,1000")
MB = 1024 * 1024


class Browser:
    """A headless chromium, driven synchronously (called through asyncio.to_thread)."""

    def __init__(self, base: str, spki: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        assert CHROMIUM is not None and DRIVER is not None
        options.binary_location = CHROMIUM
        for arg in (*FLAGS, f"--ignore-certificate-errors-spki-list={spki}"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        self.driver.set_page_load_timeout(120)
        self.base = base
        self.shots = 0

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)

    def type(self, css: str, value: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def click(self, css: str, timeout: float = 120) -> None:
        """Clicks and waits for the page it leads to."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        page = self.driver.find_element(By.TAG_NAME, "html")
        self.find(css).click()
        WebDriverWait(self.driver, timeout).until(expected_conditions.staleness_of(page))
        WebDriverWait(self.driver, timeout).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def path(self) -> str:
        url = str(self.driver.current_url)
        return url[len(self.base):] if url.startswith(self.base) else url

    def text(self, css: str = "body") -> str:
        return str(self.find(css).text)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{self.shots:02d}-{name}.png"))


def sign_in(b: Browser, gw: RunningGateway, address: str, usual: str) -> None:
    b.get("/connexion")
    b.type("#email", address)
    b.type("#password", PORTAL_PASSWORD)
    b.click("form[action='/connexion'] button[type=submit]")
    assert b.path() == "/connexion/code", b.text()
    b.type("#code", code_in(last_mail_to(gw, usual)[0]))
    b.shot("code")
    b.click("form[action='/connexion/code'] button[type=submit]")
    assert b.path() == "/compte", b.text()


def write(b: Browser, gw: RunningGateway, doctor: str, colleague: str, files: Path) -> None:
    sign_in(b, gw, doctor, "durand.perso@exemple.fr")
    b.get("/courrier/ecrire")
    b.shot("ecrire")

    # 11 MB: refused in the form, nothing is uploaded
    big = files / "scanner-11Mo.zip"
    b.find("#pieces").send_keys(str(big))
    problem = b.find("#pieces-erreur")
    assert problem.is_displayed(), "the size problem is shown at once"
    assert "dépasse 10 Mo" in problem.text, problem.text
    b.shot("piece-11Mo-refusee")
    b.find("#envoyer").click()
    assert b.path() == "/courrier/ecrire", "the form is not sent"

    b.get("/courrier/ecrire")
    b.type("#a", colleague)
    b.type("#objet", "Compte rendu opératoire")
    b.type("#corps", "Bonjour,\nvoici le compte rendu et les images.\nCordialement")
    b.find("#pieces").send_keys(str(files / "imagerie-9Mo.zip"))
    assert not b.find("#pieces-erreur").is_displayed()
    b.find("input[name=avis_remise]").click()
    b.find("input[name=avis_lecture]").click()
    b.shot("ecrire-rempli")
    b.click("#envoyer")
    assert b.path() == "/courrier/suivi?envoye=1", b.text()
    assert "Message envoyé" in b.text()
    state = b.find(f"tr[data-address='{colleague}'] .state").text
    assert state.startswith("remis"), state
    b.shot("suivi-remis")


def after_reading(b: Browser, colleague: str) -> None:
    b.get("/courrier/suivi")
    state = b.find(f"tr[data-address='{colleague}'] .state").text
    assert state.startswith("lu"), state
    b.shot("suivi-lu")
    link = b.find(f"tr[data-address='{colleague}'] a[href*='accuse.html']")
    b.get(re.sub(r"^https://[^/]+", "", str(link.get_attribute("href"))))
    assert "Accusé de réception" in b.text() and colleague in b.text()
    b.shot("accuse-de-reception")
    b.get("/courrier/absence")
    b.shot("repondeur-absence")


async def test_write_and_track_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM and DRIVER, "chromium and chromium-driver: run scripts/bootstrap.sh"
    files = tmp_path / "files"
    files.mkdir()
    (files / "imagerie-9Mo.zip").write_bytes(os.urandom(9 * MB))
    (files / "scanner-11Mo.zip").write_bytes(b"\0" * (11 * MB))
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as gw:
        doctor_http, doctor, _ = await signed_in(gw, "durand")
        colleague_http, colleague, colleague_pw = await signed_in(gw, "bernard")
        await doctor_http.aclose()
        await colleague_http.aclose()
        b = Browser(f"https://127.0.0.1:{gw.web_port}", spki_hash(gw.settings.tls_cert_file))
        try:
            await asyncio.to_thread(write, b, gw, doctor, colleague, files)
            letters = [m for m in await asyncio.to_thread(imap_fetch_all, gw, colleague,
                                                          colleague_pw)
                       if b"voici le compte rendu" in m]
            assert len(letters) == 1 and len(letters[0]) > 12 * MB  # 9 MB in base64
            await asyncio.to_thread(after_reading, b, colleague)
        finally:
            await asyncio.to_thread(b.driver.quit)
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(shots) >= 8, shots
