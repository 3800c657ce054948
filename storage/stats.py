"""Aggregates an operator watches: queue depth and age, ledger size, accounts by type.

Read at each metrics scrape and by ``mssante status``: a few grouped counts over indexed
columns, never a scan of message rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import accounts, proof_checkpoints, proofs, queue


@dataclass(frozen=True)
class StoreStats:
    """One reading of the aggregates."""

    queue_by_state: dict[str, int] = field(default_factory=dict)
    oldest_waiting: datetime | None = None
    """Creation time of the oldest row still queued, in flight or deferred."""
    proofs_total: int = 0
    last_checkpoint_seq: int = 0
    last_checkpoint_at: datetime | None = None
    accounts_by_type_status: dict[tuple[str, str], int] = field(default_factory=dict)


WAITING = ("queued", "inflight", "deferred")


async def read_stats(conn: AsyncConnection) -> StoreStats:
    """Reads every aggregate in one read transaction."""
    by_state = {
        str(state): int(count)
        for state, count in (
            await conn.execute(select(queue.c.state, func.count()).group_by(queue.c.state))
        ).all()
    }
    oldest = (
        await conn.execute(
            select(func.min(queue.c.created_at)).where(queue.c.state.in_(WAITING))
        )
    ).scalar()
    total = (await conn.execute(select(func.max(proofs.c.seq)))).scalar() or 0
    last = (
        await conn.execute(
            select(proof_checkpoints.c.seq, proof_checkpoints.c.created_at)
            .order_by(proof_checkpoints.c.seq.desc())
            .limit(1)
        )
    ).first()
    by_account = {
        (str(kind), str(status)): int(count)
        for kind, status, count in (
            await conn.execute(
                select(accounts.c.type, accounts.c.status, func.count()).group_by(
                    accounts.c.type, accounts.c.status
                )
            )
        ).all()
    }
    return StoreStats(
        queue_by_state=by_state,
        oldest_waiting=oldest,
        proofs_total=int(total),
        last_checkpoint_seq=int(last[0]) if last else 0,
        last_checkpoint_at=last[1] if last else None,
        accounts_by_type_status=by_account,
    )
