"""Session traces: who authenticated how, from where, with which client (audit trail).

Callers must never put secrets or message content in ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import traces
from storage.types import utcnow


@dataclass(frozen=True)
class Trace:
    id: int
    created_at: datetime
    session_id: str
    service: str
    event: str
    detail: dict[str, Any]


async def record(
    conn: AsyncConnection,
    *,
    session_id: str,
    service: str,
    event: str,
    detail: dict[str, Any] | None = None,
) -> int:
    """Appends a trace row and returns its id."""
    return int(
        (
            await conn.execute(
                traces.insert()
                .values(
                    created_at=utcnow(),
                    session_id=session_id,
                    service=service,
                    event=event,
                    detail=detail or {},
                )
                .returning(traces.c.id)
            )
        ).scalar_one()
    )


async def for_session(conn: AsyncConnection, session_id: str) -> list[Trace]:
    rows = await conn.execute(
        select(traces).where(traces.c.session_id == session_id).order_by(traces.c.id)
    )
    return [Trace(**r._mapping) for r in rows]


async def recent(conn: AsyncConnection, *, limit: int = 100) -> list[Trace]:
    rows = await conn.execute(select(traces).order_by(traces.c.id.desc()).limit(limit))
    return [Trace(**r._mapping) for r in rows]
