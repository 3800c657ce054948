"""The trace buffer writes every row it was given, whenever it came."""

from __future__ import annotations

import asyncio

from storage import traces
from storage.database import Database


async def test_row_added_while_a_write_runs_is_written_too(database: Database) -> None:
    """A row added while the buffer's previous write was waiting for the database stayed
    in memory until some later trace came (failed before: an IMAP login right after an
    SMTP AUTH was missing from the traces)."""
    buffer = traces.TraceBuffer(database, delay=0.0)
    buffer.add(session_id="first", service="smtp", event="auth_success")
    for _ in range(20):  # until the first write is under way
        await asyncio.sleep(0)
        if not buffer._rows:
            break
    buffer.add(session_id="second", service="imap", event="auth_success")
    for _ in range(100):
        async with database.read() as conn:
            seen = {t.session_id for t in await traces.recent(conn)}
        if seen == {"first", "second"}:
            break
        await asyncio.sleep(0.05)
    assert seen == {"first", "second"}
    await buffer.close()
