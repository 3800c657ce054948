"""RFC 8514 SAVEDATE on the real server: the date a message was saved in *this* mailbox,
beside INTERNALDATE, and the SAVED* search keys."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

from tests.fixtures.imap import ImapEnv, message
from tests.imap.rfc_wire import Wire

_SAVEDATE = re.compile(rb'SAVEDATE "([^"]+)"')
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


def _date(pattern: re.Pattern[bytes], line: bytes) -> datetime:
    m = pattern.search(line)
    assert m is not None, line
    return datetime.strptime(m.group(1).decode(), "%d-%b-%Y %H:%M:%S %z")


async def test_savedate_fetch_copy_append_and_search(imap_env: ImapEnv) -> None:
    """RFC 8514 §3-4: FETCH SAVEDATE is when the message was saved in the mailbox: on
    delivery, on APPEND (whatever INTERNALDATE the client gave), and for a COPY the time
    of the copy while INTERNALDATE is kept (RFC 9051 §6.4.7). SAVEDBEFORE/SAVEDON/
    SAVEDSINCE compare that date; SAVEDATESUPPORTED matches every message of a mailbox
    that keeps save dates (all of them here)."""
    await imap_env.deliver(message(1))
    today = datetime.now(UTC).strftime("%d-%b-%Y")

    def run() -> None:
        w = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" SAVEDATE" in lines[0]
        w.cmd("SELECT INBOX")
        _, lines = w.cmd("FETCH 1 (INTERNALDATE SAVEDATE)")
        delivered = _date(_SAVEDATE, lines[0])
        assert abs((datetime.now(UTC) - delivered).total_seconds()) < 120
        time.sleep(1.1)
        assert w.cmd("COPY 1 Archive")[0] == "OK"
        raw = message(2)
        tag = w.imap._new_tag()  # type: ignore[attr-defined]
        w.imap.send(tag + b' APPEND INBOX "01-Feb-2020 08:00:00 +0100" {%d+}\r\n' % len(raw)
                    + raw + b"\r\n")
        while not w.response().startswith(tag + b" OK"):
            pass
        w.cmd("NOOP")
        _, lines = w.cmd("FETCH 2 (INTERNALDATE SAVEDATE)")
        assert _date(_INTERNALDATE, lines[0]).year == 2020
        assert _date(_SAVEDATE, lines[0]).year == datetime.now(UTC).year
        _, lines = w.cmd(f"SEARCH SAVEDSINCE {today} SINCE 1-Jan-2024")
        assert lines == [b"* SEARCH 1"], lines
        _, lines = w.cmd(f"SEARCH SAVEDON {today}")
        assert lines == [b"* SEARCH 1 2"], lines
        _, lines = w.cmd(f"SEARCH SAVEDBEFORE {today}")
        assert lines == [b"* SEARCH"], lines
        _, lines = w.cmd("SEARCH SAVEDATESUPPORTED")
        assert lines == [b"* SEARCH 1 2"], lines
        assert w.cmd("SEARCH SAVEDON 31-Foo-2025")[0] == "BAD"
        w.cmd("SELECT Archive")
        _, lines = w.cmd("FETCH 1 (INTERNALDATE SAVEDATE)")
        copied = _date(_SAVEDATE, lines[0])
        assert copied > delivered, (copied, delivered)
        w.close()

    await asyncio.to_thread(run)
