"""Group commit of the SQLite write transactions of one process.

SQLite has one writer at a time. Committing each small transaction on its own (a STORE,
an EXPUNGE, a \\Recent claim) costs a round trip to the commit thread and an fsync while
every other writer waits in line, so under load writers queue for far longer than they
work. Here consecutive write transactions share one SQLite transaction: each runs inside
its own ``SAVEPOINT`` (its failure rolls back its work only), and the group is committed
with one ``COMMIT`` when no other writer is waiting, or when it has grown to
:data:`MAX_MEMBERS`. A writer's ``async with`` returns only after the group's commit, so
"committed on return" still holds; if that commit fails, every member of the group gets
the error — none of them was ever told it succeeded.

Writers take turns (one asyncio lock) only while their block runs, not during the commit:
writers arriving during a commit gather for the next group, which begins as soon as the
commit is through. A member that fails closes its group at once, in case SQLite rolled the
whole transaction back (I/O errors, disk full).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

MAX_MEMBERS = 64
"""Write transactions committed together at most."""

_IN_WRITE: ContextVar[bool] = ContextVar("mssante_in_write_transaction", default=False)


class _Group:
    __slots__ = ("conn", "done", "members", "trans")

    def __init__(self, conn: AsyncConnection, trans: AsyncTransaction) -> None:
        self.conn = conn
        self.trans = trans
        self.members = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Nobody may be left to hear of a failed commit (all members cancelled).
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())


class WriteGroups:
    """Hands out write transactions that commit in groups (see the module docstring)."""

    def __init__(self, writer: AsyncEngine) -> None:
        self._writer = writer
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._group: _Group | None = None
        self._commits: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: a savepoint of the open group, durable on return."""
        if _IN_WRITE.get():
            # A second writer inside the first would wait for it forever.
            raise RuntimeError("nested write transaction: SQLite has a single writer")
        self._waiting += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._waiting -= 1
            self._settle()  # the group may have been kept open for this writer
            raise
        self._waiting -= 1
        locked = True
        try:
            group = self._group
            if group is None:
                group = self._group = await self._open()
            group.members += 1
            token = _IN_WRITE.set(True)
            failed = True
            try:
                async with group.conn.begin_nested():
                    yield group.conn
                failed = False
            finally:
                _IN_WRITE.reset(token)
                self._lock.release()
                locked = False
                if failed:
                    self._close(group)
                self._settle()
        finally:
            if locked:
                self._lock.release()
                self._settle()
        await asyncio.shield(group.done)

    async def _open(self) -> _Group:
        # The previous group holds SQLite's write lock until its COMMIT is through: begin
        # after it (a BEGIN sent to the commit thread first would wait for it forever).
        while self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
        conn = await self._writer.connect()
        try:
            trans = await conn.begin()  # BEGIN IMMEDIATE (storage.engine)
        except BaseException:
            await conn.close()
            raise
        return _Group(conn, trans)

    def _settle(self) -> None:
        """Commits the open group unless another writer is about to join it."""
        group = self._group
        if group is None or self._lock.locked():
            return
        if self._waiting == 0 or group.members >= MAX_MEMBERS:
            self._close(group)

    def _close(self, group: _Group) -> None:
        if self._group is group:
            self._group = None
            task = asyncio.ensure_future(self._commit(group))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)

    @staticmethod
    async def _commit(group: _Group) -> None:
        try:
            await group.trans.commit()
        except asyncio.CancelledError:
            group.done.cancel()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to every member
            group.done.set_exception(exc)
            # SQLite keeps the transaction open after some failed COMMITs (a deferred
            # foreign key): end it before the connection goes back to the pool.
            try:
                await group.conn.rollback()
            except Exception:  # noqa: BLE001, S110 - the connection is closed just below
                pass
        else:
            group.done.set_result(None)
        finally:
            await group.conn.close()

    async def wait_idle(self) -> None:
        """Waits for the commits in flight (at shutdown)."""
        group = self._group
        if group is not None and not self._lock.locked():
            self._close(group)
        while self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
