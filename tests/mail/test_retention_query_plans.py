"""The retention jobs find old messages through the ``received_at`` index.

Both run their reads on the event loop (SQLite reads are inline), so a query that scans the
whole ``messages`` table stops every SMTP, IMAP and web session of the process for the time
of the scan: 139 ms with 25,000 messages in the webmail benchmark, seconds with a million.
With ``ORDER BY id`` SQLite preferred walking the table in id order (no sort needed) and
testing each row's ``received_at``; ordering by ``(received_at, id)`` lets it seek.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mail.expiry_digest import expiring_query
from mail.retention import due_query
from storage.database import Database


async def _plan(database: Database, query: object) -> str:
    async with database.read() as conn:
        sql = str(query.compile(conn.sync_connection,  # type: ignore[attr-defined]
                                compile_kwargs={"literal_binds": True}))
        rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all()
    return " | ".join(str(r[-1]) for r in rows)


async def test_purge_seeks_by_arrival(sqlite_database: Database) -> None:
    cutoff = datetime(2026, 9, 1, tzinfo=UTC)
    for skipped in (set(), {3, 9}):
        plan = await _plan(sqlite_database, due_query(cutoff, skipped, 50))
        assert "USING INDEX ix_messages_received_at" in plan, plan
        assert "SCAN messages" not in plan, plan


async def test_expiry_digest_seeks_by_arrival(sqlite_database: Database) -> None:
    cutoff = datetime(2026, 9, 1, tzinfo=UTC)
    for after in (None, (datetime(2026, 8, 1, tzinfo=UTC), 120)):
        plan = await _plan(sqlite_database, expiring_query(cutoff, after, 500))
        assert "USING INDEX ix_messages_received_at" in plan, plan
        assert "SCAN messages" not in plan, plan
