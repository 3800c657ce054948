"""The whole path through a real gateway: sign-up → link from the outbox → administrator's
approval → password + code sign-in → application password → IMAP login with it (imaplib
over TLS) → revocation ends it."""

from __future__ import annotations

import asyncio
import imaplib
import re
from pathlib import Path

import pytest

from tests.accounts.registration_data import signup_data
from tests.fixtures.gateway import gateway_settings, running_gateway
from tests.web.portal_client import (
    ADMIN_PASSWORD,
    ADMIN_USUAL,
    confirmation_path,
    csrf,
    form_token,
    give_admin_portal_access,
    last_mail_to,
    portal,
    sign_in,
)

USUAL = "helene.dupont@exemple.fr"


def imap_login(port: int, ca_file: Path, address: str, password: str) -> str:
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=30) as imap:
        try:
            imap.login(address, password)
        except imaplib.IMAP4.error as exc:
            return f"refused: {exc}"
        status, data = imap.select("INBOX")
        imap.logout()
        return f"{status} {data[0].decode()}"


async def test_sign_up_to_imap_login(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as gw:
        imaps = next(int(s.server.tls_port) for s in gw.gw.services  # type: ignore[attr-defined]
                     if s.name == "IMAP")
        admin = await give_admin_portal_access(gw)
        async with portal(gw) as visitor:
            token = await form_token(visitor, "/inscription")
            answer = await visitor.post("/inscription", data={**signup_data(), "csrf": token})
            assert answer.status_code == 303
            _subject, body = last_mail_to(gw, USUAL)
            page = await visitor.get(confirmation_path(body))
            jeton = confirmation_path(body).split("jeton=")[1]
            done = await visitor.post("/confirmer", data={"csrf": csrf(page.text),
                                                          "jeton": jeton})
            assert "Adresse confirmée" in done.text

        async with portal(gw) as http:
            assert (await sign_in(gw, http, admin, ADMIN_PASSWORD, ADMIN_USUAL)
                    ).status_code == 303
            queue = await http.get("/admin/demandes")
            assert "Hélène Dupont" in queue.text
            assert "heures ouvrées" in queue.text
            reg_id = re.search(r'id="demande-(\d+)"', queue.text)
            assert reg_id
            suggested = re.search(r'name="address" value="([^"]+)"', queue.text)
            assert suggested and suggested.group(1) == "helene.dupont@mssante.test"
            approved = await http.post(f"/admin/demandes/{reg_id.group(1)}/accepter",
                                       data={"csrf": csrf(queue.text),
                                             "address": suggested.group(1)})
            assert approved.status_code == 200, approved.text
            assert "helene.dupont@mssante.test est créée" in approved.text
        subject, body = last_mail_to(gw, USUAL)
        assert "certifié" in subject and "helene.dupont@mssante.test" in body

        address = "helene.dupont@mssante.test"
        async with portal(gw) as http:
            assert (await sign_in(gw, http, address, "Vx7#quarante", USUAL)
                    ).status_code == 303
            token = await form_token(http, "/compte")
            created = await http.post("/compte/mots-de-passe",
                                      data={"csrf": token, "label": "Thunderbird cabinet"})
            assert created.status_code == 200
            shown = re.search(r'<code id="new-password">([^<]+)</code>', created.text)
            assert shown
            password = shown.group(1)
            listing = await http.get("/compte")
            assert "Thunderbird cabinet" in listing.text and password not in listing.text

            result = await asyncio.to_thread(imap_login, imaps, gw.ca_file, address, password)
            assert result.startswith("OK 0"), result
            # the portal password is not a mail client password
            result = await asyncio.to_thread(imap_login, imaps, gw.ca_file, address,
                                             "Vx7#quarante")
            assert result.startswith("refused"), result

            listing = await http.get("/compte")
            assert "jamais" not in listing.text  # last use shown
            cred_id = re.search(r'/compte/mots-de-passe/(\d+)/revoquer', listing.text)
            assert cred_id
            revoked = await http.post(f"/compte/mots-de-passe/{cred_id.group(1)}/revoquer",
                                      data={"csrf": csrf(listing.text)})
            assert revoked.status_code == 200 and "est révoqué" in revoked.text
            result = await asyncio.to_thread(imap_login, imaps, gw.ca_file, address, password)
            assert result.startswith("refused"), result


@pytest.mark.parametrize("label", ["", "x" * 65])
async def test_application_password_names_are_checked(tmp_path: Path, label: str) -> None:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as gw:
        admin = await give_admin_portal_access(gw)
        async with portal(gw) as http:
            await sign_in(gw, http, admin, ADMIN_PASSWORD, ADMIN_USUAL)
            token = await form_token(http, "/compte")
            answer = await http.post("/compte/mots-de-passe", data={"csrf": token,
                                                                    "label": label})
    assert answer.status_code == 400
    assert "Donnez un nom" in answer.text or "64 caractères" in answer.text
