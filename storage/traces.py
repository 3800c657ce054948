"""Session traces: who authenticated how, from where, with which client (audit trail).

Callers must never put secrets or message content in ``detail``. Login attempts are
written through :class:`TraceBuffer`: an attacker's thousand wrong passwords must not cost a
thousand commits, so rows are gathered for a moment and written in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import traces
from storage.types import canonical_json, utcnow

if TYPE_CHECKING:
    from storage.database import Database

log = logging.getLogger("mssante.storage.traces")


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


async def purge_before(conn: AsyncConnection, cutoff: datetime, *, limit: int) -> int:
    """Deletes at most ``limit`` traces recorded before ``cutoff`` (oldest first); returns
    how many. Traces have their own lifetime (``[retention] traces_days``)."""
    ids = select(traces.c.id).where(traces.c.created_at < cutoff) \
        .order_by(traces.c.id).limit(limit).scalar_subquery()
    result = await conn.execute(delete(traces).where(traces.c.id.in_(ids)))
    return int(result.rowcount or 0)


async def for_session(conn: AsyncConnection, session_id: str) -> list[Trace]:
    rows = await conn.execute(
        select(traces).where(traces.c.session_id == session_id).order_by(traces.c.id)
    )
    return [Trace(**r._mapping) for r in rows]


async def recent(conn: AsyncConnection, *, limit: int = 100) -> list[Trace]:
    rows = await conn.execute(select(traces).order_by(traces.c.id.desc()).limit(limit))
    return [Trace(**r._mapping) for r in rows]


class TraceBuffer:
    """Trace rows added without waiting, written together ``delay`` seconds later.

    At most ``max_rows`` wait; beyond that new rows are counted and dropped (logged), so a
    flood cannot grow memory. :meth:`close` writes what is left.
    """

    def __init__(self, db: Database, *, delay: float = 0.2, max_rows: int = 10_000) -> None:
        self._db = db
        self._delay = delay
        self._max = max_rows
        self._rows: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def add(self, *, session_id: str, service: str, event: str,
            detail: dict[str, Any] | None = None) -> None:
        if len(self._rows) >= self._max:
            self.dropped += 1
            return
        self._rows.append({"created_at": utcnow(), "session_id": session_id,
                           "service": service, "event": event, "detail": detail or {}})
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self._delay)
        # Rows added while a write waits for the database are written by this task too:
        # ``add`` starts no new task while this one runs.
        while self._rows:
            await self.flush()

    async def flush(self) -> None:
        """Writes the waiting rows now (one transaction)."""
        rows, self._rows = self._rows, []
        if self.dropped:
            log.warning("traces_dropped", extra={"fields": {"rows": self.dropped}})
            self.dropped = 0
        if not rows:
            return
        try:
            async with self._db.begin() as conn:
                await conn.execute(traces.insert(), rows)
        except Exception as exc:  # noqa: BLE001 - the audit trail must not break logins
            log.warning("traces_write_failed", extra={"fields": {
                "rows": len(rows), "error": type(exc).__name__}})

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task  # at most ``delay`` seconds, and its rows are written
        self._task = None
        await self.flush()


AUTH_EVENTS = ("auth_success", "auth_failure")


async def auth_attempts(conn: AsyncConnection, login: str, *, limit: int = 20,
                        since: datetime | None = None) -> list[Trace]:
    """The newest authentication attempts traced under ``login`` (every protocol).

    Details are stored as canonical JSON text (:func:`storage.types.canonical_json`), so
    the login is matched as its exact ``"login":"…"`` member, on both engines."""
    member = canonical_json({"login": login})[1:-1]
    pattern = "%" + member.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = (select(traces).where(traces.c.event.in_(AUTH_EVENTS),
                                 cast(traces.c.detail, Text).like(pattern, escape="\\"))
            .order_by(traces.c.id.desc()).limit(limit))
    if since is not None:
        stmt = stmt.where(traces.c.created_at >= since)
    return [Trace(**r._mapping) for r in await conn.execute(stmt)]
