"""Folder management and delegation in the webmail: create, rename, delete through the store
with the IMAP server's rules (INBOX and the special folders stay), seen at once over IMAP;
a secretary with read-only rights on a doctor's INBOX reads it and is offered no action
that needs a right she does not hold."""

from __future__ import annotations

import asyncio
import imaplib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from accounts import delegations
from storage.accounts import get_by_address
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import csrf
from tests.web.test_webmail_reading import read_proofs, with_attachments
from tests.web.webmail_client import Pro, folder_url, professional, send, signed_in


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


def imap_folders(gw: RunningGateway, pro: Pro) -> list[str]:
    imaps = next(s for s in gw.gw.services if s.name == "IMAP").server.tls_port  # type: ignore[attr-defined]
    with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=gw.client_context()) as imap:
        imap.login(pro.address, pro.app_password)
        _typ, data = imap.list()
        return sorted(line.decode().rsplit(' "/" ', 1)[1].strip('"')
                      for line in data if isinstance(line, bytes))


async def test_create_rename_delete_folders(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    async with signed_in(gw, alice) as http:
        page = await http.get("/courrier/dossiers")
        assert page.status_code == 200 and "Dossier du système" in page.text
        token = csrf(page.text)
        made = await http.post("/courrier/dossiers/creer", data={"csrf": token,
                                                                 "name": "Patients", "parent": ""})
        assert made.status_code == 303
        made = await http.post("/courrier/dossiers/creer", data={
            "csrf": token, "name": "Dupont", "parent": "Patients"})
        assert made.status_code == 303
        assert "Patients/Dupont" in await asyncio.to_thread(imap_folders, gw, alice)
        refusals = {
            "INBOX": "réservés à la boîte de réception",
            "Shared": "réservé aux boîtes partagées",
            "a%b": "ni % ni *",
            "Patients": "existe déjà",
            "": "de 1 à 200 caractères",
        }
        for name, words in refusals.items():
            answer = await http.post("/courrier/dossiers/creer", data={
                "csrf": token, "name": name, "parent": ""})
            assert answer.status_code == 400 and words in answer.text, name
        page = await http.get("/courrier/dossiers")
        ids = dict((n, int(i)) for i, n in re.findall(
            r'id="rename-(\d+)" name="name" value="([^"]+)"', page.text))
        renamed = await http.post(f"/courrier/dossiers/{ids['Patients/Dupont']}/renommer",
                                  data={"csrf": token, "name": "Patients/Durand"})
        assert renamed.status_code == 303
        assert "Patients/Durand" in await asyncio.to_thread(imap_folders, gw, alice)
        refused = await http.post(f"/courrier/dossiers/{ids['Patients']}/supprimer",
                                  data={"csrf": token})
        assert refused.status_code == 400 and "sous-dossiers" in refused.text
        # INBOX and the special folders have no form, and a forged request is refused
        inbox_id = int((await folder_url(http)).rsplit("/", 1)[1])
        for verb in ("supprimer", "renommer"):
            answer = await http.post(f"/courrier/dossiers/{inbox_id}/{verb}",
                                     data={"csrf": token, "name": "Autre"})
            assert answer.status_code == 400 and "On ne peut pas" in answer.text
        gone = await http.post(f"/courrier/dossiers/{ids['Patients/Dupont']}/supprimer",
                               data={"csrf": token})
        assert gone.status_code == 303
        no_csrf = await http.post(f"/courrier/dossiers/{ids['Patients']}/supprimer", data={})
        assert no_csrf.status_code == 403
    folders = await asyncio.to_thread(imap_folders, gw, alice)
    assert "Patients/Durand" not in folders and "Patients" in folders and "INBOX" in folders


async def test_read_only_secretary_reads_the_doctors_inbox(gw: RunningGateway) -> None:
    doctor = await professional(gw, "doctor")
    secretary = await professional(gw, "secretary")
    bob = await professional(gw, "bob")
    assert gw.gw.db is not None
    await delegations.grant(gw.gw.db, doctor.address, secretary.address, "lrs")
    await send(gw, bob, [doctor.address], with_attachments(bob, doctor, "Pour le docteur"))
    async with signed_in(gw, secretary) as http:
        home = (await http.get("/courrier/", follow_redirects=True)).text
        assert "Boîtes partagées" in home and doctor.address in home
        assert "Vos droits : voir, lire, marquer lu" in home
        shared_inbox = re.search(
            rf'{re.escape(doctor.address)}</h3>.*?href="(/courrier/dossier/\d+)"', home,
            re.S)
        assert shared_inbox
        listing = await http.get(shared_inbox.group(1))
        assert "Pour le docteur" in listing.text and 'aria-label="1 non lus"' in listing.text
        page = await http.get(shared_inbox.group(1) + "/message/1")
        assert page.status_code == 200 and "Boîte de " + doctor.address in page.text
        for absent in ("Mettre à la corbeille", "Supprimer définitivement", "Déplacer",
                       "Suivre", "Nouveau message", "Répondre"):
            assert absent not in page.text, absent
        assert "Marquer comme non lu" in page.text
        answer = await http.post(shared_inbox.group(1) + "/message/1/action",
                                 data={"csrf": csrf(page.text), "action": "supprimer"})
        assert answer.status_code == 403 and "ce droit ne vous est pas accordé" in answer.text
        manage = await http.get("/courrier/dossiers")
        assert doctor.address not in re.sub(r"<nav.*?</nav>", "", manage.text, flags=re.S)
    [proof] = [p for p in await read_proofs(gw) if p["kind"] == "read"]
    assert proof["actor"] == secretary.address and proof["mailbox"] == doctor.address


async def test_delegation_changes_show_at_the_next_page(gw: RunningGateway) -> None:
    """What a delegation reaches is kept between pages only while the access version stays:
    a folder the owner creates shows at the next page, a withdrawn delegation closes the
    next page (404), a new grant opens it again."""
    doctor = await professional(gw, "doctor")
    secretary = await professional(gw, "secretary")
    db = gw.gw.db
    assert db is not None
    await delegations.grant(db, doctor.address, secretary.address, "lr")
    async with signed_in(gw, secretary) as http:
        home = (await http.get("/courrier/", follow_redirects=True)).text
        shared_inbox = re.search(
            rf'{re.escape(doctor.address)}</h3>.*?href="(/courrier/dossier/\d+)"', home, re.S)
        assert shared_inbox
        assert (await http.get(shared_inbox.group(1))).status_code == 200
        store = next(s for s in gw.gw.services if s.name == "IMAP").context.store  # type: ignore[attr-defined]
        async with db.read() as conn:
            owner = await get_by_address(conn, doctor.address)
        assert owner is not None
        await store.create_folder(owner.id, "Dossiers patients")
        again = await http.get(shared_inbox.group(1))
        assert again.status_code == 200 and "Dossiers patients" in again.text
        await delegations.revoke(db, doctor.address, secretary.address)
        closed = await http.get(shared_inbox.group(1))
        assert closed.status_code == 404 and doctor.address not in closed.text
        await delegations.grant(db, doctor.address, secretary.address, "lr")
        assert (await http.get(shared_inbox.group(1))).status_code == 200
