"""The selected state to the letter: MOVE into the same mailbox, the HIGHESTMODSEQ of an
implicit CONDSTORE enable, new keywords announced with FLAGS, and RECENT after EXPUNGE."""

from __future__ import annotations

import asyncio
import re

from tests.fixtures.imap import ImapEnv, message
from tests.imap.rfc_wire import Wire


def _at(lines: list[bytes], part: bytes) -> int:
    """Index of the first response holding ``part`` (an AssertionError when none does)."""
    found = [i for i, x in enumerate(lines) if part in x]
    assert found, (part, lines)
    return found[0]


async def test_move_into_the_selected_mailbox(imap_env: ImapEnv) -> None:
    """RFC 6851 §3.3 allows a MOVE whose target is the selected mailbox: COPYUID with the
    new UIDs (RFC 4315 §3), EXPUNGE of the sources, and the copies at the end (EXISTS)."""
    for n in range(1, 4):
        await imap_env.deliver(message(n))

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("SELECT INBOX")
        validity = re.search(rb"UIDVALIDITY (\d+)", b"\n".join(lines))
        assert validity is not None
        w.cmd("STORE 1 +FLAGS (\\Flagged)")
        status, lines = w.cmd("MOVE 1:2 INBOX")
        assert status == "OK", w.last_tagged
        assert lines[0].startswith(b"* OK [COPYUID %s 1:2 4:5]" % validity.group(1)), lines
        assert lines[1:3] == [b"* 2 EXPUNGE", b"* 1 EXPUNGE"], lines
        assert b"* 3 EXISTS" in lines[3:], lines
        _, lines = w.cmd("UID FETCH 1:* (FLAGS)")
        uids = [int(re.search(rb"UID (\d+)", x).group(1)) for x in lines]  # type: ignore[union-attr]
        assert uids == [3, 4, 5], lines
        assert b"\\Flagged" in lines[1], lines  # the flags go with the message
        status, lines = w.cmd("UID MOVE 5 INBOX")
        assert status == "OK" and lines[0].startswith(b"* OK [COPYUID %s 5 6]"
                                                      % validity.group(1)), lines
        w.close()
    await asyncio.to_thread(run)


async def test_fetch_modseq_enabling_condstore_sends_highestmodseq(imap_env: ImapEnv) -> None:
    """RFC 7162 §3.1: a CONDSTORE-enabling command (here FETCH MODSEQ, §3.1.4; SEARCH
    MODSEQ, §3.1.5) sent while a mailbox is selected first gets ``* OK [HIGHESTMODSEQ n]``
    when CONDSTORE was not enabled before; once enabled, it is not repeated."""
    await imap_env.deliver(message(1))

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("SELECT INBOX")
        highest = re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(lines))
        assert highest is not None
        status, lines = w.cmd("FETCH 1 (MODSEQ)")
        assert status == "OK"
        assert lines[0].startswith(b"* OK [HIGHESTMODSEQ %s]" % highest.group(1)), lines
        assert lines[1].startswith(b"* 1 FETCH (MODSEQ ("), lines
        _, lines = w.cmd("FETCH 1 (MODSEQ)")
        assert not any(b"HIGHESTMODSEQ" in x for x in lines), lines
        w.close()
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("SEARCH MODSEQ 1")
        assert lines[0].startswith(b"* OK [HIGHESTMODSEQ "), lines
        w.close()
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("FETCH 1 (FLAGS) (CHANGEDSINCE 1)")
        assert lines[0].startswith(b"* OK [HIGHESTMODSEQ "), lines
        w.close()
    await asyncio.to_thread(run)


async def test_new_keywords_are_announced_before_use(imap_env: ImapEnv) -> None:
    """RFC 3501 §7.2.6 / RFC 9051 §7.3.5: a keyword not yet in the mailbox's FLAGS is
    announced with an untagged FLAGS (and PERMANENTFLAGS, §7.1) to every session that has
    the mailbox selected, before a FETCH that uses it."""
    await imap_env.deliver(message(1))
    await imap_env.deliver(message(2))

    def run() -> None:
        a, b = Wire(imap_env), Wire(imap_env)
        _, lines = a.cmd("SELECT INBOX")
        assert b"$Urgent" not in b"\n".join(lines)
        b.cmd("SELECT INBOX")
        _, lines = a.cmd("STORE 1 +FLAGS ($Urgent)")
        flags_at = _at(lines, b"* FLAGS ")
        fetch_at = _at(lines, b" FETCH ")
        assert flags_at < fetch_at, lines
        assert b"$Urgent" in lines[flags_at] and b"\\Seen" in lines[flags_at], lines
        assert lines[flags_at + 1].startswith(b"* OK [PERMANENTFLAGS (") and \
            b"$Urgent" in lines[flags_at + 1] and b"\\*" in lines[flags_at + 1], lines
        # The other session learns it at its next command, before the FETCH.
        _, lines = b.cmd("NOOP")
        flags_at = _at(lines, b"* FLAGS ")
        fetch_at = _at(lines, b" FETCH ")
        assert flags_at < fetch_at and b"$Urgent" in lines[flags_at], lines
        # Known keywords are not announced again.
        _, lines = a.cmd("STORE 2 +FLAGS ($Urgent)")
        assert not any(x.startswith(b"* FLAGS") for x in lines), lines
        # A message that arrives with a new keyword (APPEND by another session).
        status, _ = b.append("INBOX", message(3), "$Labo")
        assert status == "OK"
        _, lines = a.cmd("NOOP")
        assert any(x.startswith(b"* FLAGS ") and b"$Labo" in x for x in lines), lines
        a.close()
        b.close()
    await asyncio.to_thread(run)


async def test_recent_count_after_expunge(imap_env: ImapEnv) -> None:
    """RFC 3501 §7.3.2: RECENT is sent when the number of recent messages changes, also
    when an expunge lowers it (IMAP4rev1; IMAP4rev2 has no RECENT)."""
    for n in range(1, 4):
        await imap_env.deliver(message(n))

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("SELECT INBOX")
        assert b"* 3 RECENT" in lines
        w.cmd("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
        _, lines = w.cmd("EXPUNGE")
        assert lines[:2] == [b"* 3 EXPUNGE", b"* 2 EXPUNGE"], lines
        assert b"* 1 RECENT" in lines[2:], lines
        # Expunged by another session: announced at the next command, RECENT with it.
        other = Wire(imap_env)
        other.cmd("SELECT INBOX")
        other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        other.cmd("EXPUNGE")
        other.close()
        _, lines = w.cmd("NOOP")
        assert b"* 1 EXPUNGE" in lines and b"* 0 RECENT" in lines, lines
        w.close()
    await asyncio.to_thread(run)
