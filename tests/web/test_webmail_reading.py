"""Reading in the webmail: headers, text, attachments downloaded one by one with their
original bytes and never inline, every header in the details pane, \\Seen and the read proof
as an IMAP body fetch gives them, flags the same seen from IMAP and from the webmail, and
another account's ids answered 404."""

from __future__ import annotations

import asyncio
import imaplib
import re
import threading
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import imapclient
import pytest
from sqlalchemy import select

from storage import accounts as account_rows
from storage.schema import proofs
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway
from tests.web.portal_client import csrf
from tests.web.webmail_client import Pro, folder_url, professional, send, signed_in

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
XDM = b"PK\x03\x04" + bytes(reversed(range(256))) * 8


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = gateway_settings(tmp_path / "gw", directory={"enabled": False})
    async with running_gateway(settings) as running:
        yield running


def with_attachments(sender: Pro, to: Pro, subject: str = "Résultats d'analyse",
                     dnt: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Dr Bob <{sender.address}>"
    msg["To"] = to.address
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash(subject))}@mssante.test>"
    msg["X-MSS-CODECDA"] = "11502-2"
    if dnt:
        msg["Disposition-Notification-To"] = sender.address
    msg.set_content("Bonjour,\nles résultats sont joints.\n")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="résultats.pdf")
    msg.add_attachment(XDM, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return msg.as_bytes(policy=SMTP)


def imap_flags(gw: RunningGateway, pro: Pro, mailbox: str = "INBOX") -> dict[int, set[str]]:
    imaps = next(s for s in gw.gw.services if s.name == "IMAP").server.tls_port  # type: ignore[attr-defined]
    with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=gw.client_context()) as imap:
        imap.login(pro.address, pro.app_password)
        imap.select(mailbox, readonly=True)
        _typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
        out = {}
        for line in data:
            if not isinstance(line, bytes):
                continue
            m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line)
            if m:
                out[int(m.group(1))] = set(m.group(2).decode().split())
        return out


def imap_store(gw: RunningGateway, pro: Pro, uid: int, op: str, flag: str) -> None:
    imaps = next(s for s in gw.gw.services if s.name == "IMAP").server.tls_port  # type: ignore[attr-defined]
    with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=gw.client_context()) as imap:
        imap.login(pro.address, pro.app_password)
        imap.select("INBOX")
        imap.uid("STORE", str(uid), op, f"({flag})")


async def read_proofs(gw: RunningGateway) -> list[dict[str, object]]:
    assert gw.gw.db is not None
    async with gw.gw.db.read() as conn:
        rows = await conn.execute(select(proofs.c.kind, proofs.c.actor, proofs.c.details)
                                  .where(proofs.c.kind.in_(["read", "mdn-sent"]))
                                  .order_by(proofs.c.seq))
        return [{"kind": k, "actor": a, **(d if isinstance(d, dict) else __import__("json")
                                          .loads(d))} for k, a, d in rows]


async def test_read_a_message_and_download_its_attachments(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    await send(gw, bob, [alice.address], with_attachments(bob, alice))
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        listing = await http.get(inbox)
        assert "2 pièces jointes" in listing.text and "Résultats d&#39;analyse" in listing.text
        [link] = re.findall(r'href="(/courrier/dossier/\d+/message/\d+)"', listing.text)
        page = await http.get(link)
        assert page.status_code == 200, page.text
        assert "les résultats sont joints" in page.text
        assert "Dr Bob" in page.text and "X-MSS-CODECDA" in page.text and "11502-2" in page.text
        assert "Dossier médical IHE XDM" in page.text and "IHE_XDM.ZIP" in page.text
        pieces = re.findall(r'href="(/courrier/dossier/\d+/message/\d+/piece/[0-9.]+)"',
                            page.text)
        assert len(pieces) == 2
        pdf = await http.get(pieces[0])
        assert pdf.status_code == 200 and pdf.content == PDF
        assert pdf.headers["content-disposition"].startswith('attachment; filename="r')
        assert "filename*=UTF-8''r%C3%A9sultats.pdf" in pdf.headers["content-disposition"]
        assert pdf.headers["x-content-type-options"] == "nosniff"
        assert pdf.headers["content-type"] == "application/octet-stream"
        assert "sandbox" in pdf.headers["content-security-policy"]
        xdm = await http.get(pieces[1])
        assert xdm.content == XDM
        assert (await http.get(link + "/piece/9")).status_code == 404
        assert (await http.get(link + "/piece/..%2F1")).status_code == 404
        uid = int(link.rsplit("/", 1)[1])
    # \Seen set by the display, seen by IMAP; one read proof, observed as a webmail display
    flags = await asyncio.to_thread(imap_flags, gw, alice)
    assert "\\Seen" in flags[uid]
    [proof] = [p for p in await read_proofs(gw) if p["kind"] == "read"]
    assert proof["via"] == "webmail-display" and proof["actor"] == alice.address
    assert proof["client"] == "webmail" and proof["auth"] == "portal"
    # another account's ids: 404 for the message, the attachment and the actions
    async with signed_in(gw, bob) as http:
        assert (await http.get(link)).status_code == 404
        assert (await http.get(pieces[0])).status_code == 404
        token = csrf((await http.get("/courrier/", follow_redirects=True)).text)
        answer = await http.post(link + "/action", data={"csrf": token, "action": "supprimer"})
        assert answer.status_code == 404
    assert uid in await asyncio.to_thread(imap_flags, gw, alice)


async def test_flags_agree_between_imap_and_webmail_at_every_step(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    await send(gw, bob, [alice.address], with_attachments(bob, alice, "Premier"))
    await send(gw, bob, [alice.address], with_attachments(bob, alice, "Second"))

    async def web_state(http: object, inbox: str) -> dict[int, set[str]]:
        page = await http.get(inbox)  # type: ignore[attr-defined]
        out = {}
        for row in re.findall(r"<tr class=\"([^\"]*)\">(.*?)</tr>", page.text, re.S):
            uid = int(re.search(r"/message/(\d+)\"", row[1]).group(1))  # type: ignore[union-attr]
            flags = set()
            if "unseen" not in row[0].split():
                flags.add("\\Seen")
            if "flagged" in row[0].split():
                flags.add("\\Flagged")
            out[uid] = flags
        return out

    def relevant(state: dict[int, set[str]]) -> dict[int, set[str]]:
        return {u: f & {"\\Seen", "\\Flagged"} for u, f in state.items()}

    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        base = inbox + "/message/"

        async def agree() -> dict[int, set[str]]:
            web = await web_state(http, inbox)
            imap = relevant(await asyncio.to_thread(imap_flags, gw, alice))
            assert web == imap
            return web

        assert await agree() == {1: set(), 2: set()}
        assert (await http.head(base + "1")).status_code == 200  # shows nothing: unread
        assert await agree() == {1: set(), 2: set()}
        await http.get(base + "1")  # read in the webmail
        assert await agree() == {1: {"\\Seen"}, 2: set()}
        await asyncio.to_thread(imap_store, gw, alice, 2, "+FLAGS", "\\Seen \\Flagged")
        assert await agree() == {1: {"\\Seen"}, 2: {"\\Seen", "\\Flagged"}}
        page = await http.get(base + "2")
        assert "Retirer le suivi" in page.text
        await http.post(base + "2/action", data={"csrf": csrf(page.text), "action": "non-suivi"})
        await http.post(base + "2/action", data={"csrf": csrf(page.text), "action": "non-lu"})
        assert await agree() == {1: {"\\Seen"}, 2: set()}
        await asyncio.to_thread(imap_store, gw, alice, 1, "-FLAGS", "\\Seen")
        assert await agree() == {1: set(), 2: set()}
        assert 'aria-label="2 non lus"' in (await http.get(inbox)).text
        # Trash, then deleted for good from the Trash
        page = await http.get(base + "1")
        # the page that sets \Seen counts it already in the sidebar
        assert 'aria-label="1 non lus"' in page.text
        answer = await http.post(base + "1/action", data={"csrf": csrf(page.text),
                                                          "action": "corbeille"})
        assert answer.status_code == 303
        assert await agree() == {2: set()}
        trash = await folder_url(http, "Corbeille")
        [link] = re.findall(r'href="(/courrier/dossier/\d+/message/\d+)"',
                            (await http.get(trash)).text)
        page = await http.get(link)
        assert "Supprimer définitivement" in page.text
        await http.post(link + "/action", data={"csrf": csrf(page.text), "action": "supprimer"})
        assert await asyncio.to_thread(imap_flags, gw, alice, "Trash") == {}


async def test_webmail_display_sends_the_displayed_receipt_once(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    assert gw.gw.db is not None
    async with gw.gw.db.begin() as conn:
        account = await account_rows.get_by_address(conn, alice.address)
        assert account is not None
        await account_rows.update_fields(conn, account.id, mdn_policy="always")
    await send(gw, bob, [alice.address], with_attachments(bob, alice, "Avec accusé", dnt=True))
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        await http.get(inbox + "/message/1")
        await http.get(inbox + "/message/1")
    kinds = [(p["kind"], p.get("via")) for p in await read_proofs(gw)]
    assert kinds == [("read", "webmail-display"), ("mdn-sent", None)]
    async with signed_in(gw, bob) as http:
        listing = await http.get(await folder_url(http))
        assert "Read: Avec accusé" in listing.text


def idle_until_seen(gw: RunningGateway, pro: Pro, ready: threading.Event) -> list[object]:
    """An IMAP IDLE session on INBOX; the untagged responses up to a FETCH with \\Seen."""
    imaps = next(s for s in gw.gw.services if s.name == "IMAP").server.tls_port  # type: ignore[attr-defined]
    client = imapclient.IMAPClient("127.0.0.1", port=imaps, ssl=True,
                                   ssl_context=gw.client_context(), timeout=30)
    client.login(pro.address, pro.app_password)
    client.select_folder("INBOX")
    client.idle()
    ready.set()
    got: list[object] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got += client.idle_check(timeout=1)
        if any(b"FETCH" in repr(r).encode() and "Seen" in repr(r) for r in got):
            break
    client.idle_done()
    client.logout()
    return got


async def test_an_idle_imap_session_hears_the_webmail_reading(gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    await send(gw, bob, [alice.address], with_attachments(bob, alice, "Pendant IDLE"))
    ready = threading.Event()
    idle = asyncio.ensure_future(asyncio.to_thread(idle_until_seen, gw, alice, ready))
    assert await asyncio.to_thread(ready.wait, 30)
    await asyncio.sleep(0.3)  # the IDLE command is on its way to the server
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        assert (await http.get(inbox + "/message/1")).status_code == 200
    got = await idle
    assert any("FETCH" in repr(r) and "Seen" in repr(r) for r in got), got


async def test_a_large_message_shows_its_text_without_reading_the_attachment(
        gw: RunningGateway) -> None:
    alice = await professional(gw, "alice")
    bob = await professional(gw, "bob")
    scan = bytes(range(256)) * (3 * 4096)  # 3 MiB
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = bob.address, alice.address, "Scanner joint"
    msg.set_content("Version texte.\n")
    msg.add_alternative("<p>Lettre <b>jointe</b> <script>alert(1)</script></p>", subtype="html")
    msg.add_attachment(scan, maintype="image", subtype="tiff", filename="scan.tiff")
    await send(gw, bob, [alice.address], msg.as_bytes(policy=SMTP))
    async with signed_in(gw, alice) as http:
        inbox = await folder_url(http)
        page = await http.get(inbox + "/message/1")
        assert page.status_code == 200
        assert "<b>jointe</b>" in page.text and "<script>alert" not in page.text
        assert "Scanner joint" in page.text and "scan.tiff" in page.text
        [piece] = re.findall(r'href="(/courrier/dossier/\d+/message/1/piece/[0-9.]+)"',
                             page.text)
        assert (await http.get(piece)).content == scan
