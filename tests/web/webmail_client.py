"""Webmail test helpers: professionals with a portal password, signed in over HTTPS like a
browser (password, then the code from the outbox), and mail delivered through SMTP
submission."""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from accounts.portal_password import set_portal_password
from tests.fixtures.gateway import RunningGateway
from tests.web.portal_client import portal, sign_in

PORTAL_PASSWORD = "Bl3u-Marine!"  # noqa: S105 - test value


@dataclass(frozen=True)
class Pro:
    address: str
    app_password: str
    usual: str


async def professional(gw: RunningGateway, local: str, **kwargs: object) -> Pro:
    """A mailbox with an application password (SMTP, IMAP) and a portal password."""
    address, app_password = await gw.add_mailbox(local, **kwargs)
    usual = f"{local}.perso@exemple.fr"
    assert gw.gw.db is not None
    await set_portal_password(gw.gw.db, address, PORTAL_PASSWORD, usual)
    return Pro(address, app_password, usual)


@asynccontextmanager
async def signed_in(gw: RunningGateway, pro: Pro) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTPS client holding a signed-in session of ``pro``."""
    async with portal(gw) as http:
        answer = await sign_in(gw, http, pro.address, PORTAL_PASSWORD, pro.usual)
        assert answer.status_code == 303, answer.text
        yield http


def _send(gw: RunningGateway, sender: Pro, to: list[str], raw: bytes) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=gw.client_context(),
                          timeout=30) as smtp:
        smtp.login(sender.address, sender.app_password)
        smtp.sendmail(sender.address, to, raw)


async def send(gw: RunningGateway, sender: Pro, to: list[str], raw: bytes) -> None:
    """Submits ``raw`` through SMTP submission (implicit TLS) and waits for the local
    delivery."""
    await asyncio.to_thread(_send, gw, sender, to, raw)


def links(html: str, pattern: str) -> list[str]:
    return re.findall(rf'href="({pattern})"', html)


async def folder_url(http: httpx.AsyncClient, name: str = "Boîte de réception") -> str:
    """The list URL of a folder of the sidebar, by its French label."""
    home = await http.get("/courrier/", follow_redirects=True)
    assert home.status_code == 200, home.text
    match = re.search(r'<a href="(/courrier/dossier/\d+)"[^>]*>\s*<span class="name">'
                      + re.escape(name) + "<", home.text)
    assert match, home.text
    return match.group(1)
