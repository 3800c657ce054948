"""The webmail in a real browser (Debian's chromium, headless, through Selenium and
chromium-driver): sign in with password and the code from the outbox, open INBOX, read a
message, download its attachment (the same bytes land on disk), open a hostile HTML message
(nothing runs), and look at the list on a phone-sized screen. Screenshots are saved under
``$MSSANTE_TEST_ARTIFACTS/webmail/lecture`` (default ``test-artifacts/webmail/lecture/``), a
directory of this test's own: the writing test runs at the same time in another process."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import code_in, last_mail_to
from tests.web.test_portal_browser import CHROMIUM, DRIVER, spki_hash
from tests.web.test_webmail_hostile import HTML_BODIES, html_message
from tests.web.test_webmail_reading import PDF, with_attachments
from tests.web.webmail_client import PORTAL_PASSWORD, Pro, professional, send

ARTIFACTS = Path(os.environ.get("MSSANTE_TEST_ARTIFACTS") or
                 Path(__file__).resolve().parents[2] / "test-artifacts") / "webmail" / "lecture"


class Browser:
    """A headless chromium at 1280×800 that saves downloads in ``downloads``."""

    def __init__(self, base: str, spki: str, downloads: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        assert CHROMIUM is not None and DRIVER is not None
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,800",
                    f"--ignore-certificate-errors-spki-list={spki}"):
            options.add_argument(arg)
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        })
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Page.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(downloads)})
        self.base = base
        self.shots = 0

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)

    def fill(self, values: dict[str, str]) -> None:
        from selenium.webdriver.common.by import By

        for name, value in values.items():
            element = self.driver.find_element(By.ID, name)
            element.clear()
            element.send_keys(value)

    def click(self, css: str, navigates: bool = True) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        element = self.driver.find_element(By.CSS_SELECTOR, css)
        page = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        if navigates:
            WebDriverWait(self.driver, 30).until(expected_conditions.staleness_of(page))
            WebDriverWait(self.driver, 30).until(
                lambda d: d.execute_script("return document.readyState") == "complete")

    def text(self, css: str = "main") -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def path(self) -> str:
        url = str(self.driver.current_url)
        return url[len(self.base):] if url.startswith(self.base) else url

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{self.shots:02d}-{name}.png"))

    def quit(self) -> None:
        self.driver.quit()


def browse(gw: RunningGateway, alice: Pro, downloads: Path) -> dict[str, object]:
    from selenium.webdriver.common.by import By

    seen: dict[str, object] = {}
    b = Browser(f"https://127.0.0.1:{gw.web_port}", spki_hash(gw.settings.tls_cert_file),
                downloads)
    try:
        b.get("/connexion")
        b.fill({"email": alice.address, "password": PORTAL_PASSWORD})
        b.click("form[action='/connexion'] button[type=submit]")
        assert b.path() == "/connexion/code", b.text()
        b.fill({"code": code_in(last_mail_to(gw, alice.usual)[0])})
        b.click("form[action='/connexion/code'] button[type=submit]")
        assert b.path() == "/compte", b.text()
        b.click("header a[href='/courrier/']")
        assert b.path().startswith("/courrier/dossier/"), b.path()
        assert "Résultats d'analyse" in b.text()
        b.shot("boite-de-reception")
        # keyboard: the skip link is the first focusable element of the page body
        b.driver.find_element(By.TAG_NAME, "body").send_keys("\t")
        b.click("td.subject a[href$='/message/1']")
        assert "les résultats sont joints" in b.text(), b.text()
        b.shot("message-lu")
        b.click("details.all-headers summary", navigates=False)
        b.shot("message-details")
        seen["details"] = b.text("details.all-headers")
        b.click(".attachments a[href$='/piece/2']", navigates=False)
        deadline = time.monotonic() + 30
        target = downloads / "résultats.pdf"
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        seen["download"] = target.read_bytes() if target.exists() else None
        seen["download_path"] = b.path()
        b.get(b.path().rsplit("/message/", 1)[0] + "/message/2")
        seen["hostile_title"] = b.driver.title
        seen["hostile_text"] = b.text()
        b.shot("message-hostile")
        b.get(b.path().rsplit("/message/", 1)[0])
        b.shot("liste-apres-lecture")
        b.driver.set_window_size(390, 844)
        b.get(b.path())
        b.shot("liste-telephone")
        seen["phone_width"] = b.driver.execute_script(
            "return document.documentElement.scrollWidth")
        return seen
    finally:
        b.quit()


async def test_read_and_download_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM and DRIVER, "chromium and chromium-driver: run scripts/bootstrap.sh"
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with running_gateway(settings) as gw:
        alice = await professional(gw, "alice")
        bob = await professional(gw, "bob")
        await send(gw, bob, [alice.address], with_attachments(bob, alice))
        await send(gw, bob, [alice.address],
                   html_message(bob, alice, "script", HTML_BODIES["script"]
                                + HTML_BODIES["onerror"] + HTML_BODIES["remote-images"]))
        seen = await asyncio.to_thread(browse, gw, alice, downloads)
    assert seen["download"] == PDF
    assert "X-MSS-CODECDA" in str(seen["details"])
    assert seen["hostile_title"] != "pwned" and "Bonjour" in str(seen["hostile_text"])
    assert "images distantes bloquées" in str(seen["hostile_text"])
    assert int(str(seen["phone_width"])) <= 390  # no sideways scrolling on a phone
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(shots) == 6, shots
