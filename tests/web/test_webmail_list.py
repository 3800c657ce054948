"""The webmail's frame and message list: the folder sidebar with unread counts, shared
mailboxes apart with their rights, the list's columns and its UID-cursor pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.webmail_client import Pro, folder_url, professional, send, signed_in
from web.webmail.folders import page_bounds


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


def mail(sender: Pro, to: Pro, subject: str, body: str = "Bonjour.\r\n",
         extra: str = "") -> bytes:
    return (f"From: {sender.address}\r\nTo: {to.address}\r\nSubject: {subject}\r\n"
            f"Date: Tue, 1 Dec 2026 10:00:00 +0100\r\n{extra}MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


def test_page_bounds_walk_the_uids_newest_first() -> None:
    uids = list(range(1, 121))
    assert page_bounds(uids, None, 50) == (70, 120, 71, None)
    assert page_bounds(uids, 71, 50) == (20, 70, 21, 0)
    assert page_bounds(uids, 21, 50) == (0, 20, None, 121 - 50)
    assert page_bounds([], None, 50) == (0, 0, None, None)


async def test_inbox_lists_messages_with_unread_count(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    for n in range(3):
        await send(gw, bob, [alice.address], mail(bob, alice, f"Compte rendu {n}"))
    async with signed_in(gw, alice) as http:
        home = await http.get("/courrier/")
        assert home.status_code == 303
        page = await http.get(home.headers["location"])
        assert page.status_code == 200, page.text
        assert 'aria-label="3 non lus"' in page.text
        assert page.text.index("Compte rendu 2") < page.text.index("Compte rendu 0")
        assert "3 messages" in page.text and bob.address in page.text
        assert "Boîtes partagées" not in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert await folder_url(http) == home.headers["location"]


async def test_signed_out_goes_to_login_and_other_ids_are_404(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    async with signed_in(gw, alice) as http:
        alice_inbox = await folder_url(http)
    async with signed_in(gw, bob) as http:
        other = await http.get(alice_inbox)
        assert other.status_code == 404 and "pas accessible" in other.text
        assert (await http.get("/courrier/dossier/999999")).status_code == 404
        http.cookies.clear()
        assert (await http.get(alice_inbox)).headers["location"] == "/connexion"
