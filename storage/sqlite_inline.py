"""SQLite read connections that run on the event loop thread, for SQLAlchemy's asyncio layer.

Why: aiosqlite gives every connection its own thread and crosses to it for every call
(cursor, execute, fetch, commit), each crossing a queue put, a thread wake-up and a
``call_soon_threadsafe`` back. A primary-key lookup costs about 2 ms that way, a hundred
times what SQLite itself needs, and that overhead bounds IMAP throughput (every command
reads the folder and its rows).

Reads of a WAL database never wait for writers: a deferred ``BEGIN`` takes a snapshot and
SQLite answers from the page cache in microseconds, so running them inline is cheaper than
any hand-off. These objects give SQLAlchemy the coroutine interface it expects from an
asyncio driver (the shape of aiosqlite's), but each coroutine completes without
suspending.

Writers get the same connections with an ``offload`` executor: the two steps that may wait
— ``BEGIN IMMEDIATE`` when another process holds the write lock (the busy timeout), and
``COMMIT`` (fsync, and the WAL checkpoint it may run) — go to that thread, and the rest
runs inline. Writers of this process never wait for each other in
SQLite: :meth:`storage.database.Database.begin` queues them first.

Writers of *different* processes (the worker processes of ``[gateway] workers``, the
supervisor's background jobs) queue on a :class:`WriterLock` before ``BEGIN IMMEDIATE``.
Without it they met in SQLite's busy handler, which polls by sleeping 1, 2, 5, 10, 15, 20,
25 … 100 ms: a worker whose ``BEGIN`` found the other's transaction open slept on while the
lock was free, and the other took it again. Measured with two workers (10 KB SMTP load):
half the messages per commit of one worker (0.33 fsyncs per message instead of 0.16) and
more CPU per message. An ``flock`` wait is woken by the kernel the moment the holder's
``COMMIT`` is through, so the processes alternate, and each one's next group gathers the
writers that arrived while the other committed: the group commit batches as with one
process. SQLite's own lock and busy timeout stay the rule for everything else (the
command-line tools, the aiosqlite engine), so nothing relies on every writer taking it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from typing import Any


async def _offloaded(executor: Executor, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in ``executor``; if the caller is cancelled meanwhile, the call is
    still waited for, so that nothing else (a rollback) touches the connection while it
    runs in the other thread."""
    future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


OFFLOAD_PAYLOAD = 256 * 1024
"""Octets of bound values above which a writer's ``executemany`` leaves the loop thread
(the encrypted segments of a large message: ~1 ms per MB in SQLite, more with the WAL)."""


def _payload(rows: Sequence[Sequence[Any]]) -> int:
    """Octets of the ``bytes``/``str`` values bound in ``rows`` (rows are tuples or dicts)."""
    total = 0
    for row in rows:
        values = row.values() if isinstance(row, dict) else row
        for value in values:
            if isinstance(value, bytes | bytearray | memoryview | str):
                total += len(value)
    return total


def _begin_without_waiting(cursor: sqlite3.Cursor, sql: str) -> bool:
    """Runs ``BEGIN …`` inline with the busy timeout off: True when it took the lock.

    The writers of this process are queued before they begin, so the lock is free unless
    another process (a command-line tool) writes; only then does the caller wait, in the
    offload thread, with the configured timeout.
    """
    conn = cursor.connection
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout=0")
    try:
        cursor.execute(sql)
        return True
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
            raise
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(timeout)}")


def lock_path(database: str) -> str:
    """The file the writers of ``database`` lock (empty; next to the ``-wal`` file)."""
    return f"{database}-writer"


class WriterLock:
    """An exclusive ``flock`` on :func:`lock_path`, held by one connection from its
    ``BEGIN`` to the end of its transaction (see the module docstring for why).

    Each connection opens the file itself: ``flock`` belongs to the open file, so two
    connections exclude each other whether they live in one process or two, and a process
    that dies releases it with its files. Not ``fcntl``/``lockf`` locks, and not on the
    database file: those are SQLite's own, and closing any descriptor of a file drops the
    process's POSIX locks on it.
    """

    __slots__ = ("_fd", "held")

    def __init__(self, database: str) -> None:
        self._fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.held = False

    def try_acquire(self) -> bool:
        """Takes the lock if it is free, without waiting."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    def acquire(self) -> None:
        """Waits for the lock (in the offload thread): woken as soon as it is released."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        with contextlib.suppress(OSError):
            os.close(self._fd)


class InlineCursor:
    """An ``aiosqlite.Cursor``-shaped wrapper whose coroutines finish at once."""

    __slots__ = ("_cursor", "_lock", "_offload")

    def __init__(self, cursor: sqlite3.Cursor, offload: Executor | None = None,
                 lock: WriterLock | None = None) -> None:
        self._cursor = cursor
        self._offload = offload
        self._lock = lock

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        if self._offload is not None and sql[:5].upper() == "BEGIN":
            await self._begin(self._offload, sql)
        elif parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def _begin(self, offload: Executor, sql: str) -> None:
        lock = self._lock
        try:
            if lock is not None and not lock.try_acquire():
                # Another process's writer is in its transaction: queue behind it there.
                await _offloaded(offload, lock.acquire)
            if not _begin_without_waiting(self._cursor, sql):
                # A process that does not take the lock file writes: busy timeout, there.
                await _offloaded(offload, self._cursor.execute, sql)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        if self._offload is not None:
            rows = list(parameters)
            if _payload(rows) > OFFLOAD_PAYLOAD:
                # Copying a large body into the database pages is CPU work without the GIL
                # (sqlite3 releases it in each step): done in the writer's thread, the loop
                # goes on serving the other sessions meanwhile.
                await _offloaded(self._offload, self._cursor.executemany, sql, rows)
                return self
            parameters = rows
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """An ``aiosqlite.Connection``-shaped wrapper around one :mod:`sqlite3` connection.

    ``_connection`` and ``_conn`` mirror aiosqlite's attributes that SQLAlchemy's dialect
    looks at (is the connection open; the raw connection).
    """

    def __init__(self, conn: sqlite3.Connection, offload: Executor | None = None,
                 lock: WriterLock | None = None) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._offload = offload
        self._lock = lock

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._open().isolation_level = value

    def begin_inline(self) -> None:
        """A deferred ``BEGIN`` on this thread (readers: it takes no lock, never waits)."""
        self._open().execute("BEGIN")

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._open().cursor(), self._offload, self._lock)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        cursor = self.cursor()
        return await cursor.execute(sql, parameters)

    async def commit(self) -> None:
        conn = self._open()
        if self._offload is None:
            conn.commit()
        else:
            # fsync (synchronous=FULL) and any automatic WAL checkpoint happen here.
            await _offloaded(self._offload, self._commit_and_release, conn)

    def _commit_and_release(self, conn: sqlite3.Connection) -> None:
        try:
            conn.commit()
        finally:
            # Still open after a failed COMMIT (a deferred foreign key): kept until the
            # rollback that follows, so no other writer finds SQLite's lock taken.
            if self._lock is not None and not conn.in_transaction:
                self._lock.release()

    async def rollback(self) -> None:
        try:
            self._open().rollback()
        finally:
            if self._lock is not None:
                self._lock.release()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Closes at once (SQLAlchemy's forced terminate)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def inline_connector(path: str, timeout_s: float, offload: Executor | None = None) -> Any:
    """An ``async_creator`` for :func:`sqlalchemy.ext.asyncio.create_async_engine`.

    ``check_same_thread`` is off so that ``offload`` may run ``BEGIN`` and ``COMMIT`` (and
    the pool may close a connection from a garbage-collection callback); a connection is
    only ever used by one transaction at a time. Writers (with ``offload``) of a database
    file take its :class:`WriterLock` for each transaction.
    """
    on_disk = path not in ("", ":memory:") and not path.startswith("file:")

    async def connect() -> InlineConnection:
        conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            lock = WriterLock(path) if offload is not None and on_disk else None
        except BaseException:
            conn.close()
            raise
        return InlineConnection(conn, offload, lock)

    return connect
