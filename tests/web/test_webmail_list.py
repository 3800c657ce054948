"""The webmail's frame and message list: the folder sidebar with unread counts, shared
mailboxes apart with their rights, the list's columns and its UID-cursor pages."""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.webmail_client import Pro, folder_url, professional, send, signed_in
from web.webmail.folders import cursor_text, date_page, parse_cursor


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


def test_date_pages_walk_both_ways_by_key() -> None:
    sent = {u: 1000 - u for u in range(1, 121)}  # UID 120 was written first
    uids = sorted(sent, key=lambda u: (sent[u], u))

    def key(u: int) -> tuple[int, int]:
        return sent[u], u

    shown, first, older, newer = date_page(uids, key, None, True, 50)
    assert shown == list(range(1, 51)) and first == 1 and newer is None
    assert older == cursor_text(key(50)) == "950_50"
    shown, first, older, newer = date_page(uids, key, parse_cursor(older), True, 50)
    assert shown == list(range(51, 101)) and first == 51 and newer == ""
    shown, first, older, newer = date_page(uids, key, parse_cursor(older or ""), True, 50)
    assert shown == list(range(101, 121)) and first == 101 and older is None
    assert newer == cursor_text(key(50))  # the page before starts after UID 50: 51..100
    assert date_page(uids, key, parse_cursor(newer or ""), True, 50)[0] == list(range(51, 101))
    shown, first, older, newer = date_page(uids, key, None, False, 50)
    assert shown == list(range(120, 70, -1)) and first == 1 and newer is None
    shown, first, _older, newer = date_page(uids, key, parse_cursor(older or ""), False, 50)
    assert shown == list(range(70, 20, -1)) and first == 51 and newer == ""
    assert date_page([], key, None, True, 50) == ([], 1, None, None)
    assert parse_cursor("12") is None and parse_cursor("-5_3") == (-5, 3)


def _send_many(gw: RunningGateway, sender: Pro, to: Pro, raws: list[bytes]) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=gw.client_context(),
                          timeout=60) as smtp:
        smtp.login(sender.address, sender.app_password)
        for raw in raws:
            smtp.sendmail(sender.address, [to.address], raw)


def _dated(sender: Pro, to: Pro, subject: str, date: str) -> bytes:
    return (f"From: {sender.address}\r\nTo: {to.address}\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour.\r\n").encode()


def _subjects(html: str) -> list[str]:
    return re.findall(r'<td class="subject"><a href="[^"]+">([^<]+)</a>', html)


def _next(html: str, rel: str) -> str:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    assert match, html
    return match.group(1).replace("&amp;", "&")


async def test_list_in_date_order_with_stable_pages(gw: RunningGateway) -> None:
    """Messages delivered out of date order list by their Date field (RFC 5256 SORT DATE),
    newest first, oldest first on request; a message arriving between two pages shifts
    neither; the date shown is the Date field's."""
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    base = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    raws = []
    for n in range(53):
        rank = (n * 17) % 53  # delivery order is not date order
        raws.append(_dated(bob, alice, f"Note {rank:02d}",
                           format_datetime(base + timedelta(hours=rank))))
    raws.append(_dated(bob, alice, "Sans date lisible", "pas une date"))  # arrival: newest
    await asyncio.to_thread(_send_many, gw, bob, alice, raws)
    newest = [f"Note {r:02d}" for r in range(52, -1, -1)]
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        first = await http.get(inbox)
        assert first.status_code == 200, first.text
        assert _subjects(first.text) == ["Sans date lisible", *newest[:49]]
        assert "54 messages — 1 à 50" in first.text
        assert 'aria-sort="descending"' in first.text
        assert '<td class="date">03/11/2026 13:00</td>' in first.text  # Note 52, Paris time
        # A message dated among the first page's arrives: the next page does not shift.
        await asyncio.to_thread(_send_many, gw, bob, alice, [_dated(
            bob, alice, "Note 30 bis", format_datetime(base + timedelta(hours=30, minutes=5)))])
        second = await http.get(_next(first.text, "next"))
        assert _subjects(second.text) == newest[49:]
        assert "55 messages — 52 à 55" in second.text
        back = await http.get(_next(second.text, "prev"))
        assert _subjects(back.text) == [*newest[:22], "Note 30 bis", *newest[22:49]]
        oldest = await http.get(f"{inbox}?ordre=ancien")
        assert _subjects(oldest.text)[:3] == ["Note 00", "Note 01", "Note 02"]
        assert 'aria-sort="ascending"' in oldest.text
        later = await http.get(_next(oldest.text, "next"))
        assert "ordre=ancien" in _next(oldest.text, "next")
        assert _subjects(later.text)[-1] == "Sans date lisible"


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
