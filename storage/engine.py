"""The database engine: the only module that knows whether SQLite or PostgreSQL is in use.

Everything engine-specific lives here (connection pragmas, pool settings, upsert syntax,
row claiming, serialisation locks) so that repositories stay portable SQLAlchemy Core.

SQLite transactions: every transaction opened on the SQLite engine starts with
``BEGIN IMMEDIATE``, so a transaction that reads and then writes takes the write lock up
front and waits (``busy_timeout``) instead of failing with ``SQLITE_BUSY`` half-way through.
Read-only work that must not queue behind writers can use :func:`read_only`, which opens
plain deferred transactions (WAL readers never block writers). On SQLite,
:func:`create_read_engine` goes further: its connections run on the event loop thread
(:mod:`storage.sqlite_inline`), are ``query_only`` and share the file through ``mmap``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, cast

from sqlalchemy import Select, Table, event, select, text, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Row, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Insert

from config.settings import Settings
from storage.errors import DatabaseUnavailable
from storage.sqlite_inline import InlineConnection, inline_connector

CHECK_DEADLINE = 10.0
"""Upper bound, in seconds, of :func:`check_database` whatever the configured timeout."""

_READ_ONLY = "mssante_read_only"

READ_POOL_SIZE = 16
"""SQLite read connections kept open; as many again may be opened under load."""


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe for logs and error messages."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown without anything after '@'
        return url.split("@")[-1] if "@" in url else url
    # SQLAlchemy renders a hidden password as "***".
    return parsed.render_as_string(hide_password=True)


def create_engine(settings: Settings) -> AsyncEngine:
    """Builds the async engine for ``settings.database_url`` (SQLite or PostgreSQL)."""
    url = make_url(settings.database_url)
    db = settings.database
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": db.busy_timeout_ms / 1000})
        _install_sqlite_hooks(engine, db.busy_timeout_ms)
        return engine
    if url.get_backend_name() == "postgresql":
        if url.get_driver_name() != "asyncpg":
            url = url.set(drivername="postgresql+asyncpg")
        return create_async_engine(
            url,
            pool_size=db.pool_size,
            max_overflow=db.pool_size,
            pool_pre_ping=True,
            pool_timeout=db.connect_timeout,
            connect_args={"timeout": db.connect_timeout, "command_timeout": 300},
        )
    raise ValueError(
        f"unsupported database URL {mask_url(settings.database_url)!r}: "
        "use sqlite+aiosqlite:///path or postgresql+asyncpg://user:pass@host/db"
    )


def create_private_file(settings: Settings) -> None:
    """SQLite: creates the empty database file 0600 before SQLite does, whatever the umask.

    The file holds password hashes and mailbox names; SQLite gives its WAL and shared-memory
    files the mode of the database file, so they are private too. (PostgreSQL keeps its
    files in its own 0700 data directory.)
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    try:
        fd = os.open(url.database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _inline_engine(settings: Settings, *, pool_size: int,
                   offload: Executor | None = None) -> AsyncEngine:
    """An engine over :mod:`storage.sqlite_inline` connections to the SQLite file."""
    url = make_url(settings.database_url)
    timeout = settings.database.busy_timeout_ms / 1000
    return create_async_engine(
        url,
        async_creator=inline_connector(str(url.database), timeout, offload),
        pool_size=pool_size,
        max_overflow=pool_size * 4,
        pool_timeout=timeout or 1.0,
    )


def create_write_engine(settings: Settings, engine: AsyncEngine,
                        offload: Executor) -> AsyncEngine:
    """The engine of read-write transactions (:meth:`storage.database.Database.begin`).

    PostgreSQL: ``engine``. SQLite: statements run inline on the loop thread, and only
    ``BEGIN IMMEDIATE`` (which may wait for another process's write lock) and ``COMMIT``
    (fsync) go to ``offload``, a single thread: a STORE costs two thread crossings instead
    of one per statement. Safe because the transactions of this process are queued before
    they begin (one writer at a time), so none ever waits for another inside SQLite.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return engine
    writer = _inline_engine(settings, pool_size=2, offload=offload)
    _install_sqlite_hooks(writer, settings.database.busy_timeout_ms)
    return writer


def create_read_engine(settings: Settings, engine: AsyncEngine) -> AsyncEngine:
    """The engine of read-only transactions (:meth:`storage.database.Database.read`).

    PostgreSQL: ``engine`` itself (asyncpg is asynchronous all the way down). SQLite: a
    second engine whose connections run inline on the loop thread — a read transaction in
    WAL mode never waits for a writer, so a thread hand-off per statement (aiosqlite) costs
    far more than the statement. Those connections are ``query_only``: a write through
    them fails instead of taking the write lock on the loop thread.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return read_only(engine)
    db = settings.database
    reader = _inline_engine(settings, pool_size=READ_POOL_SIZE)
    _install_read_only_hooks(reader, ("PRAGMA foreign_keys=ON",
                                      f"PRAGMA busy_timeout={int(db.busy_timeout_ms)}"))
    return reader


def _install_read_only_hooks(engine: AsyncEngine, pragmas: tuple[str, ...] = ()) -> None:
    """SQLite connections that only read: ``pragmas`` first, then queries only and the pages
    mapped from the file (no copy per connection of what the OS caches); a plain (deferred)
    ``BEGIN``, which takes no write lock."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            for pragma in (*pragmas, "PRAGMA query_only=ON", "PRAGMA mmap_size=268435456"):
                cur.execute(pragma)
        finally:
            cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        raw = conn.connection.driver_connection
        if isinstance(raw, InlineConnection):
            # The sqlite3 connection runs on this thread: BEGIN straight to it, without a
            # statement execution of SQLAlchemy's around it (a third of an empty read).
            raw.begin_inline()
        else:
            conn.exec_driver_sql("BEGIN")


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """Pragmas on every new connection, and ``BEGIN IMMEDIATE`` for write transactions."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" event below emits BEGIN itself,
        # so pysqlite's implicit (deferred) transactions never start behind our back.
        if dbapi_conn.isolation_level is not None:  # inline connections open that way
            dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            # WAL: readers do not block the writer; FULL: a commit is durable on return.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_scan_engine(url: URL) -> AsyncEngine:
    """A read-only engine of one connection, for a worker process that reads a range of a
    large table (proof verification) while its parent holds its own transaction.

    SQLite: an inline connection (no thread hand-off) with the pages memory-mapped, as the
    read engine's; PostgreSQL: asyncpg without a pool. ``url`` is the parent's engine URL
    (:attr:`AsyncEngine.url`, password included: it is handed to a child process, never
    logged)."""
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, async_creator=inline_connector(str(url.database), 30.0),
                                     poolclass=NullPool)
        _install_read_only_hooks(engine)
        return engine
    return create_async_engine(url, poolclass=NullPool)


async def fetch_tuples(conn: AsyncConnection, query: Select[Any]) -> Sequence[Any]:
    """The rows of ``query`` as the driver returns them (tuples; asyncpg records), without
    SQLAlchemy's result rows: for scans of millions of rows whose columns need no
    conversion (about a tenth of a proof verification's time went to building them).
    ``query`` may bind integers only: they are written into the SQL text."""
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if conn.dialect.name == "postgresql":
        return cast(Sequence[Any], await driver.fetch(sql))
    cursor = await driver.execute(sql)
    try:
        return cast(Sequence[Any], await cursor.fetchall())
    finally:
        await cursor.close()


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) for read-only transactions.

    On SQLite they begin deferred so they never wait for the write lock; on PostgreSQL the
    option is harmless. Writing through it on SQLite may fail with ``database is locked``.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def is_postgres(bind: AsyncEngine | AsyncConnection) -> bool:
    """True when the engine (or connection) talks to PostgreSQL."""
    return bind.dialect.name == "postgresql"


async def check_database(engine: AsyncEngine, settings: Settings) -> None:
    """Fails fast with :class:`DatabaseUnavailable` when the database does not answer.

    The wait is bounded by ``[database].connect_timeout`` and never exceeds
    :data:`CHECK_DEADLINE`, so start-up reports an unreachable server promptly.
    """
    deadline = min(settings.database.connect_timeout, CHECK_DEADLINE)
    masked = mask_url(settings.database_url)
    try:
        async with asyncio.timeout(deadline):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except TimeoutError:
        raise DatabaseUnavailable(
            f"database {masked} did not answer within {deadline:g} s; "
            "check that the server runs and [database].url is right"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any driver failure means "unavailable"
        reason = str(exc).replace(settings.database_url, masked)
        url = make_url(settings.database_url)
        if url.password:
            reason = reason.replace(str(url.password), "***")
        raise DatabaseUnavailable(
            f"database {masked} is unavailable: {type(exc).__name__}: {reason}"
        ) from None


def insert_or_ignore(
    bind: AsyncConnection, table: Table, conflict_columns: Sequence[str]
) -> Insert:
    """``INSERT … ON CONFLICT (cols) DO NOTHING`` in the dialect of ``bind``."""
    mod: Any = pg_dialect if is_postgres(bind) else sqlite_dialect
    return mod.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


def upsert(
    bind: AsyncConnection,
    table: Table,
    conflict_columns: Sequence[str],
    update_columns: Sequence[str],
) -> Insert:
    """``INSERT … ON CONFLICT (cols) DO UPDATE SET col = excluded.col`` for ``bind``."""
    mod: Any = pg_dialect if is_postgres(bind) else sqlite_dialect
    stmt = mod.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(conflict_columns),
        set_={c: stmt.excluded[c] for c in update_columns},
    )


async def claim(
    conn: AsyncConnection,
    table: Table,
    *,
    where: ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    values: Mapping[str, Any],
) -> Sequence[Row[Any]]:
    """Atomically takes up to ``limit`` rows matching ``where`` and updates them with ``values``.

    One statement: ``UPDATE t SET … WHERE id IN (SELECT id … LIMIT n) RETURNING *``.
    On PostgreSQL the sub-select is ``FOR UPDATE SKIP LOCKED``, so concurrent claimers on
    several nodes skip each other's rows instead of waiting; on SQLite the statement runs
    under the database write lock (``BEGIN IMMEDIATE``), which serialises claimers.
    The table must have an ``id`` primary key.
    """
    pick = select(table.c.id).where(where).order_by(*order_by).limit(limit)
    if is_postgres(conn):
        # A materialised CTE: the locking sub-select runs exactly once, so the UPDATE never
        # touches more than `limit` rows even if the planner would re-scan a sub-query.
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        ids: Any = select(picked.c.id)
    else:
        ids = pick.scalar_subquery()
    stmt = update(table).where(table.c.id.in_(ids)).values(**dict(values)).returning(*table.c)
    result = await conn.execute(stmt)
    return result.all()


async def serialize(conn: AsyncConnection, name: str) -> None:
    """Serialises transactions that use the same ``name`` until the current one ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, the transaction
    already holds the database write lock.
    """
    if is_postgres(conn):
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


async def erase_free_pages(engine: AsyncEngine) -> None:
    """Rewrites the stored data so that no free page keeps the text of deleted rows or
    dropped columns (after a migration that encrypted what was stored in clear).

    SQLite: ``VACUUM`` (a fresh copy of every live page), then a ``TRUNCATE`` checkpoint
    that empties the WAL. PostgreSQL: ``VACUUM FULL`` of the message table (a new heap
    file; the old one is removed). Both need no transaction open, so they run outside the
    engine's transaction hooks.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        path = str(url.database)

        def vacuum() -> None:
            import sqlite3

            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            try:
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

        await asyncio.to_thread(vacuum)
        return
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.exec_driver_sql("VACUUM FULL messages")
