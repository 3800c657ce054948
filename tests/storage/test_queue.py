"""Outbound queue on both engines: claiming is exclusive under concurrency, leases expire."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage import messages, queue
from storage.database import Database
from storage.types import utcnow


async def _message(db: Database) -> int:
    async with db.begin() as conn:
        ref = await db.blobs.put(conn, b"Subject: q\r\n\r\nq\r\n")
        return await messages.insert_message(
            conn, blob_id=ref.id, content_sha256=ref.content_sha256, size=ref.size, header_size=12
        )


async def test_concurrent_claimers_never_share_a_row(database: Database) -> None:
    mid = await _message(database)
    expires = utcnow() + timedelta(days=5)
    async with database.begin() as conn:
        for i in range(60):
            await queue.enqueue(
                conn,
                message_id=mid,
                sender="a@mssante.test",
                recipient=f"r{i}@Hopital.MSSante.fr",
                expires_at=expires,
            )

    async def worker(name: str) -> list[int]:
        got: list[int] = []
        while True:
            async with database.begin() as conn:
                items = await queue.claim_due(
                    conn, worker=name, limit=3, lease=timedelta(minutes=5)
                )
            if not items:
                return got
            assert all(i.claimed_by == name and i.state == "inflight" for i in items)
            got.extend(i.id for i in items)
            await asyncio.sleep(0)

    results = await asyncio.gather(*(worker(f"w{n}") for n in range(6)))
    claimed = [i for r in results for i in r]
    assert len(claimed) == 60 and len(set(claimed)) == 60
    assert sum(1 for r in results if r) >= 2  # the claimers really ran side by side


async def test_states_and_lease_expiry(database: Database) -> None:
    mid = await _message(database)
    now = utcnow()
    async with database.begin() as conn:
        a = await queue.enqueue(
            conn,
            message_id=mid,
            sender="s@mssante.test",
            recipient="x@chu.fr",
            expires_at=now + timedelta(days=1),
            notify="SUCCESS,FAILURE",
            envid="E1",
        )
        later = await queue.enqueue(
            conn,
            message_id=mid,
            sender="s@mssante.test",
            recipient="y@chu.fr",
            expires_at=now + timedelta(days=1),
            next_attempt_at=now + timedelta(hours=1),
        )
    async with database.begin() as conn:
        items = await queue.claim_due(conn, worker="w1", limit=10, lease=timedelta(seconds=30))
        assert [i.id for i in items] == [a] and items[0].attempts == 1
        assert items[0].domain == "chu.fr"
        # nothing else due; the claimed row is leased
        assert await queue.claim_due(conn, worker="w2", limit=10, lease=timedelta(seconds=30)) == []
        # w1 died: after the lease, another worker takes the row again
        retaken = await queue.claim_due(
            conn, worker="w2", limit=10, lease=timedelta(seconds=30), now=now + timedelta(minutes=2)
        )
        assert [i.id for i in retaken] == [a] and retaken[0].attempts == 2
        await queue.mark_deferred(conn, a, "451 4.4.1 try later", now + timedelta(minutes=10))
        assert await queue.pending_for_message(conn, mid) == 2
        due = await queue.claim_due(
            conn, worker="w3", limit=10, lease=timedelta(seconds=30), now=now + timedelta(hours=2)
        )
        assert sorted(i.id for i in due) == sorted([a, later])
        await queue.mark_sent(conn, a, "250 2.0.0 ok")
        await queue.mark_bounced(conn, later, "550 5.1.1 unknown")
        await queue.mark_delay_notified(conn, later)
        got = await queue.get(conn, later)
        assert (got.state, got.delay_notified, got.claimed_by) == ("bounced", True, None)
        assert (await queue.get(conn, a)).last_reply == "250 2.0.0 ok"
        assert await queue.pending_for_message(conn, mid) == 0
