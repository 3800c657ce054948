"""RFC 8474 OBJECTID, RFC 8970 PREVIEW and RFC 8440 LIST-MYRIGHTS on the real server,
sent as raw commands (:class:`tests.imap.rfc_wire.Wire`), answers written from the RFCs."""

from __future__ import annotations

import asyncio
import base64
import re

from accounts import delegations
from accounts.mailboxes import add_mailbox
from tests.fixtures.imap import ALICE, ImapEnv, message
from tests.imap.rfc_wire import Wire

_MAILBOXID = re.compile(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)")
_EMAILID = re.compile(rb"EMAILID \(([A-Za-z0-9_-]+)\)")


def _mailboxid(data: bytes) -> bytes:
    m = _MAILBOXID.search(data)
    assert m is not None, data
    return m.group(1)


def _emailids(lines: list[bytes]) -> list[bytes]:
    return [m.group(1) for line in lines if (m := _EMAILID.search(line))]


async def test_mailboxid_create_status_select_rename(imap_env: ImapEnv) -> None:
    """RFC 8474 §4.1: CREATE answers ``OK [MAILBOXID (id)]``; SELECT/EXAMINE send it as an
    untagged OK and STATUS (MAILBOXID) gives it (§4.2); it survives RENAME; a mailbox
    deleted and created again under the same name gets another one; RENAME of INBOX
    leaves INBOX its id and gives the new mailbox a new one."""

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" OBJECTID" in lines[0]
        status, _ = w.cmd("CREATE Dossiers")
        assert status == "OK"
        created = _mailboxid(w.last_tagged)
        assert re.fullmatch(rb"[A-Za-z0-9_-]{1,255}", created)
        _, lines = w.cmd("STATUS Dossiers (MESSAGES MAILBOXID)")
        assert lines == [b"* STATUS Dossiers (MESSAGES 0 MAILBOXID (%s))" % created], lines
        _, lines = w.cmd("EXAMINE Dossiers")
        assert b"* OK [MAILBOXID (%s)] Mailbox id" % created in lines, lines
        w.cmd("UNSELECT")
        assert w.cmd("RENAME Dossiers Archives2025")[0] == "OK"
        _, lines = w.cmd("STATUS Archives2025 (MAILBOXID)")
        assert _mailboxid(lines[0]) == created
        assert w.cmd("DELETE Archives2025")[0] == "OK"
        w.cmd("CREATE Archives2025")
        assert _mailboxid(w.last_tagged) != created
        _, lines = w.cmd("STATUS INBOX (MAILBOXID)")
        inbox = _mailboxid(lines[0])
        assert w.cmd("RENAME INBOX Ancien")[0] == "OK"
        _, lines = w.cmd("STATUS INBOX (MAILBOXID)")
        assert _mailboxid(lines[0]) == inbox
        _, lines = w.cmd("STATUS Ancien (MAILBOXID)")
        assert _mailboxid(lines[0]) not in (inbox, created)
        # LIST-STATUS (RFC 5819) carries it too.
        _, lines = w.cmd('LIST "" "Ancien" RETURN (STATUS (MAILBOXID))')
        assert lines[1].startswith(b"* STATUS Ancien (MAILBOXID ("), lines
        w.close()

    await asyncio.to_thread(run)


async def test_emailid_threadid_and_search(imap_env: ImapEnv) -> None:
    """RFC 8474 §5.1: EMAILID differs between messages and is the same for a COPY of a
    message (and after MOVE); §5.2: THREADID is NIL without threads; §6: SEARCH EMAILID
    finds the message, SEARCH THREADID finds none; an id with other characters is BAD."""
    for n in range(1, 4):
        await imap_env.deliver(message(n))

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        status, lines = w.cmd("FETCH 1:3 (EMAILID THREADID)")
        assert status == "OK"
        ids = _emailids(lines)
        assert len(set(ids)) == 3, lines
        assert all(b"THREADID NIL" in line for line in lines), lines
        assert w.cmd("COPY 2 Drafts")[0] == "OK"
        assert w.cmd("MOVE 3 Archive")[0] == "OK"
        status, lines = w.cmd(b"SEARCH EMAILID " + ids[1])
        assert lines == [b"* SEARCH 2"], lines
        _, lines = w.cmd("SEARCH THREADID T1")
        assert lines == [b"* SEARCH"], lines
        status, _ = w.cmd('SEARCH EMAILID "M1"')
        assert status == "BAD"
        status, _ = w.cmd("SEARCH EMAILID M1.5")
        assert status == "BAD"
        w.cmd("SELECT Drafts")
        _, lines = w.cmd("UID FETCH 1:* (EMAILID)")
        assert _emailids(lines) == [ids[1]], lines
        w.cmd("SELECT Archive")
        _, lines = w.cmd("FETCH 1 (EMAILID)")
        assert _emailids(lines) == [ids[2]], lines
        w.close()

    await asyncio.to_thread(run)


_LATIN1_QP = (
    b"From: Dr Bob <bob@mssante.test>\r\nTo: alice@mssante.test\r\nSubject: CR\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Bonjour,\r\n\r\nLe r=E9sultat   de l'=E9chographie est   normal.=\r\n"
    b" Cordialement.\r\n")
_HTML_ALTERNATIVE = (
    "From: bob@mssante.test\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=out\r\n\r\n--out\r\n"
    "Content-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\n"
    "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(
        "<html><head><title>t</title><style>p{}</style></head><body><p>Rendez-vous "
        "<b>confirmé</b></p><p>à 10h</p></body></html>".encode()).decode().replace("\n", "\r\n")
    + "--in--\r\n--out\r\nContent-Type: message/rfc822\r\n\r\n"
    "Subject: inner\r\nContent-Type: text/plain\r\n\r\nnot this one\r\n--out--\r\n").encode()
_ATTACHMENT_ONLY = (
    b"From: bob@mssante.test\r\nSubject: pdf\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQK\r\n")


async def test_preview_from_the_first_text_part(imap_env: ImapEnv) -> None:
    """RFC 8970 §3: PREVIEW is plain text from the message's content, at most 256
    characters (§3.2); here the first text part, transfer-decoded and charset-decoded,
    white space folded; text/html without its markup when there is no text/plain (an
    attached message's text is not the message's); "" without any text part. ``PREVIEW
    (LAZY)`` (§3.1) gets the same answer, since it is always available here. Before
    UTF8=ACCEPT, 8-bit text goes in a literal (RFC 9051 §4.3)."""
    await imap_env.deliver(_LATIN1_QP)
    await imap_env.deliver(_HTML_ALTERNATIVE)
    await imap_env.deliver(_ATTACHMENT_ONLY)
    await imap_env.deliver(message(4, body="Lorem ipsum dolor. " * 40))

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" PREVIEW" in lines[0]
        w.cmd("SELECT INBOX")
        status, lines = w.cmd("FETCH 1:4 (PREVIEW)")
        assert status == "OK", w.last_tagged
        expected = "Bonjour, Le résultat de l'échographie est normal. Cordialement.".encode()
        assert lines[0] == b"* 1 FETCH (PREVIEW {%d}\r\n%s)" % (len(expected), expected), \
            lines[0]
        html = "Rendez-vous confirmé à 10h".encode()
        assert lines[1] == b"* 2 FETCH (PREVIEW {%d}\r\n%s)" % (len(html), html), lines[1]
        assert lines[2] == b'* 3 FETCH (PREVIEW "")', lines[2]
        long = lines[3].split(b'"')[1]
        assert len(long) == 256 and long.startswith(b"Lorem ipsum dolor. Lorem"), lines[3]
        status, lazy = w.cmd("FETCH 1:4 (PREVIEW (LAZY))")
        assert status == "OK" and lazy == lines
        assert w.cmd("FETCH 1 (PREVIEW (EAGER))")[0] == "BAD"
        _, flags = w.cmd("FETCH 1 (FLAGS)")
        assert b"\\Seen" not in flags[0]  # PREVIEW does not set \Seen
        w.cmd("ENABLE UTF8=ACCEPT")
        _, lines = w.cmd("FETCH 1 (PREVIEW)")
        assert lines[0] == b'* 1 FETCH (PREVIEW "%s")' % expected, lines[0]
        w.close()

    await asyncio.to_thread(run)


async def test_list_myrights(imap_env: ImapEnv) -> None:
    """RFC 8440 §3: ``LIST … RETURN (MYRIGHTS)`` follows each LIST of an existing mailbox
    with its MYRIGHTS, as MYRIGHTS (RFC 4314 §3.5) would answer; none for the
    ``\\Noselect`` levels of the shared namespace."""
    db = imap_env.gateway.db
    assert db is not None
    org = "secretariat@mssante.test"
    await add_mailbox(db, org, type="ORG", name="Secretariat")
    await delegations.grant(db, org, ALICE, "lrs")

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" LIST-MYRIGHTS" in lines[0]
        status, lines = w.cmd('LIST "" "*" RETURN (MYRIGHTS)')
        assert status == "OK"
        i = lines.index(b'* LIST (\\HasNoChildren) "/" INBOX')
        assert lines[i + 1] == b"* MYRIGHTS INBOX lrswipkxtecda", lines
        shared = f"Shared/{org}/INBOX".encode()
        i = next(n for n, x in enumerate(lines) if x.startswith(b"* LIST") and shared in x)
        assert lines[i + 1] == b"* MYRIGHTS %s lrs" % lines[i].split()[-1], lines
        _, direct = w.cmd(b'MYRIGHTS "%s"' % shared)
        assert direct == [lines[i + 1]]
        noselect = [n for n, x in enumerate(lines) if b"\\Noselect" in x]
        assert noselect and all(not lines[n + 1].startswith(b"* MYRIGHTS")
                                for n in noselect if n + 1 < len(lines)), lines
        _, with_status = w.cmd('LIST "" "INBOX" RETURN (MYRIGHTS STATUS (MESSAGES))')
        assert [x.split()[1] for x in with_status] == [b"LIST", b"STATUS", b"MYRIGHTS"]
        w.close()

    await asyncio.to_thread(run)
