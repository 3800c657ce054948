"""The whole path in a real browser (Debian's chromium through Selenium and chromium-driver):
sign-up → link from the outbox → administrator's approval → password + code sign-in →
application password → IMAP login and SMTP submission with it → the message arrives.

Chromium trusts only the gateway's server key (``--ignore-certificate-errors-spki-list``),
so the pages are a secure context (the ``__Host-`` cookie, HSTS) as in production. A
screenshot of each page is saved under ``$MSSANTE_TEST_ARTIFACTS`` (default
``test-artifacts/portal-browser/`` at the top of the checkout).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import imaplib
import os
import shutil
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.accounts.registration_data import RPPS
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import (
    ADMIN_PASSWORD,
    ADMIN_USUAL,
    code_in,
    confirmation_path,
    give_admin_portal_access,
    last_mail_to,
)

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")

ARTIFACTS = Path(os.environ.get("MSSANTE_TEST_ARTIFACTS") or
                 Path(__file__).resolve().parents[2] / "test-artifacts") / "portal-browser"
USUAL = "helene.dupont@exemple.fr"
PASSWORD = "Vx7#quarante"  # noqa: S105 - test value


def spki_hash(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Browser:
    """A headless chromium, driven synchronously (called through asyncio.to_thread)."""

    def __init__(self, base: str, spki: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        assert CHROMIUM is not None and DRIVER is not None
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1200,1600",
                    f"--ignore-certificate-errors-spki-list={spki}"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        self.driver.set_page_load_timeout(60)
        self.base = base
        self.shots = 0

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)

    def fill(self, values: dict[str, str]) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        for name, value in values.items():
            element = self.driver.find_element(By.ID, name)
            if element.tag_name == "select":
                Select(element).select_by_value(value)
            else:
                element.clear()
                element.send_keys(value)

    def click(self, css: str) -> None:
        """Clicks and, for a link or a submit button, waits until the next page is loaded
        (a click returns before the navigation it starts)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        element = self.driver.find_element(By.CSS_SELECTOR, css)
        navigates = element.tag_name == "a" or element.get_attribute("type") == "submit"
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

    def cookie(self) -> dict[str, Any]:
        [cookie] = self.driver.get_cookies()
        return dict(cookie)

    def quit(self) -> None:
        self.driver.quit()


def sign_in(b: Browser, gw: RunningGateway, address: str, password: str, usual: str,
            tag: str) -> None:
    b.get("/connexion")
    b.shot(f"{tag}-connexion")
    b.fill({"email": address, "password": password})
    b.click("form[action='/connexion'] button[type=submit]")
    assert b.path() == "/connexion/code", b.text()
    b.shot(f"{tag}-code")
    b.fill({"code": code_in(last_mail_to(gw, usual)[0])})
    b.click("form[action='/connexion/code'] button[type=submit]")
    assert b.path() == "/compte", b.text()


def browse(gw: RunningGateway, admin: str) -> str:
    """The whole path; returns the application password the page showed."""
    from selenium.webdriver.common.by import By

    b = Browser(f"https://127.0.0.1:{gw.web_port}", spki_hash(gw.settings.tls_cert_file))
    try:
        b.get("/")
        b.shot("accueil")
        b.click("a.button[href='/inscription']")
        b.shot("inscription")
        b.fill({"email": USUAL, "password": PASSWORD, "password_confirm": PASSWORD,
                "profession_type": "Professionnel de santé", "rpps": RPPS,
                "surname": "Dupont", "given_name": "Hélène", "company": "Cabinet des Carmes",
                "profession": "Médecin", "address1": "3 place des Carmes",
                "postal_code": "31000", "city": "Toulouse", "region": "Occitanie",
                "department": "31", "phone1": "05 61 00 00 00"})
        b.click("input[name=liberal][value=oui]")
        b.shot("inscription-remplie")
        b.click("form[action='/inscription'] button[type=submit]")
        assert b.path() == "/inscription/envoyee", b.text()
        b.shot("inscription-envoyee")
        cookie = b.cookie()
        assert cookie["name"] == "__Host-mssante" and cookie["secure"] and cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"

        b.get(confirmation_path(last_mail_to(gw, USUAL)[1]))
        b.shot("confirmation")
        b.click("form[action='/confirmer'] button[type=submit]")
        assert "Adresse confirmée" in b.text(), b.text()
        b.shot("confirmation-faite")

        b.driver.delete_all_cookies()
        sign_in(b, gw, admin, ADMIN_PASSWORD, ADMIN_USUAL, "admin")
        b.get("/admin/demandes")
        assert "Hélène Dupont" in b.text() and "heures ouvrées" in b.text()
        b.shot("admin-demandes")
        b.click("article.request form[action$='/accepter'] button[type=submit]")
        assert "helene.dupont@mssante.test est créée" in b.text(), b.text()
        b.shot("admin-acceptee")
        b.click("header form[action='/deconnexion'] button")
        assert b.path() == "/"

        sign_in(b, gw, "helene.dupont@mssante.test", PASSWORD, USUAL, "pro")
        b.shot("compte")
        b.fill({"label": "Thunderbird cabinet"})
        b.click("form[action='/compte/mots-de-passe'] button[type=submit]")
        password = b.driver.find_element(By.ID, "new-password").text
        b.shot("mot-de-passe-cree")
        return str(password)
    finally:
        b.quit()


def imap_and_smtp(gw: RunningGateway, imaps: int, address: str, password: str) -> str:
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    msg = EmailMessage()
    msg["From"] = msg["To"] = address
    msg["Subject"] = "Premier message depuis le portail"
    msg.set_content("Bonjour.")
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=ctx, timeout=30) as smtp:
        smtp.login(address, password)
        smtp.send_message(msg)
    with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=30) as imap:
        imap.login(address, password)
        status, data = imap.select("INBOX")
        imap.logout()
    return f"{status} {data[0].decode()}"


async def test_the_whole_path_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM and DRIVER, "chromium and chromium-driver: run scripts/bootstrap.sh"
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as gw:
        imaps = next(int(s.server.tls_port) for s in gw.gw.services  # type: ignore[attr-defined]
                     if s.name == "IMAP")
        admin = await give_admin_portal_access(gw)
        password = await asyncio.to_thread(browse, gw, admin)
        assert len(password) == 24
        address = "helene.dupont@mssante.test"
        result = await asyncio.to_thread(imap_and_smtp, gw, imaps, address, password)
        assert result.startswith("OK"), result
        for _ in range(100):
            if await gw.inbox_messages(address):
                break
            await asyncio.sleep(0.1)
        [arrived] = await gw.inbox_messages(address)
        assert arrived["subject"] == "Premier message depuis le portail"
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(shots) >= 14, shots
