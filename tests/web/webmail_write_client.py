"""Talking to the webmail of a running gateway as a browser would: sign-in with password +
code from the outbox, then the compose form posted as multipart/form-data."""

from __future__ import annotations

import imaplib
import re
import ssl
from typing import Any

import httpx

from accounts.portal_password import set_portal_password
from tests.fixtures.gateway import RunningGateway
from tests.web.portal_client import csrf, portal, sign_in

PORTAL_PASSWORD = "Tr3s-Secret!ok"  # noqa: S105 - test value


async def signed_in(gw: RunningGateway, local: str, **kwargs: Any
                    ) -> tuple[httpx.AsyncClient, str, str]:
    """A new mailbox ``local@…`` signed in on the portal; (client, address, app password)."""
    address, app_password = await gw.add_mailbox(local, **kwargs)
    usual = f"{local}.perso@exemple.fr"
    assert gw.gw.db is not None
    await set_portal_password(gw.gw.db, address, PORTAL_PASSWORD, usual)
    http = portal(gw)
    answer = await sign_in(gw, http, address, PORTAL_PASSWORD, usual)
    assert answer.status_code == 303, answer.text
    return http, address, app_password


async def compose(http: httpx.AsyncClient, *, files: list[tuple[str, bytes, str]] = (),
                  query: str = "", **fields: str) -> httpx.Response:
    """Opens the compose page (for its CSRF token), then posts the form with ``files``."""
    page = await http.get("/courrier/ecrire" + query)
    assert page.status_code == 200, page.text
    data = {"csrf": csrf(page.text), "action": "envoyer", **fields}
    data.setdefault("boite", re.search(r'name="boite" value="([^"]+)"', page.text).group(1)
                    if 'name="boite" value=' in page.text else "")
    upload = [("pieces", f) for f in files] or None
    return await http.post("/courrier/ecrire", data=data, files=upload)


def imap_fetch_all(gw: RunningGateway, address: str, password: str) -> list[bytes]:
    """Every INBOX message of ``address`` fetched with BODY[] (a reading, as a client does)."""
    imaps = next(int(s.server.tls_port) for s in gw.gw.services  # type: ignore[attr-defined]
                 if s.name == "IMAP")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=30) as imap:
        imap.login(address, password)
        imap.select("INBOX")
        _status, data = imap.uid("SEARCH", "ALL")
        out = []
        for uid in data[0].split():
            _s, parts = imap.uid("FETCH", uid, "(BODY[])")
            out.append(parts[0][1])
        imap.logout()
    return out


async def folder_raw(gw: RunningGateway, address: str, folder: str) -> list[tuple[str, bytes]]:
    """(flags, stored bytes) of every live message of ``folder`` of ``address``."""
    from sqlalchemy import select

    from storage.schema import accounts, folder_messages, folders, messages

    db = gw.gw.db
    assert db is not None
    async with db.read() as conn:
        rows = (await conn.execute(
            select(folder_messages.c.flags, messages.c.blob_id, messages.c.size)
            .join(messages, messages.c.id == folder_messages.c.message_id)
            .join(folders, folders.c.id == folder_messages.c.folder_id)
            .join(accounts, accounts.c.id == folders.c.account_id)
            .where(accounts.c.address == address, folders.c.name == folder,
                   folder_messages.c.expunged_modseq.is_(None))
            .order_by(folder_messages.c.uid))).all()
        return [(str(r.flags), await db.blobs.read(conn, int(r.blob_id), 0, int(r.size)))
                for r in rows]


async def folder_id(gw: RunningGateway, address: str, folder: str) -> int:
    """The id of ``folder`` of ``address`` (as the webmail's URLs name it)."""
    from storage import accounts as account_rows
    from storage import folders as folder_rows

    db = gw.gw.db
    assert db is not None
    async with db.read() as conn:
        account = await account_rows.get_by_address(conn, address)
        assert account is not None
        found = await folder_rows.get(conn, account.id, folder)
    assert found is not None
    return int(found.id)
