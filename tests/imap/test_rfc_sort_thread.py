"""SORT, THREAD and ESORT (RFC 5256, RFC 5957, RFC 5267 §3.1) with answers worked out by
hand from the RFCs: every expected line below is derived in the comments above it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from mail.pipeline import Delivery, LocalTarget
from storage.accounts import get_by_address
from tests.fixtures.imap import ALICE, ImapEnv
from tests.imap.rfc_wire import Wire


async def _deliver(env: ImapEnv, raw: bytes, day: int) -> None:
    """Files ``raw`` with INTERNALDATE 2025-01-``day`` 00:00 UTC."""
    db, pipeline = env.gateway.db, env.gateway.pipeline
    assert db is not None and pipeline is not None
    async with db.read() as conn:
        account = await get_by_address(conn, ALICE)
    assert account is not None
    fid = await env.folder_id(ALICE, "INBOX")
    await pipeline.submit(Delivery(
        raw=raw, sender="s@mssante.test", local=[LocalTarget(ALICE, account.id, fid)],
        internal_date=datetime(2025, 1, day, tzinfo=UTC)))


def _msg(headers: str, body_size: int = 10) -> bytes:
    return (headers + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + "x" * body_size + "\r\n").encode()


# Message n (sequence number n once the first message is expunged; UID n + 1).
SORT_SET = [
    # 1: base subject "Bilan" (RFC 5256 §2.1 step 3 removes "Re: ").
    ("From: =?utf-8?q?Zo=C3=A9?= <zoe@x.test>\r\nTo: bob@y.test\r\nCc: carl@z.test\r\n"
     "Subject: Re: Bilan\r\nDate: Tue, 7 Jan 2025 09:00:00 +0000\r\n", 5000, 10),
    # 2: "bilan" (step 2 removes the "(fwd)" trailer); sent 2025-01-07 04:30 UTC.
    ("From: alice@x.test\r\nTo: Dr Yves <yves@y.test>\r\nSubject: bilan (fwd)\r\n"
     "Date: Mon, 6 Jan 2025 23:30:00 -0500\r\n", 1000, 9),
    # 3: "Compte rendu" (step 4 removes the leading [blob]); no Date: the sent date is
    # the INTERNALDATE, 2025-01-08 00:00 UTC (RFC 5256 §2.2).
    ("From: Marc <marc@x.test>\r\nTo: anne@y.test\r\nCc: Bea <bea@z.test>\r\n"
     "Subject: [HOPITAL] Compte rendu\r\n", 3000, 8),
    # 4: "Fwd: [fwd: COMPTE RENDU]" → step 3 "[fwd: COMPTE RENDU]" → step 6 "COMPTE RENDU";
    # sent 2025-01-08 09:00 UTC.
    ("From: bob@x.test\r\nTo: Zed <zed@y.test>\r\nCc: alice@z.test\r\n"
     "Subject: Fwd: [fwd: COMPTE RENDU]\r\nDate: Wed, 8 Jan 2025 10:00:00 +0100\r\n", 2000, 11),
    # 5: "Analyse"; no To, no Cc; sent 2025-01-05.
    ("From: =?utf-8?q?=C3=89lise?= <elise@x.test>\r\nSubject: Analyse\r\n"
     "Date: Sun, 5 Jan 2025 12:00:00 +0000\r\n", 4000, 12),
]


async def _sort_mailbox(env: ImapEnv) -> None:
    await _deliver(env, _msg("Subject: throwaway\r\n"), 1)
    for headers, size, day in SORT_SET:
        await _deliver(env, _msg(headers, size), day)


def _expunge_first(w: Wire) -> None:
    w.cmd("SELECT INBOX")
    w.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    status, _ = w.cmd("EXPUNGE")
    assert status == "OK"


async def test_sort_keys(imap_env: ImapEnv) -> None:
    """RFC 5256 §3 sort keys (ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO), RFC 5957 §2
    DISPLAYFROM/DISPLAYTO, REVERSE on one key only, ties in mailbox order, i;ascii-casemap
    comparisons (RFC 4790 §9.2: only a-z fold), with search criteria, and UID SORT."""
    await _sort_mailbox(imap_env)

    def run() -> None:
        w = Wire(imap_env)
        _expunge_first(w)
        for criteria, answer in (
            # INTERNALDATE: 3 (01-08), 2 (01-09), 1 (01-10), 4 (01-11), 5 (01-12).
            ("(ARRIVAL) UTF-8 ALL", "3 2 1 4 5"),
            # Sent: 5 (01-05 12:00), 2 (01-07 04:30), 1 (01-07 09:00), 3 (01-08 00:00),
            # 4 (01-08 09:00).
            ("(DATE) UTF-8 ALL", "5 2 1 3 4"),
            ("(REVERSE DATE) US-ASCII ALL", "4 3 1 2 5"),
            # ANALYSE 5 < BILAN 1 = BILAN 2 (mailbox order) < COMPTE RENDU 3 = 4.
            ("(SUBJECT) UTF-8 ALL", "5 1 2 3 4"),
            ("(SUBJECT REVERSE DATE) UTF-8 ALL", "5 1 2 4 3"),
            # addr-mailbox: alice 2, bob 4, elise 5, marc 3, zoe 1.
            ("(FROM) UTF-8 ALL", "2 4 5 3 1"),
            # Display names, else addr-spec: ALICE@X.TEST 2, BOB@X.TEST 4, MARC 3,
            # ZOé 1, then éLISE 5 (É is not folded by i;ascii-casemap and sorts last).
            ("(DISPLAYFROM) UTF-8 ALL", "2 4 3 1 5"),
            # "" 5, anne 3, bob 1, yves 2, zed 4.
            ("(TO) UTF-8 ALL", "5 3 1 2 4"),
            # "" 5, ANNE@Y.TEST 3, BOB@Y.TEST 1, DR YVES 2, ZED 4.
            ("(DISPLAYTO) UTF-8 ALL", "5 3 1 2 4"),
            # "" 2 and 5, alice 4, bea 3, carl 1; REVERSE leaves the ties in mailbox order.
            ("(CC) UTF-8 ALL", "2 5 4 3 1"),
            ("(REVERSE CC) UTF-8 ALL", "1 3 4 2 5"),
            # Bodies of 1000 (2), 2000 (4), 3000 (3), 4000 (5), 5000 (1) octets.
            ("(SIZE) UTF-8 ALL", "2 4 3 5 1"),
            ("(DATE) UTF-8 SUBJECT bilan", "2 1"),
            ("(DATE) UTF-8 SUBJECT absent", ""),
        ):
            status, lines = w.cmd(f"SORT {criteria}")
            assert status == "OK", (criteria, w.last_tagged)
            assert lines == [f"* SORT {answer}".rstrip().encode()], (criteria, lines)
        # UID n + 1 for message n.
        status, lines = w.cmd("UID SORT (ARRIVAL) UTF-8 ALL")
        assert lines == [b"* SORT 4 3 2 5 6"], lines
        status, lines = w.cmd("UID SORT (DATE) UTF-8 UID 2:4")
        assert lines == [b"* SORT 3 2 4"], lines
        w.close()
    await asyncio.to_thread(run)


async def test_sort_refusals_and_esort(imap_env: ImapEnv) -> None:
    """RFC 5256 §3: an unknown charset is NO [BADCHARSET]; a bad sort key or a missing
    criteria list is BAD. RFC 5267 §3.1 ESORT: ``SORT RETURN (...)`` answers ESEARCH with
    MIN and MAX the first and last in sort order and ALL the numbers in sort order."""
    await _sort_mailbox(imap_env)

    def run() -> None:
        w = Wire(imap_env)
        _expunge_first(w)
        status, _ = w.cmd("SORT (DATE) KOI8-R ALL")
        assert status == "NO" and b"[BADCHARSET" in w.last_tagged, w.last_tagged
        for bad in ("SORT (NAME) UTF-8 ALL", "SORT DATE UTF-8 ALL", "SORT (DATE) UTF-8",
                    "SORT (REVERSE) UTF-8 ALL", "THREAD FLAT UTF-8 ALL"):
            status, _ = w.cmd(bad)
            assert status == "BAD", (bad, w.last_tagged)
        tag = w.imap._new_tag().decode()  # type: ignore[attr-defined]
        w.imap.send(f"{tag} SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL\r\n".encode())
        lines = []
        while not (line := w.response()).startswith(tag.encode()):
            lines.append(line.rstrip(b"\r\n"))
        assert lines == [f'* ESEARCH (TAG "{tag}") MIN 5 MAX 4 ALL 5,2,1,3,4 COUNT 5'
                         .encode()], lines
        status, lines = w.cmd("UID SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT bilan")
        assert len(lines) == 1 and lines[0].endswith(b" UID COUNT 2"), lines
        status, lines = w.cmd("UID SORT RETURN () (REVERSE SIZE) UTF-8 ALL")
        assert lines[0].endswith(b" UID ALL 2,6,4,5,3"), lines
        status, lines = w.cmd("SORT RETURN (MIN) (DATE) UTF-8 SUBJECT absent")
        assert lines[0].endswith(b"\")"), lines  # no match: no MIN (RFC 4731 §3.1)
        w.close()
    await asyncio.to_thread(run)


def _t(n: int, subject: str | None, extra: str = "", msgid: str | None = "") -> str:
    mid = f"<m{n}@t>" if msgid == "" else msgid
    return ((f"Message-ID: {mid}\r\n" if mid else "")
            + (f"Subject: {subject}\r\n" if subject is not None else "")
            + f"From: a@x.test\r\nDate: Fri, {n} Jan 2025 10:00:00 +0000\r\n" + extra)


THREAD_SET = [
    _t(1, "Planning"),
    _t(2, "Re: Planning", "References: <m1@t>\r\n"),
    _t(3, "Re: Planning", "In-Reply-To: <m2@t>\r\n"),  # no References: In-Reply-To
    _t(4, "Re: Planning", "References: <m1@t>\r\n"),
    _t(5, "Garde", "References: <absent@t>\r\n"),  # under a dummy
    _t(6, "Re: Garde", "References: <absent@t>\r\n"),  # same dummy
    _t(7, "R\u00e9union"),
    _t(8, "Re: R\u00e9union"),  # no reference: joined by subject (step 5C)
    _t(9, "Astreinte"),
    _t(10, "Astreinte"),  # same subject, neither a reply: a new dummy (step 5C)
    _t(11, "Doublon", msgid="<m1@t>"),  # duplicate Message-ID: treated as unique
    _t(12, "", "References: <m3@t>\r\n", msgid=None),  # no Message-ID, empty subject
]


async def _thread_mailbox(env: ImapEnv) -> None:
    await _deliver(env, _msg("Subject: throwaway\r\n"), 1)
    for n, headers in enumerate(THREAD_SET, 1):
        await _deliver(env, _msg(headers), n)


async def test_thread_references(imap_env: ImapEnv) -> None:
    """RFC 5256 §4 REFERENCES. Step 1: 2 and 4 reply to 1, 3 to 2 (In-Reply-To), 12 to 3;
    5 and 6 hang under a dummy <absent@t>; 11 repeats 1's Message-ID and stands alone.
    Step 3: the root dummy keeps its two children. Step 4: roots by date: 1, dummy (5),
    7, 8, 9, 10, 11. Step 5: 8 ("Re: Réunion") goes under 7; 9 and 10 (same subject, no
    reply) under a new dummy. Step 6: children by date."""
    await _thread_mailbox(imap_env)

    def run() -> None:
        w = Wire(imap_env)
        _expunge_first(w)
        status, lines = w.cmd("THREAD REFERENCES UTF-8 ALL")
        assert status == "OK", w.last_tagged
        assert lines == [b"* THREAD (1 (2 3 12)(4))((5)(6))(7 8)((9)(10))(11)"], lines
        # Without 5 and 6 the dummy has no child left and goes (step 3).
        status, lines = w.cmd("THREAD REFERENCES UTF-8 NOT SUBJECT garde")
        assert lines == [b"* THREAD (1 (2 3 12)(4))(7 8)((9)(10))(11)"], lines
        status, lines = w.cmd("UID THREAD REFERENCES UTF-8 ALL")
        assert lines == [b"* THREAD (2 (3 4 13)(5))((6)(7))(8 9)((10)(11))(12)"], lines
        status, lines = w.cmd("THREAD REFERENCES UTF-8 SUBJECT absent")
        assert status == "OK" and lines == [b"* THREAD"], lines
        w.close()
    await asyncio.to_thread(run)


async def test_thread_orderedsubject(imap_env: ImapEnv) -> None:
    """RFC 5256 §4 ORDEREDSUBJECT: groups by base subject ("" 12; ASTREINTE 9 10; DOUBLON
    11; GARDE 5 6; PLANNING 1 2 3 4; RéUNION 7 8), each group's first message (by sent
    date) the parent of the others; threads by the date of their first message."""
    await _thread_mailbox(imap_env)

    def run() -> None:
        w = Wire(imap_env)
        _expunge_first(w)
        status, lines = w.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL")
        assert status == "OK", w.last_tagged
        assert lines == [b"* THREAD (1 (2)(3)(4))(5 6)(7 8)(9 10)(11)(12)"], lines
        status, lines = w.cmd("UID THREAD ORDEREDSUBJECT US-ASCII SUBJECT planning")
        assert lines == [b"* THREAD (2 (3)(4)(5))"], lines
        w.close()
    await asyncio.to_thread(run)


async def test_within_and_capabilities(imap_env: ImapEnv) -> None:
    """RFC 5032 §3: OLDER n / YOUNGER n compare the INTERNALDATE with now, in seconds. The
    capabilities of what is complete are announced (RFC 5256 §1, RFC 5957 §1, RFC 5267 §3,
    RFC 5032 §2, RFC 5267 §4.1 CONTEXT=SEARCH and CONTEXT=SORT)."""
    await _deliver(imap_env, _msg("Subject: ancien\r\n"), 2)
    await imap_env.deliver(_msg("Subject: nouveau\r\n"))

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        caps = lines[0].split()
        for cap in (b"SORT", b"SORT=DISPLAY", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES",
                    b"ESORT", b"WITHIN", b"CONTEXT=SEARCH", b"CONTEXT=SORT"):
            assert cap in caps, cap
        w.cmd("SELECT INBOX")
        for criteria, answer in (("OLDER 86400", b"* SEARCH 1"), ("YOUNGER 86400", b"* SEARCH 2"),
                                 ("YOUNGER 1 OLDER 1", b"* SEARCH")):
            status, lines = w.cmd(f"SEARCH {criteria}")
            assert status == "OK" and lines == [answer], (criteria, lines)
        status, lines = w.cmd("SORT (REVERSE ARRIVAL) UTF-8 OLDER 60")
        assert lines == [b"* SORT 1"], lines
        w.close()
    await asyncio.to_thread(run)
