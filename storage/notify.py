"""Cross-node change notification over PostgreSQL ``LISTEN``/``NOTIFY`` (docs/architecture.md §4).

Each gateway node keeps one dedicated asyncpg connection that ``LISTEN``s on
``mssante_changes`` and sends the folder ids its own commits changed with ``pg_notify``.
Payloads are ``<node id>:<id>,<id>,...`` so a node ignores its own echo. PostgreSQL
delivers a notification only after the sending transaction commits, and we send only after
our commit, so a woken session always finds the change in the database.

SQLite has no such channel: its worker processes share one machine, and the supervisor
relays their changes (gateway/worker_link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from storage.database import Database

log = logging.getLogger("mssante.storage.notify")

CHANNEL = "mssante_changes"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; stay well below.
MAX_PAYLOAD = 7000
RECONNECT_DELAY = 1.0
HEALTH_CHECK = 5.0  # seconds between checks of an idle listening connection


def _chunks(node: str, ids: list[int]) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    size = len(node) + 1
    for folder_id in ids:
        text = str(folder_id)
        if current and size + len(text) + 1 > MAX_PAYLOAD:
            out.append(f"{node}:{','.join(current)}")
            current, size = [], len(node) + 1
        current.append(text)
        size += len(text) + 1
    if current:
        out.append(f"{node}:{','.join(current)}")
    return out


def parse_payload(payload: str, own_node: str) -> list[int]:
    """Folder ids of a notification from another node ([] for our own or a malformed one)."""
    node, sep, rest = payload.partition(":")
    if not sep or node == own_node:
        return []
    try:
        return [int(x) for x in rest.split(",") if x]
    except ValueError:
        return []


class PgChangeChannel:
    """One node's LISTEN/NOTIFY connection; ``publish`` never blocks the caller."""

    def __init__(self, dsn: str, on_remote: Callable[[list[int]], None],
                 on_reconnect: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_remote = on_remote
        self._on_reconnect = on_reconnect
        self.node = secrets.token_hex(6)
        self._queue: asyncio.Queue[set[int]] = asyncio.Queue()
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        """Connects and listens before returning, so no change after start is missed."""
        await self._connect()
        self._task = asyncio.create_task(self._sender(), name="pg-change-notify")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def publish(self, folder_ids: set[int]) -> None:
        """Queues ``folder_ids`` for the other nodes (called after the local commit)."""
        if folder_ids:
            self._queue.put_nowait(set(folder_ids))

    def _listener(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        ids = parse_payload(payload, self.node)
        if ids:
            self._on_remote(ids)

    def _terminated(self, _conn: Any) -> None:
        self._connected.clear()

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(CHANNEL, self._listener)
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self._connected.set()

    async def _sender(self) -> None:
        while True:
            try:
                ids = await asyncio.wait_for(self._queue.get(), HEALTH_CHECK)
            except TimeoutError:
                if not self._connected.is_set():
                    # A node that only listens must come back too after a lost connection.
                    with contextlib.suppress(Exception):
                        await self._reconnect()
                continue
            while not self._queue.empty():  # coalesce what piled up meanwhile
                ids |= self._queue.get_nowait()
            for attempt in range(2):
                try:
                    if self._conn is None or not self._connected.is_set():
                        await self._reconnect()
                    for payload in _chunks(self.node, sorted(ids)):
                        await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                    break
                except Exception as exc:  # noqa: BLE001 - connection or server errors
                    self._log_lost(exc, attempt)
                    self._connected.clear()

    def _log_lost(self, exc: BaseException, attempt: int) -> None:
        log.warning("change_notify_failed", extra={"fields": {
            "error": type(exc).__name__, "retry": attempt == 0}})

    async def _reconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        await asyncio.sleep(RECONNECT_DELAY)
        await self._connect()
        # Notifications sent while we were away are lost: every session looks again.
        self._on_reconnect()


async def open_change_channel(
    db: Database, on_remote: Callable[[Iterable[int]], None], on_reconnect: Callable[[], None]
) -> PgChangeChannel | None:
    """A started channel when the database is PostgreSQL; None for SQLite (one node)."""
    url = db.engine.url
    if url.get_backend_name() != "postgresql":
        return None
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    channel = PgChangeChannel(dsn, on_remote, on_reconnect)
    await channel.start()
    return channel
