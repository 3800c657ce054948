"""Watching the access version, so that withdrawn access ends in open sessions.

Sessions decide at login and at SELECT what their user may reach; :mod:`storage.access`
counts every change that could make such a decision wrong (delegation revoked, folder ACL
changed, application password revoked, account suspended or closed). :class:`AccessWatch`
reads that counter once per ``interval`` seconds in one background task per process (one
primary-key read) and, when it moved, sets an event the sessions wait on (IMAP IDLE) and
publishes the new value, which every session compares with the one it last checked at
its next command. A change made in this process is seen at once (:meth:`refresh`); one
made by another process or node (``mssante delegations revoke``, the portal of another
node) within ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from storage import access as access_rows
from storage.database import Database

log = logging.getLogger("mssante.accounts")

RECHECK_INTERVAL = 1.0


class AccessWatch:
    """The access version as this process last read it, kept fresh by a background task."""

    def __init__(self, db: Database, interval: float = RECHECK_INTERVAL) -> None:
        self._db = db
        self.interval = interval
        self.version: int | None = None
        """None until first read; sessions compare it with the value they last checked."""
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Reads the version and starts polling (idempotent; the first login calls it)."""
        if self._task is not None:
            return
        await self.refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="access-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def changed(self) -> asyncio.Event:
        """An event set at the next change (take it before checking, then wait on it)."""
        return self._changed

    async def refresh(self) -> int:
        """Reads the version now; wakes the waiters when it moved. Returns it."""
        async with self._lock:
            async with self._db.read() as conn:
                value = await access_rows.current(conn)
            if value != self.version:
                first = self.version is None
                self.version = value
                if not first:
                    event, self._changed = self._changed, asyncio.Event()
                    event.set()
                    log.info("access_changed", extra={"fields": {"version": value}})
            return value

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a database hiccup: try again next time
                log.warning("access_watch_failed", extra={"fields": {
                    "error": type(exc).__name__}})
