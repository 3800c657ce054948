"""Searching in the webmail: sender, recipient, subject, body text, date range, attachments,
unread — server-side through the IMAP server's SEARCH code, so the webmail and an IMAP
client find the same messages."""

from __future__ import annotations

import asyncio
import imaplib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.test_webmail_reading import with_attachments
from tests.web.webmail_client import Pro, folder_url, professional, send, signed_in


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


def plain(sender: Pro, to: Pro, subject: str, body: str, cc: str = "") -> bytes:
    return (f"From: {sender.address}\r\nTo: {to.address}\r\n{cc}Subject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


def imap_search(gw: RunningGateway, pro: Pro, *criteria: str) -> list[int]:
    imaps = next(s for s in gw.gw.services if s.name == "IMAP").server.tls_port  # type: ignore[attr-defined]
    with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=gw.client_context()) as imap:
        imap.login(pro.address, pro.app_password)
        imap.select("INBOX", readonly=True)
        _typ, data = imap.uid("SEARCH", "CHARSET", "UTF-8", *criteria)
        return sorted(int(u) for u in data[0].split())


async def found(http: httpx.AsyncClient, inbox: str, **params: str) -> list[int]:
    page = await http.get(inbox + "/recherche", params=params)
    assert page.status_code == 200, page.text
    return sorted(int(u) for u in re.findall(r'href="/courrier/dossier/\d+/message/(\d+)"',
                                             page.text))


async def test_search_fields_find_what_imap_search_finds(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    carol = await professional(gw, "carol")
    await send(gw, bob, [alice.address], plain(bob, alice, "Bilan sanguin", "glycémie normale"))
    await send(gw, carol, [alice.address], plain(carol, alice, "Radio du genou",
                                                 "pas de fracture",
                                                 cc=f"Cc: {bob.address}\r\n"))
    await send(gw, bob, [alice.address], with_attachments(bob, alice, "Compte rendu joint"))
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        await http.get(inbox + "/message/1")  # read: the others stay unread
        cases = [
            ({"de": "carol"}, ("FROM", "carol")),
            ({"a": bob.address}, ("OR", "TO", bob.address, "CC", bob.address)),
            ({"objet": "genou"}, ("SUBJECT", "genou")),
            ({"texte": "normale"}, ("BODY", "normale")),
            ({"non_lus": "1"}, ("UNSEEN",)),
            ({"de": "bob", "non_lus": "1"}, ("FROM", "bob", "UNSEEN")),
        ]
        for params, imap in cases:
            web = await found(http, inbox, **params)
            assert web == await asyncio.to_thread(imap_search, gw, alice, *imap), params
        assert await found(http, inbox, objet="genou") == [2]
        assert await found(http, inbox, texte="glycémie") == [1]
        assert await found(http, inbox, pj="1") == [3]
        assert await found(http, inbox, du="2000-01-01", au="2099-12-31") == [1, 2, 3]
        assert await found(http, inbox, au="2000-01-01") == []
        assert await found(http, inbox, objet="introuvable") == []
        empty = await http.get(inbox + "/recherche", params={"objet": "introuvable"})
        assert "Aucun message ne correspond" in empty.text
        bad = await http.get(inbox + "/recherche", params={"du": "31/12/2026"})
        assert bad.status_code == 400 and "AAAA-MM-JJ" in bad.text
        reversed_range = await http.get(inbox + "/recherche",
                                        params={"du": "2026-12-02", "au": "2026-12-01"})
        assert reversed_range.status_code == 400 and "précède" in reversed_range.text
    async with signed_in(gw, bob) as http:  # another account's folder: 404
        assert (await http.get(inbox + "/recherche", params={"objet": "x"})).status_code == 404
