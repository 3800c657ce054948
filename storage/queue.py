"""Outbound queue repository: one row per (message, remote recipient).

Workers claim due rows with a lease (``claimed_by``, ``claimed_until``): a row is due when
it is queued or deferred and its next attempt time has come, or when it is in flight but
the lease of the worker that took it has expired (that worker died). Claiming is one atomic
statement (see :func:`storage.engine.claim`), so two workers never get the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engine import claim
from storage.errors import NotFound
from storage.schema import queue
from storage.types import utcnow


@dataclass(frozen=True)
class QueueItem:
    id: int
    message_id: int
    sender: str
    recipient: str
    orcpt: str | None
    notify: str | None
    ret: str | None
    envid: str | None
    domain: str
    state: str
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    last_reply: str | None
    created_at: datetime
    expires_at: datetime
    delay_notified: bool


async def enqueue(
    conn: AsyncConnection,
    *,
    message_id: int,
    sender: str,
    recipient: str,
    expires_at: datetime,
    orcpt: str | None = None,
    notify: str | None = None,
    ret: str | None = None,
    envid: str | None = None,
    next_attempt_at: datetime | None = None,
) -> int:
    """Queues delivery of a stored message to one remote recipient; returns the row id."""
    domain = recipient.rsplit("@", 1)[-1].lower() if "@" in recipient else ""
    if not domain:
        raise ValueError(f"invalid recipient {recipient!r}: expected local@domain")
    now = utcnow()
    return int(
        (
            await conn.execute(
                queue.insert()
                .values(
                    message_id=message_id,
                    sender=sender,
                    recipient=recipient,
                    orcpt=orcpt,
                    notify=notify,
                    ret=ret,
                    envid=envid,
                    domain=domain,
                    state="queued",
                    attempts=0,
                    next_attempt_at=next_attempt_at or now,
                    created_at=now,
                    expires_at=expires_at,
                    delay_notified=False,
                )
                .returning(queue.c.id)
            )
        ).scalar_one()
    )


def _due(now: datetime) -> Any:
    return or_(
        and_(queue.c.state.in_(("queued", "deferred")), queue.c.next_attempt_at <= now),
        and_(queue.c.state == "inflight", queue.c.claimed_until < now),
    )


async def any_due(conn: AsyncConnection, now: datetime | None = None) -> bool:
    """Whether a row is due, read without taking the write lock (pollers ask this first)."""
    row = (await conn.execute(select(queue.c.id).where(_due(now or utcnow())).limit(1))).first()
    return row is not None


async def claim_due(
    conn: AsyncConnection,
    *,
    worker: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
    domain: str | None = None,
) -> list[QueueItem]:
    """Takes up to ``limit`` due rows for ``worker`` (state becomes ``inflight``).

    Commit promptly: on PostgreSQL the rows stay locked until the transaction ends, and
    other workers skip them meanwhile.
    """
    now = now or utcnow()
    due = _due(now)
    if domain is not None:
        due = and_(due, queue.c.domain == domain)
    rows = await claim(
        conn,
        queue,
        where=due,
        order_by=[queue.c.next_attempt_at, queue.c.id],
        limit=limit,
        values={
            "state": "inflight",
            "claimed_by": worker,
            "claimed_until": now + lease,
            "attempts": queue.c.attempts + 1,
        },
    )
    return sorted((QueueItem(**r._mapping) for r in rows), key=lambda i: i.id)


async def get(conn: AsyncConnection, item_id: int) -> QueueItem:
    row = (await conn.execute(select(queue).where(queue.c.id == item_id))).first()
    if row is None:
        raise NotFound(f"queue row {item_id} does not exist")
    return QueueItem(**row._mapping)


async def _finish(conn: AsyncConnection, item_id: int, **values: object) -> None:
    result = await conn.execute(update(queue).where(queue.c.id == item_id).values(**values))
    if result.rowcount == 0:
        raise NotFound(f"queue row {item_id} does not exist")


async def mark_sent(conn: AsyncConnection, item_id: int, reply: str) -> None:
    await _finish(
        conn, item_id, state="sent", last_reply=reply, claimed_by=None, claimed_until=None
    )


async def mark_deferred(
    conn: AsyncConnection, item_id: int, reply: str, next_attempt_at: datetime
) -> None:
    await _finish(
        conn,
        item_id,
        state="deferred",
        last_reply=reply,
        next_attempt_at=next_attempt_at,
        claimed_by=None,
        claimed_until=None,
    )


async def mark_bounced(conn: AsyncConnection, item_id: int, reply: str) -> None:
    await _finish(
        conn, item_id, state="bounced", last_reply=reply, claimed_by=None, claimed_until=None
    )


async def mark_delay_notified(conn: AsyncConnection, item_id: int) -> None:
    await _finish(conn, item_id, delay_notified=True)


async def pending_for_message(conn: AsyncConnection, message_id: int) -> int:
    """How many rows of a message still wait for an outcome (retention must keep its body)."""
    rows = await conn.execute(
        select(queue.c.id).where(
            queue.c.message_id == message_id, queue.c.state.in_(("queued", "inflight", "deferred"))
        )
    )
    return len(rows.all())
