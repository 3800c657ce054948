"""RFC 4469 CATENATE (without URLAUTH) and RFC 8508 REPLACE on the real server, sent as raw
commands; expected answers from the RFCs' examples and rules."""

from __future__ import annotations

import asyncio
import re

from accounts import delegations
from accounts.mailboxes import add_mailbox
from tests.fixtures.imap import ALICE, BOB, ImapEnv, message
from tests.imap.rfc_wire import Wire

_FORWARDED = message(1, subject="Resultats", body="Glycemie normale.\r\n")
_MULTI = (
    b"From: bob@mssante.test\r\nSubject: pj\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
    b"Content-Type: text/plain\r\n\r\nLettre.\r\n--b1\r\n"
    b"Content-Type: application/pdf; name=cr.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQK\r\n--b1--\r\n")


def _send(w: Wire, text: bytes) -> tuple[str, bytes]:
    """One command made of raw octets (with LITERAL+ literals); status and tagged line."""
    tag = w.imap._new_tag()  # type: ignore[attr-defined]
    w.imap.send(tag + b" " + text + b"\r\n")
    while True:
        resp = w.response()
        if resp.startswith(tag + b" "):
            w.last_tagged = resp
            return resp.split()[1].decode(), resp


def _lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def _uidvalidity(w: Wire, mailbox: str) -> int:
    _, lines = w.cmd(f"STATUS {mailbox} (UIDVALIDITY)")
    m = re.search(rb"UIDVALIDITY (\d+)", lines[0])
    assert m is not None
    return int(m.group(1))


async def test_catenate_text_and_urls(imap_env: ImapEnv) -> None:
    """RFC 4469 §3: the new message is the TEXT parts and the octets each URL names (whole
    message, SECTION, PARTIAL; relative form and imap://user@host form), in order;
    APPENDUID as for APPEND (RFC 4315); MULTIAPPEND (RFC 3502) mixes plain and CATENATE
    messages in one command."""
    await imap_env.deliver(_FORWARDED)
    await imap_env.deliver(_MULTI)
    host = imap_env.settings.hostname

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" CATENATE" in lines[0]
        v = _uidvalidity(w, "INBOX")
        head = b"From: alice@mssante.test\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n" \
               b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n" \
               b"Content-Type: message/rfc822\r\n\r\n"
        tail = b"\r\n--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: " \
               b"base64\r\n\r\n"
        status, line = _send(w, b"APPEND Drafts (\\Draft) CATENATE (TEXT " + _lit(head)
                             + b" URL \"/INBOX;UIDVALIDITY=%d/;UID=1\" TEXT " % v + _lit(tail)
                             + b" URL \"imap://%s@%s/INBOX/;UID=2/;SECTION=2\" TEXT "
                             % (ALICE.replace("@", "%40").encode(), host.encode())
                             + _lit(b"\r\n--zz--\r\n") + b")")
        assert status == "OK" and re.search(rb"\[APPENDUID \d+ 1\]", line), line
        expected = head + _FORWARDED + tail + b"JVBERi0xLjQK" + b"\r\n--zz--\r\n"
        w.cmd("SELECT Drafts")
        _, lines = w.cmd("FETCH 1 (FLAGS BODY.PEEK[])")
        assert b"\\Draft" in lines[0] and expected in lines[0], lines[0]
        # SECTION=HEADER.FIELDS and PARTIAL, percent-encoded; then MULTIAPPEND.
        status, line = _send(
            w, b"APPEND Drafts CATENATE (URL \"/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20"
            b"(SUBJECT)\" TEXT " + _lit(b"Corps\r\n") + b") " + _lit(message(9))
            + b" CATENATE (URL \"/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=0.9\")")
        assert status == "OK" and re.search(rb"\[APPENDUID \d+ 2:4\]", line), line
        _, lines = w.cmd("FETCH 2:4 (BODY.PEEK[])")
        assert lines[0].endswith(b"{29}\r\nSubject: Resultats\r\n\r\nCorps\r\n)"), lines[0]
        assert message(9) in lines[1]
        assert lines[2].endswith(b"{9}\r\nGlycemie )"), lines[2]
        w.close()

    await asyncio.to_thread(run)


async def test_catenate_bad_urls_are_refused(imap_env: ImapEnv) -> None:
    """RFC 4469 §5: a URL the server cannot resolve refuses the APPEND with
    ``NO [BADURL url]`` and stores nothing: wrong UIDVALIDITY, missing UID, another
    server or user, URLAUTH, a mailbox one may not read (RFC 4314 ``r``), a missing
    section; a result over the APPEND limit is ``NO [TOOBIG]`` (RFC 7889)."""
    await imap_env.deliver(message(1))
    db = imap_env.gateway.db
    assert db is not None
    org = "secretariat@mssante.test"
    await add_mailbox(db, org, type="ORG", name="Secretariat")
    await delegations.grant(db, org, ALICE, "l")
    await imap_env.deliver(message(5), to=org)

    def run() -> None:
        w = Wire(imap_env)
        v = _uidvalidity(w, "INBOX")
        bad = [
            f"/INBOX;UIDVALIDITY={v + 1}/;UID=1",
            "/INBOX/;UID=7",
            "/Nowhere/;UID=1",
            "imap://alice@elsewhere.example/INBOX/;UID=1",
            f"imap://{BOB.replace('@', '%40')}@{imap_env.settings.hostname}/INBOX/;UID=1",
            "/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous",
            "/INBOX/;UID=1/;SECTION=4.1",
            f"/Shared/{org}/INBOX/;UID=1",
            "INBOX;UID=1",
        ]
        for url in bad:
            status, line = _send(w, b'APPEND Drafts CATENATE (TEXT {2+}\r\nX: URL "'
                                 + url.encode() + b'")')
            assert status == "NO" and line.split()[2] == b"[BADURL", (url, line)
            assert re.match(rb"\S+ NO \[BADURL [^\]]+\] CATENATE URL refused: ", line), line
        _, lines = w.cmd("STATUS Drafts (MESSAGES)")
        assert lines == [b"* STATUS Drafts (MESSAGES 0)"], lines
        status, _ = w.cmd("APPEND Drafts CATENATE ()")
        assert status == "BAD"
        w.close()

    await asyncio.to_thread(run)


async def test_catenate_over_the_limit_is_toobig(tmp_path, dev_pki) -> None:  # type: ignore[no-untyped-def]
    """RFC 4469 §5 / RFC 7889: parts each under APPENDLIMIT whose sum is over it: TOOBIG."""
    from tests.fixtures.imap import start_imap_env

    env = await start_imap_env(tmp_path / "data", dev_pki, {"imap": {"max_literal_size": 4096}})
    try:
        await env.deliver(message(1, body="x" * 3000 + "\r\n"))

        def run() -> None:
            w = Wire(env)
            status, line = _send(w, b"APPEND Drafts CATENATE (URL \"/INBOX/;UID=1\" TEXT "
                                 + _lit(b"y" * 2000) + b")")
            assert status == "NO" and b"[TOOBIG]" in line, line
            w.close()

        await asyncio.to_thread(run)
    finally:
        await env.gateway.stop(grace=0)


async def test_replace(imap_env: ImapEnv) -> None:
    """RFC 8508 §3.3: REPLACE appends the new message to the named mailbox, then expunges
    the old one: ``* OK [APPENDUID …]``, then ``* n EXPUNGE``, then the tagged OK; UID
    REPLACE names the UID; into the selected mailbox the new one also EXISTS. A failed
    APPEND leaves the old message; a read-only mailbox refuses; CATENATE works inside."""
    for n in range(1, 4):
        await imap_env.deliver(message(n))

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" REPLACE" in lines[0]
        v_drafts = _uidvalidity(w, "Drafts")
        w.cmd("SELECT INBOX")
        status, line = _send(w, b"REPLACE 2 Drafts (\\Seen \\Draft) " + _lit(message(20)))
        assert status == "OK", line
        # (then ``* 2 RECENT``: the expunge lowered it, RFC 3501 §7.3.2)
        lines = w.traffic[-4:-2]
        assert lines[0] == b"* OK [APPENDUID %d 1] Replacement message ready\r\n" % v_drafts
        assert lines[1] == b"* 2 EXPUNGE\r\n"
        _, lines = w.cmd("UID FETCH 1:* (UID)")
        assert [re.search(rb"UID (\d+)", x).group(1) for x in lines] == [b"1", b"3"]  # type: ignore[union-attr]
        status, line = _send(w, b"UID REPLACE 3 INBOX CATENATE (URL \"/INBOX/;UID=1/;"
                             b"SECTION=HEADER\" TEXT " + _lit(b"Nouveau texte\r\n") + b")")
        assert status == "OK", line
        assert b"* 2 EXPUNGE\r\n" in w.traffic and any(
            x == b"* 2 EXISTS\r\n" for x in w.traffic[-4:]), w.traffic[-5:]
        _, lines = w.cmd("FETCH 2 (UID BODY.PEEK[TEXT])")
        assert b"UID 4" in lines[0] and lines[0].endswith(b"Nouveau texte\r\n)"), lines
        status, _ = _send(w, b"REPLACE 1 Nowhere " + _lit(message(30)))
        assert status == "NO" and b"[TRYCREATE]" in w.last_tagged
        status, _ = _send(w, b"UID REPLACE 99 Drafts " + _lit(message(31)))
        assert status == "NO"
        status, _ = _send(w, b"REPLACE 9 Drafts " + _lit(message(31)))
        assert status == "BAD"
        _, lines = w.cmd("FETCH 1:* (UID)")
        assert len(lines) == 2
        w.cmd("EXAMINE INBOX")
        status, _ = _send(w, b"REPLACE 1 Drafts " + _lit(message(32)))
        assert status == "NO" and b"[READ-ONLY]" in w.last_tagged
        w.close()

    await asyncio.to_thread(run)
