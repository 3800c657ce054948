"""CPS card login in a real chromium (Selenium, headless) with the card's certificate in an
NSS database of a private profile home, selected without a prompt by the
``AutoSelectCertificateForUrls`` policy for the CPS listener's address only.

Chromium reads managed policies only from ``/etc/chromium/policies/managed``: the test
writes its one-URL policy there when it may (the set-up runs tests as root in a container)
and removes it afterwards; otherwise it is skipped, saying why."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.fixtures.pki import CPS_IDNAT, DevPkiBundle
from tests.web import test_portal_browser as portal_browser
from tests.web.portal_client import outbox
from tests.web.test_cps_login import cps_port
from tests.web.test_portal_browser import CHROMIUM, DRIVER, spki_hash

ARTIFACTS = Path(os.environ.get("MSSANTE_TEST_ARTIFACTS") or
                 Path(__file__).resolve().parents[2] / "test-artifacts") / "portal"
POLICIES = Path("/etc/chromium/policies/managed")
PK12UTIL = shutil.which("pk12util")
CERTUTIL = shutil.which("certutil")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None or PK12UTIL is None or CERTUTIL is None,
    reason="chromium, chromedriver and libnss3-tools are installed by the set-up")


def nss_home(home: Path, p12: Path, password: str) -> None:
    """``$HOME/.pki/nssdb`` holding the card's certificate and key, as chromium reads it."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run([CERTUTIL, "-N", "-d", f"sql:{db}", "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run([PK12UTIL, "-i", str(p12), "-d", f"sql:{db}", "-W", password],
                   check=True, capture_output=True)


def policy_dir_problem() -> str | None:
    """Why a policy cannot be written in chromium's directory, or None."""
    try:
        POLICIES.mkdir(parents=True, exist_ok=True)
        probe = POLICIES / f".probe-{os.getpid()}"
        probe.write_text("{}")
        probe.unlink()
    except OSError as exc:
        return str(exc.strerror)
    return None


def write_policy(port: int) -> Path:
    """Chooses the first matching certificate for the CPS listener's address, and no other."""
    policy = POLICIES / f"mssante-test-cps-{port}.json"
    policy.write_text(json.dumps({"AutoSelectCertificateForUrls": [json.dumps(
        {"pattern": f"https://127.0.0.1:{port}", "filter": {}})]}))
    return policy


async def test_cps_login_in_chromium(dev_pki: DevPkiBundle, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    problem = policy_dir_problem()
    if problem is not None:
        pytest.skip(f"chromium's policy directory {POLICIES} is not writable ({problem}): "
                    "a client certificate cannot be chosen without a prompt")
    monkeypatch.setattr(portal_browser, "ARTIFACTS", ARTIFACTS)
    home = tmp_path / "home"
    nss_home(home, dev_pki.cps.p12_file, dev_pki.cps.p12_password)
    settings = gateway_settings(tmp_path / "gw", tls=dev_pki.tls_overrides(with_crl=True),
                                directory={"enabled": False})
    async with running_gateway(settings) as gw:
        address, _ = await gw.add_mailbox("alice.martin", idnat=CPS_IDNAT,
                                          name="Dr Alice Martin")
        port = cps_port(gw)
        policy = write_policy(port)
        monkeypatch.setenv("HOME", str(home))  # chromium's NSS database: $HOME/.pki/nssdb
        try:
            def browse() -> tuple[str, str]:
                b = portal_browser.Browser(f"https://127.0.0.1:{gw.web_port}",
                                           spki_hash(dev_pki.server_cert_file))
                try:
                    b.get("/connexion")
                    b.shot("cps-connexion")
                    b.click("a#cps")  # on to the CPS listener, the card, back to /compte
                    from selenium.webdriver.support.ui import WebDriverWait
                    WebDriverWait(b.driver, 30).until(
                        lambda d: d.current_url.endswith("/compte"))
                    b.shot("cps-compte")
                    return b.path(), b.text()
                finally:
                    b.quit()

            path, text = await asyncio.to_thread(browse)
        finally:
            policy.unlink(missing_ok=True)
        assert path == "/compte", text
        assert address in text and CPS_IDNAT in text
        assert outbox(gw) == []  # no one-time code after a CPS login
