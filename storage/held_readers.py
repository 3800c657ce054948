"""Read connections kept connected between read transactions (SQLite's inline readers).

Why: on SQLite a read transaction costs microseconds in SQLite and about 170 µs around it
in SQLAlchemy's asyncio layer, most of it checking a connection out of the pool and back:
the check-in runs in a task of its own (so that a cancelled caller still finishes it),
which costs a task and three turns of the event loop per read. The submission of one
message opens half a dozen read transactions (MAIL's sender settings, RCPT's mailbox, the
vacation check, …), IMAP commands and webmail pages as many.

:class:`HeldReaders` keeps up to ``keep`` connected :class:`AsyncConnection` objects and
runs each transaction on one of them: ``BEGIN`` (deferred: no lock, a snapshot at the first
read) to ``COMMIT``, then the connection waits, outside any transaction, for the next
reader. A connection left in a transaction or invalidated is closed instead. The inline
connections never suspend (:mod:`storage.sqlite_inline`), so nothing here races.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class HeldReaders:
    """Connected readers of ``engine``, at most ``keep`` of them idle at a time."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[AsyncConnection] = []
        self._closed = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction on a held connection (a new one when none is idle)."""
        conn = self._idle.pop() if self._idle else await self._engine.connect().start()
        try:
            async with conn.begin():
                yield conn
        finally:
            if (self._closed or len(self._idle) >= self._keep or conn.invalidated
                    or conn.in_transaction()):
                await conn.close()
            else:
                self._idle.append(conn)

    @property
    def idle(self) -> int:
        """How many connections wait for a reader now."""
        return len(self._idle)

    async def close(self) -> None:
        """Closes the idle connections; those in use are closed when their block ends."""
        self._closed = True
        while self._idle:
            await self._idle.pop().close()
