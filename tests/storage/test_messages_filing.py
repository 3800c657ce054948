"""Batched filing of messages (the accept path's write): one UID range and one MODSEQ per
folder per batch, reserved with a single statement, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import accounts, folders, messages
from storage.database import Database
from storage.errors import NotFound
from storage.schema import folders as folders_table


async def _message(conn: AsyncConnection, database: Database, n: int) -> int:
    ref = await database.blobs.put(conn, f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())
    return await messages.insert_message(
        conn,
        blob_id=ref.id, content_sha256=ref.content_sha256, size=ref.size, header_size=14,
        internal_date=datetime(2026, 3, 1, tzinfo=UTC), message_id_header=f"<{n}@t>",
        sealed_view=ref.metadata.seal(b"view", b"{}") if ref.metadata else None,
    )


async def test_batch_reserves_uids_and_one_modseq_per_folder(database: Database) -> None:
    async with database.begin() as conn:
        acc = await accounts.create(conn, address="filing@mssante.test", type="PER")
        inbox = await folders.create(conn, acc.id, "INBOX")
        other = await folders.create(conn, acc.id, "Archives")
        before = {f.id: f.highestmodseq for f in (inbox, other)}
        ids = [await _message(conn, database, n) for n in range(3)]
        first = await messages.file_messages(conn, [
            messages.Placement(inbox.id, ids[0]),
            messages.Placement(other.id, ids[1]),
            messages.Placement(inbox.id, ids[2], ("\\Seen",)),
        ])
        assert first == [1, 1, 2]
        second = await messages.file_messages(conn, [messages.Placement(inbox.id, ids[1])])
        assert second == [3]
        state = {
            r.id: (r.uidnext, r.highestmodseq)
            for r in await conn.execute(
                select(folders_table.c.id, folders_table.c.uidnext, folders_table.c.highestmodseq)
            )
        }
        # RFC 3501 §2.3.1.1: UIDNEXT follows the last UID; RFC 7162 §3.1.1: one MODSEQ a batch
        assert state[inbox.id] == (4, before[inbox.id] + 2)
        assert state[other.id] == (2, before[other.id] + 1)
        rows = await messages.fetch_range(conn, inbox.id)
        assert [(r.uid, r.modseq) for r in rows] == [
            (1, before[inbox.id] + 1), (2, before[inbox.id] + 1), (3, before[inbox.id] + 2),
        ]
        assert rows[1].flags == ("\\Seen",)


async def test_filing_into_a_missing_folder_is_refused(database: Database) -> None:
    async with database.begin() as conn:
        acc = await accounts.create(conn, address="nofolder@mssante.test", type="PER")
        await folders.create(conn, acc.id, "INBOX")
        message_id = await _message(conn, database, 9)
        with pytest.raises(NotFound, match="folder 999999 does not exist"):
            await messages.file_messages(conn, [messages.Placement(999999, message_id)])
