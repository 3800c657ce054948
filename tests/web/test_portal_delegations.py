"""A nominative mailbox's holder delegates from « Mon compte »: read, read-write, send-as;
changes; revokes; sees what the delegate did (readings and sendings from the ledger).
And the recent connections of every protocol on the same page."""

from __future__ import annotations

import asyncio
import imaplib
import json
import smtplib
import ssl
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import portal, sign_in
from tests.web.test_portal_admin_accounts import said
from tests.web.test_portal_mailboxes import DOCTOR_PW, SECRETARY_PW, person, post


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


def imaps(gw: RunningGateway) -> imaplib.IMAP4_SSL:
    port = next(int(s.server.tls_port) for s in gw.gw.services  # type: ignore[attr-defined]
                if s.name == "IMAP")
    return imaplib.IMAP4_SSL("127.0.0.1", port, timeout=30,
                             ssl_context=ssl.create_default_context(cafile=str(gw.ca_file)))


def send(gw: RunningGateway, login: str, password: str, author: str, to: str,
         subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = author, to, subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@mssante.test>"
    msg.set_content("Bonjour.\n")
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port,
                          context=ssl.create_default_context(cafile=str(gw.ca_file))) as s:
        s.login(login, password)
        s.send_message(msg, from_addr=author, to_addrs=[to])


def read_shared(gw: RunningGateway, login: str, password: str, owner: str) -> bytes:
    with imaps(gw) as imap:
        imap.login(login, password)
        typ, _ = imap.select(f'"Shared/{owner}/INBOX"')
        assert typ == "OK"
        typ, data = imap.fetch("1", "(BODY[])")
        assert typ == "OK"
        return bytes(data[0][1])  # type: ignore[index]


async def test_holder_grants_changes_revokes_and_sees_uses(gw: RunningGateway) -> None:
    doctor, _doc_app, doctor_usual = await person(gw, "dr.roux", DOCTOR_PW)
    secretary, sec_app, _sec_usual = await person(gw, "anne.secretaire", SECRETARY_PW)
    await asyncio.to_thread(send, gw, gw.demo_address, gw.demo_password, gw.demo_address,
                            doctor, "resultats labo")
    async with portal(gw) as http:
        await sign_in(gw, http, doctor, DOCTOR_PW, doctor_usual)
        answer = await post(http, "/compte/delegations", tiers=secretary, niveau="lecture")
        assert answer.status_code == 200
        assert f"{secretary} a accès à votre boîte en lecture." in said(answer)
        body = await asyncio.to_thread(read_shared, gw, secretary, sec_app, doctor)
        assert b"resultats labo" in body
        with pytest.raises(smtplib.SMTPSenderRefused):  # not yet allowed to send as
            await asyncio.to_thread(send, gw, secretary, sec_app, doctor,
                                    gw.demo_address, "essai")
        answer = await post(http, "/compte/delegations", tiers=secretary,
                            niveau="lecture-ecriture", envoi="oui")
        assert answer.status_code == 200 and "et peut envoyer en votre nom." in said(answer)
        await asyncio.sleep(1.2)  # the access version is read once a second
        await asyncio.to_thread(send, gw, secretary, sec_app, doctor, gw.demo_address,
                                "ordonnance envoyee")
        page = await http.get("/compte")
        uses = said(page).split('id="utilisations"')[1].split("</table>")[0]
        assert "a lu" in uses and "&lt;resultats-labo@mssante.test&gt;" in page.text
        assert "a envoyé en votre nom" in uses and secretary in uses

        answer = await post(http, "/compte/delegations/retirer", tiers=secretary)
        assert answer.status_code == 200 and "n'a plus accès à votre boîte" in said(answer)
        # refusals
        for data, status, words in (
            ({"tiers": "nobody@mssante.test", "niveau": "lecture"}, 400,
             "L'adresse 'nobody@mssante.test' n'a pas de boîte ici."),
            ({"tiers": doctor, "niveau": "lecture"}, 400,
             "Vous ne pouvez pas vous déléguer votre propre boîte."),
            ({"tiers": secretary, "niveau": "gestion"}, 400,
             "Niveau d'accès 'gestion' inconnu : choisissez parmi lecture, "
             "lecture-ecriture."),
        ):
            answer = await post(http, "/compte/delegations", **data)
            assert answer.status_code == status and words in said(answer), said(answer)[:2000]
        answer = await post(http, "/compte/delegations/retirer", tiers=secretary)
        assert answer.status_code == 400
        assert f"'{secretary}' n'a pas d'accès à votre boîte." in said(answer)
        answer = await http.post("/compte/delegations",
                                 data={"tiers": secretary, "niveau": "lecture"})
        assert answer.status_code == 403

    story = [(p["kind"], p["actor"], json.loads(p["details"]).get("delegate")) for p in
             await gw.proofs_for(f"account:{doctor}") if p["kind"].startswith("delegation")]
    assert story == [("delegation-granted", doctor, secretary),
                     ("delegation-changed", doctor, secretary),
                     ("delegation-revoked", doctor, secretary)]
    with pytest.raises(AssertionError):
        await asyncio.to_thread(read_shared, gw, secretary, sec_app, doctor)


async def test_recent_connections_of_every_protocol(gw: RunningGateway) -> None:
    doctor, doc_app, doctor_usual = await person(gw, "dr.vigilant", DOCTOR_PW)

    def imap_attempts() -> None:
        with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=ssl.create_default_context(
                cafile=str(gw.ca_file))) as s:
            s.login(doctor, doc_app)
        with imaps(gw) as imap, pytest.raises(imaplib.IMAP4.error):
            imap.login(doctor, "faux-mot-de-passe")
        with imaps(gw) as imap:
            imap.login(doctor, doc_app)
    await asyncio.to_thread(imap_attempts)
    async with portal(gw) as http:
        await sign_in(gw, http, doctor, DOCTOR_PW, doctor_usual)
        assert gw.gw.authenticator is not None
        await gw.gw.authenticator.traces.flush()
        page = await http.get("/compte")
    rows = said(page).split('id="connexions"')[1].split("</table>")[0]
    lines = [line for line in rows.split("<tr") if "<td>" in line]
    assert len(lines) == 5, rows
    assert "portail" in lines[0] and "code à usage unique" in lines[0] and "réussie" in lines[0]
    assert "portail" in lines[1] and "mot de passe du portail" in lines[1]
    assert "IMAP" in lines[2] and "réussie" in lines[2]
    assert "IMAP" in lines[3] and "échec (mot de passe erroné)" in lines[3]
    assert "127.0.0.1" in lines[3]
    assert "SMTP" in lines[4] and "mot de passe d'application" in lines[4]
    assert gw.demo_address not in rows
