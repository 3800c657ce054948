"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): PARTIAL results, live results kept up to
date with ADDTO/REMOVEFROM (UPDATE), CANCELUPDATE and the refusals, over real TLS
connections with imaplib. A second session (or a delivery through the pipeline, as SMTP
files mail) changes the mailbox; every expected line is worked out in the comments."""

from __future__ import annotations

import asyncio
import itertools
import re

import pytest

from tests.fixtures.imap import ImapEnv, message
from tests.imap.imap_grammar import GrammarError, check_response
from tests.imap.rfc_wire import Wire


def _next_tag(w: Wire) -> str:
    """The tag imaplib gives the next command (``tagpre`` + counter)."""
    return (w.imap.tagpre + str(w.imap.tagnum).encode()).decode()  # type: ignore[attr-defined]


def _esearch(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ESEARCH")]


def _tagged(w: Wire, text: str) -> tuple[str, str, list[bytes]]:
    tag = _next_tag(w)
    status, lines = w.cmd(text)
    return tag, status, lines


_NUMBERS = itertools.count(1)


async def _subjects(env: ImapEnv, *subjects: str) -> None:
    """Delivers one message per subject, in order (one UID each, ascending)."""
    for subject in subjects:
        await env.deliver(message(next(_NUMBERS), subject=subject))


def test_grammar_of_the_new_esearch_forms() -> None:
    """RFC 5267 §5 ABNF: ``PARTIAL (low:high set|NIL)``, ``ADDTO``/``REMOVEFROM`` with one
    or more ``position sequence-set`` pairs, and the ``NOUPDATE "tag"`` response code; the
    checker refuses what the ABNF does not allow."""
    for good in (b'* ESEARCH (TAG "a1") UID PARTIAL (1:10 3:5,9) COUNT 4\r\n',
                 b'* ESEARCH (TAG "a1") PARTIAL (7:9 NIL)\r\n',
                 b'* ESEARCH (TAG "a1") UID ADDTO (1 6 3 5)\r\n',
                 b'* ESEARCH (TAG "a1") REMOVEFROM (0 2:4)\r\n',
                 b'* NO [NOUPDATE "a1"] Too many\r\n'):
        check_response(good)
    for bad in (b'* ESEARCH (TAG "a1") PARTIAL (0:3 NIL)\r\n',
                b'* ESEARCH (TAG "a1") PARTIAL 1:3\r\n',
                b'* ESEARCH (TAG "a1") ADDTO (1)\r\n',
                b'* ESEARCH (TAG "a1") ADDTO (1 2 3)\r\n',
                b'* NO [NOUPDATE a1] x\r\n'):
        with pytest.raises(GrammarError):
            check_response(bad)


async def test_partial_and_refusals(imap_env: ImapEnv) -> None:
    """RFC 5267 §4.4 PARTIAL: the results at positions low..high of the whole result (UID
    order for SEARCH, sort order for SORT), ``NIL`` when none is there; a reversed range is
    the same range, answered as written. UPDATE combines with MIN, MAX and SAVE (§4.3: no
    interaction). Refusals: more than one PARTIAL or ALL (§4.4), negative ranges (RFC
    9394, not offered), position 0, UPDATE under the tag of a live result (§4.3, BAD),
    CANCELUPDATE of an unknown tag (NO, nothing cancelled) or without a selected mailbox
    (BAD). RFC 5267 §4.1: CONTEXT=SEARCH and CONTEXT=SORT are announced."""
    await _subjects(imap_env, "e", "d", "c", "b", "a")  # UIDs 1-5

    def run() -> None:
        w = Wire(imap_env)
        _, caps = w.cmd("CAPABILITY")
        assert b"CONTEXT=SEARCH" in caps[0].split() and b"CONTEXT=SORT" in caps[0].split()
        status, _ = w.cmd('CANCELUPDATE "x"')
        assert status == "BAD"
        w.cmd("SELECT INBOX")
        for command, answer in (
            ("UID SEARCH RETURN (PARTIAL 2:3 COUNT) ALL", b"UID PARTIAL (2:3 2:3) COUNT 5"),
            ("SEARCH RETURN (PARTIAL 4:9) ALL", b"PARTIAL (4:9 4:5)"),
            # A reversed range is the same range, answered as written.
            ("SEARCH RETURN (PARTIAL 9:7) ALL", b"PARTIAL (9:7 NIL)"),
            ("SEARCH RETURN (PARTIAL 3:2) ALL", b"PARTIAL (3:2 2:3)"),
            ("SEARCH RETURN (CONTEXT PARTIAL 1:1) UID 2:5", b"PARTIAL (1:1 2)"),
            # CONTEXT alone is a hint: the answer is ALL (RFC 4731 §3.1).
            ("UID SEARCH RETURN (CONTEXT) ALL", b"UID ALL 1:5"),
            # UPDATE alone asks for the changes only (no result data); with MIN, SAVE or
            # COUNT those are answered as usual (§4.3: no interaction).
            ("UID SEARCH RETURN (UPDATE) ALL", b"UID"),
            ("UID SEARCH RETURN (UPDATE MIN SAVE) ALL", b"UID MIN 1"),
            ("SORT RETURN (MAX UPDATE) (SUBJECT) UTF-8 ALL", b"MAX 1"),
            # Subjects a(5) b(4) c(3) d(2) e(1): positions 2-3 are 4 then 3.
            ("UID SORT RETURN (PARTIAL 2:3) (SUBJECT) UTF-8 ALL", b"UID PARTIAL (2:3 4,3)"),
            ("SORT RETURN (PARTIAL 4:8 COUNT) (REVERSE SUBJECT) UTF-8 ALL",
             b"PARTIAL (4:8 4,5) COUNT 5"),
        ):
            tag, status, lines = _tagged(w, command)
            assert status == "OK", (command, w.last_tagged)
            assert lines == [f'* ESEARCH (TAG "{tag}") '.encode() + answer], (command, lines)
        for command in ("SEARCH RETURN (ALL PARTIAL 1:2) ALL",
                        "SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
                        "SEARCH RETURN (PARTIAL -1:-5) ALL",
                        "SEARCH RETURN (PARTIAL 0:5) ALL",
                        "SORT RETURN (PARTIAL 1:2 ALL) (DATE) UTF-8 ALL"):
            status, lines = w.cmd(command)
            assert status == "BAD" and not lines, (command, lines)
        assert b"RFC 5267" in w.last_tagged or b"PARTIAL" in w.last_tagged
        status, _ = w.cmd('CANCELUPDATE "nope"')
        assert status == "NO" and b"nope" in w.last_tagged
        # §4.3: UPDATE under a tag that already names a live result is BAD.
        for expected in (b"T1 OK", b"T1 BAD Tag reuse"):
            w.imap.send(b"T1 UID SEARCH RETURN (UPDATE) ALL\r\n")
            while not (line := w.response()).startswith(b"T1 "):
                pass
            assert line.startswith(expected), line
        w.close()
    await asyncio.to_thread(run)


async def test_search_update_notifications(imap_env: ImapEnv) -> None:
    """RFC 5267 §4.3: after ``SEARCH RETURN (UPDATE)`` the server sends ADDTO/REMOVEFROM
    (position 0 for SEARCH, §5) as messages come to match (a flag stored by another session,
    a delivery) or stop matching (a flag removed, an expunge), at the next command. A UID
    context names UIDs, a sequence-number context numbers; an expunged message leaves both
    with a REMOVEFROM sent before its EXPUNGE. ``RETURN (UPDATE)`` alone asks for no result
    data, only the changes. Past the per-session limit the result
    comes with ``* NO [NOUPDATE "tag"]`` and no updates; CANCELUPDATE ends updates; a new
    SELECT ends every context."""
    await _subjects(imap_env, "m1", "m2", "m3", "m4", "m5")  # UIDs 1-5

    def run() -> tuple[Wire, Wire]:
        a, b = Wire(imap_env), Wire(imap_env)
        a.cmd("SELECT INBOX")
        b.cmd("SELECT INBOX")
        return a, b

    a, b = await asyncio.to_thread(run)
    cmd = asyncio.to_thread

    t_uid, status, lines = await cmd(_tagged, a, "UID SEARCH RETURN (UPDATE) FLAGGED")
    # Nothing is flagged: an ESEARCH with no data (RFC 4731 §3.1).
    assert status == "OK" and lines == [f'* ESEARCH (TAG "{t_uid}") UID'.encode()]
    t_seq, status, lines = await cmd(_tagged, a, "SEARCH RETURN (UPDATE MIN COUNT) FLAGGED")
    assert lines == [f'* ESEARCH (TAG "{t_seq}") COUNT 0'.encode()]

    await cmd(b.cmd, "UID STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    _, lines = await cmd(a.cmd, "NOOP")
    assert _esearch(lines) == [f'* ESEARCH (TAG "{t_uid}") UID ADDTO (0 2,4)'.encode(),
                               f'* ESEARCH (TAG "{t_seq}") ADDTO (0 2,4)'.encode()], lines

    # A flagged message delivered: UID 6, sequence number 6, after its EXISTS.
    await imap_env.deliver(message(next(_NUMBERS)), flags=("\\Flagged",))
    _, lines = await cmd(a.cmd, "NOOP")
    assert b"* 6 EXISTS" in lines
    assert lines.index(b"* 6 EXISTS") < lines.index(_esearch(lines)[0])
    assert _esearch(lines) == [f'* ESEARCH (TAG "{t_uid}") UID ADDTO (0 6)'.encode(),
                               f'* ESEARCH (TAG "{t_seq}") ADDTO (0 6)'.encode()], lines

    # UID 2 unflagged, UID 4 expunged (sequence number 4; UID 6 becomes number 5).
    await cmd(b.cmd, "UID STORE 2 -FLAGS.SILENT (\\Flagged)")
    await cmd(b.cmd, "UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    await cmd(b.cmd, "EXPUNGE")
    _, lines = await cmd(a.cmd, "NOOP")
    # The expunged message leaves both results before its EXPUNGE, while number 4 holds;
    # the flag change follows.
    assert lines.index(b"* 4 EXPUNGE") == 2, lines
    assert _esearch(lines) == [f'* ESEARCH (TAG "{t_uid}") UID REMOVEFROM (0 4)'.encode(),
                               f'* ESEARCH (TAG "{t_seq}") REMOVEFROM (0 4)'.encode(),
                               f'* ESEARCH (TAG "{t_uid}") UID REMOVEFROM (0 2)'.encode(),
                               f'* ESEARCH (TAG "{t_seq}") REMOVEFROM (0 2)'.encode()], lines

    # CANCELUPDATE: the UID context is quiet, the other goes on (UID 3 is number 3).
    status, _ = await cmd(a.cmd, f'CANCELUPDATE "{t_uid}"')
    assert status == "OK"
    await cmd(b.cmd, "UID STORE 3 +FLAGS.SILENT (\\Flagged)")
    _, lines = await cmd(a.cmd, "NOOP")
    assert _esearch(lines) == [f'* ESEARCH (TAG "{t_seq}") ADDTO (0 3)'.encode()], lines

    # This session's own STORE: a sequence-number context waits for a command after which
    # EXPUNGE could be sent (not STORE, RFC 9051 §7.5.1); UID 5 is number 4.
    _, lines = await cmd(a.cmd, "STORE 4 +FLAGS.SILENT (\\Flagged)")
    assert not _esearch(lines), lines
    _, lines = await cmd(a.cmd, "NOOP")
    assert _esearch(lines) == [f'* ESEARCH (TAG "{t_seq}") ADDTO (0 4)'.encode()], lines

    # The limit (16 by default): the 16th context is the last one kept.
    for _ in range(15):
        _, status, _ = await cmd(_tagged, a, "UID SEARCH RETURN (UPDATE) SEEN")
        assert status == "OK"
    t_over, status, lines = await cmd(_tagged, a, "UID SEARCH RETURN (UPDATE) SEEN")
    assert status == "OK"
    assert lines[0].startswith(f'* NO [NOUPDATE "{t_over}"]'.encode()), lines
    assert lines[1] == f'* ESEARCH (TAG "{t_over}") UID'.encode()
    await cmd(b.cmd, "UID STORE 1 +FLAGS.SILENT (\\Seen)")
    _, lines = await cmd(a.cmd, "NOOP")
    assert len(_esearch(lines)) == 15 and t_over.encode() not in b"".join(lines), lines

    # SELECT ends every context: no update afterwards.
    await cmd(a.cmd, "SELECT INBOX")
    await cmd(b.cmd, "UID STORE 1 +FLAGS.SILENT (\\Flagged)")
    _, lines = await cmd(a.cmd, "NOOP")
    assert not _esearch(lines), lines
    await cmd(a.close)
    await cmd(b.close)


async def test_sort_update_positions_and_idle(imap_env: ImapEnv) -> None:
    """RFC 5267 §4.3 for SORT contexts: each ``(position set)`` pair applies in turn, the
    set in sort order, REMOVEFROM's positions counted in the result before the removal and
    ADDTO's in the result after it; a flag change, a delivery and an expunge are reported
    at the next command, during IDLE (RFC 2177) and unasked under NOTIFY (RFC 5465)."""
    await _subjects(imap_env, "b", "d", "f", "h")  # UIDs 1-4

    def run() -> tuple[Wire, Wire]:
        a, b = Wire(imap_env), Wire(imap_env)
        a.cmd("SELECT INBOX")
        b.cmd("SELECT INBOX")
        return a, b

    a, b = await asyncio.to_thread(run)
    cmd = asyncio.to_thread
    tag, status, lines = await cmd(_tagged, a,
                                   "UID SORT RETURN (UPDATE ALL COUNT) (SUBJECT) UTF-8 UNSEEN")
    assert lines == [f'* ESEARCH (TAG "{tag}") UID ALL 1,2,3,4 COUNT 4'.encode()]
    t_seq, _, lines = await cmd(_tagged, a,
                                "SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 ALL")
    assert lines == [f'* ESEARCH (TAG "{t_seq}") ALL 4,3,2,1'.encode()]

    def updates(lines: list[bytes], t: str = tag) -> list[bytes]:
        return [re.sub(rb'^\* ESEARCH \(TAG "[^"]+"\) ', b"", line)
                for line in _esearch(lines) if f'(TAG "{t}")'.encode() in line]

    # UID 5 "c" and UID 6 "a": a(6) b(1) c(5) d(2) f(3) h(4): 6 at 1, then 5 at 3.
    await _subjects(imap_env, "c", "a")
    _, lines = await cmd(a.cmd, "NOOP")
    assert updates(lines) == [b"UID ADDTO (1 6 3 5)"], lines
    # Reverse subject over numbers: h(4) f(3) d(2) c(5) b(1) a(6): 5 at 4, 6 at 6.
    assert updates(lines, t_seq) == [b"ADDTO (4 5 6 6)"], lines

    # UIDs 2 and 3 read: d(2) f(3) were at positions 4 and 5.
    await cmd(b.cmd, "UID STORE 2,3 +FLAGS.SILENT (\\Seen)")
    _, lines = await cmd(a.cmd, "NOOP")
    assert updates(lines) == [b"UID REMOVEFROM (4 2,3)"], lines
    assert updates(lines, t_seq) == [], lines

    # UID 6 expunged (position 1 of a(6) b(1) c(5) h(4); position 6 and number 6 of the
    # reversed result) and UID 2 unread again: b(1) c(5) h(4) becomes b(1) c(5) d(2) h(4),
    # 2 at 3. The removals go before the EXPUNGE, the addition after.
    await cmd(b.cmd, "UID STORE 6 +FLAGS.SILENT (\\Deleted)")
    await cmd(b.cmd, "UID EXPUNGE 6")
    await cmd(b.cmd, "UID STORE 2 -FLAGS.SILENT (\\Seen)")
    _, lines = await cmd(a.cmd, "NOOP")
    assert lines.index(b"* 6 EXPUNGE") == 2, lines
    assert updates(lines) == [b"UID REMOVEFROM (1 6)", b"UID ADDTO (3 2)"], lines
    assert updates(lines, t_seq) == [b"REMOVEFROM (6 6)"], lines

    # During IDLE: "g" delivered as UID 7: b(1) c(5) d(2) g(7) h(4), 7 at 4.
    def idle() -> list[bytes]:
        a.imap.send(b"I1 IDLE\r\n")
        assert a.response().startswith(b"+")
        return []

    await cmd(idle)
    await _subjects(imap_env, "g")

    def read_until_update() -> list[bytes]:
        seen: list[bytes] = []
        while not updates(seen):
            seen.append(a.response().rstrip(b"\r\n"))
        a.imap.send(b"DONE\r\n")
        while not seen[-1].startswith(b"I1 "):
            seen.append(a.response().rstrip(b"\r\n"))
        return seen

    lines = await cmd(read_until_update)
    assert updates(lines) == [b"UID ADDTO (4 7)"], lines
    assert lines[-1].startswith(b"I1 OK")

    # This session's own STORE: a UID context is updated in the STORE's answer.
    _, lines = await cmd(a.cmd, "UID STORE 1 +FLAGS.SILENT (\\Seen)")
    assert updates(lines) == [b"UID REMOVEFROM (1 1)"], lines

    # This session's own EXPUNGE of UID 4 (number 4): position 4 of c(5) d(2) g(7) h(4),
    # position 1 of the reversed h(4) g(7) f(3) d(2) c(5) b(1); both before the EXPUNGE.
    await cmd(a.cmd, "UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    _, lines = await cmd(a.cmd, "UID EXPUNGE 4")
    assert lines.index(b"* 4 EXPUNGE") == 2, lines
    assert updates(lines) == [b"UID REMOVEFROM (4 4)"], lines
    assert updates(lines, t_seq) == [b"REMOVEFROM (1 4)"], lines

    # With NOTIFY SELECTED (RFC 5465 §5.1) the update comes without a command: "e" as UID
    # 8 in c(5) d(2) g(7) h(4) goes at 3.
    status, _ = await cmd(a.cmd, "NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
    assert status == "OK"
    await _subjects(imap_env, "e")

    def pushed() -> list[bytes]:
        seen: list[bytes] = []
        while not updates(seen):
            seen.append(a.response().rstrip(b"\r\n"))
        return seen

    lines = await cmd(pushed)
    assert updates(lines) == [b"UID ADDTO (3 8)"], lines
    await cmd(a.close)
    await cmd(b.close)
