"""Queue-row operations the outbound worker and the ``mssante queue`` command add to
:mod:`storage.queue`: releasing claims at shutdown, making rows due now, removing a row,
and reading the message a row refers to.

They are plain statements on :data:`storage.schema.queue` in the caller's transaction, so an
administrator's ``retry`` or ``delete`` and the worker see one consistent state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import NotFound
from storage.queue import QueueItem
from storage.schema import messages, queue
from storage.types import utcnow

PENDING_STATES = ("queued", "inflight", "deferred")


@dataclass(frozen=True)
class QueuedMessage:
    """The stored message behind a queue row (``blob_id`` is None once purged)."""

    id: int
    blob_id: int | None
    message_id_header: str | None
    content_sha256: str
    size: int
    received_at: datetime


async def message_of(conn: AsyncConnection, message_id: int) -> QueuedMessage:
    row = (
        await conn.execute(
            select(
                messages.c.id,
                messages.c.blob_id,
                messages.c.message_id_header,
                messages.c.content_sha256,
                messages.c.size,
                messages.c.received_at,
            ).where(messages.c.id == message_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"message {message_id} does not exist")
    return QueuedMessage(**row._mapping)


async def release_claims(conn: AsyncConnection, worker: str) -> int:
    """Gives back the rows ``worker`` still holds (stopping): due again at once."""
    result = await conn.execute(
        update(queue)
        .where(queue.c.claimed_by == worker, queue.c.state == "inflight")
        .values(state="deferred", claimed_by=None, claimed_until=None, next_attempt_at=utcnow())
    )
    return int(result.rowcount or 0)


async def renew_claims(conn: AsyncConnection, worker: str, lease: timedelta) -> int:
    """Extends the lease of every row ``worker`` holds in flight; returns how many."""
    result = await conn.execute(
        update(queue)
        .where(queue.c.claimed_by == worker, queue.c.state == "inflight")
        .values(claimed_until=utcnow() + lease)
    )
    return int(result.rowcount or 0)


async def make_due(conn: AsyncConnection, item_id: int | None = None, *,
                   force: bool = False) -> int:
    """``retry``: a waiting row (or every waiting row) becomes due now; returns how many.

    A row in flight whose lease lapsed (the node that took it died) is waiting too and is
    taken back; with ``force``, so is one whose lease still runs (the operator knows that
    node is gone: if it is not, the message may be delivered twice).
    """
    now = utcnow()
    abandoned = and_(queue.c.state == "inflight",
                     true() if force else queue.c.claimed_until < now)
    stmt = update(queue).where(or_(queue.c.state.in_(("queued", "deferred")), abandoned))
    if item_id is not None:
        stmt = stmt.where(queue.c.id == item_id)
    result = await conn.execute(stmt.values(
        next_attempt_at=now,
        state=case((queue.c.state == "inflight", "deferred"), else_=queue.c.state),
        claimed_by=None, claimed_until=None))
    return int(result.rowcount or 0)


async def remove(conn: AsyncConnection, item_id: int) -> None:
    """``delete``: removes one row; raises :class:`NotFound` naming it."""
    result = await conn.execute(delete(queue).where(queue.c.id == item_id))
    if not result.rowcount:
        raise NotFound(f"queue row {item_id} does not exist")


async def list_rows(
    conn: AsyncConnection, *, states: tuple[str, ...] | None = None, limit: int = 1000
) -> list[QueueItem]:
    """Rows oldest first (all states unless ``states`` is given)."""
    stmt = select(queue).order_by(queue.c.id).limit(limit)
    if states:
        stmt = stmt.where(queue.c.state.in_(states))
    return [QueueItem(**r._mapping) for r in await conn.execute(stmt)]
