"""The opened database: engine, key file and blob store, as the other packages use them.

Start-up order matters: the database is checked and migrated first, so that the key file
rule can look at the data: a missing key file is created only when no encrypted body
exists yet. Creating a fresh key while blobs exist would make every stored body
unreadable, so it is refused with :class:`KeyFileMissing` whatever ``may_create_key`` says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from config.settings import Settings
from storage import meta
from storage.blobs import BlobStore, any_blob_stored
from storage.engine import (
    READ_POOL_SIZE,
    check_database,
    create_engine,
    create_private_file,
    create_read_engine,
    create_write_engine,
    read_only,
)
from storage.errors import KeyFileMissing
from storage.group_commit import WriteGroups
from storage.held_readers import HeldReaders
from storage.key_registry import check_and_record, refuse_missing_key_file
from storage.keys import Keyring, load_or_create_keyring
from storage.migrate import migrate


@dataclass
class Database:
    """Engine + keyring + blob store; close it once at shutdown."""

    settings: Settings
    engine: AsyncEngine
    keyring: Keyring
    blobs: BlobStore
    reader: AsyncEngine
    """Read-only transactions (inline SQLite connections, or ``engine`` on PostgreSQL)."""
    writer: AsyncEngine
    """Read-write transactions (inline SQLite connections committing in ``_offload``, or
    ``engine`` on PostgreSQL)."""
    _offload: ThreadPoolExecutor | None = field(default=None, repr=False)
    _groups: WriteGroups | None = field(default=None, repr=False)
    _readers: HeldReaders | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.writer.dialect.name == "sqlite":
            self._groups = WriteGroups(self.writer)
        if self.reader.dialect.name == "sqlite" and self.reader is not self.engine:
            self._readers = HeldReaders(self.reader, keep=READ_POOL_SIZE)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed on success, rolled back on error.

        On SQLite the write transactions of this process are committed in groups
        (:mod:`storage.group_commit`): SQLite has one writer at a time, and small
        transactions committed one by one leave writers queueing far longer than they
        work. Either way the block's work is durable when the ``async with`` returns.
        """
        if self._groups is None:
            async with self.writer.begin() as conn:
                yield conn
            return
        async with self._groups.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction that never waits behind writers (SQLite WAL)."""
        if self._readers is not None:
            async with self._readers.transaction() as conn:
                yield conn
            return
        async with self.reader.begin() as conn:
            yield conn

    @asynccontextmanager
    async def scan(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction for a query that visits many rows (an aggregate over a
        mailbox): on SQLite it runs in a driver thread, where SQLite releases the GIL, so a
        long scan uses another core instead of holding up the event loop like
        :meth:`read`'s inline connections would."""
        async with read_only(self.engine).begin() as conn:
            yield conn

    async def close(self) -> None:
        """Closes every pooled connection."""
        if self._groups is not None:
            await self._groups.wait_idle()
        if self._readers is not None:
            await self._readers.close()
        if self.reader.dialect.name == "sqlite":  # own pools; on PostgreSQL they are shared
            await self.reader.dispose()
            await self.writer.dispose()
        if self._offload is not None:
            self._offload.shutdown(wait=True)
        await self.engine.dispose()


async def open_database(settings: Settings, *, may_create_key: bool) -> Database:
    """Checks, migrates and opens the database and its key file.

    Raises :class:`~storage.errors.DatabaseUnavailable` (server does not answer),
    :class:`~storage.errors.KeyFileMissing` (key file absent while encrypted data exists,
    or absent and ``may_create_key`` is false) or another
    :class:`~storage.errors.KeyringError` (unreadable key file).
    """
    await asyncio.to_thread(settings.data_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
    await asyncio.to_thread(create_private_file, settings)
    engine = create_engine(settings)
    try:
        await check_database(engine, settings)
        key_path = settings.key_file
        # A migration that encrypts stored data needs the key file: loaded only then, and
        # never created (data exists).
        await migrate(engine, lambda: load_or_create_keyring(key_path, may_create=False))
        async with engine.connect() as conn:
            has_blobs = await any_blob_stored(conn)
        key_exists = await asyncio.to_thread(key_path.exists)
        if has_blobs and not key_exists:
            raise KeyFileMissing(
                f"key file {key_path} is missing but the database holds encrypted message "
                "bodies; a new key cannot read them, so none is created. Restore the key "
                "file from backup (or point [storage].key_file at it) and start again"
            )
        if not key_exists:
            await refuse_missing_key_file(engine, str(key_path))
        keyring = await asyncio.to_thread(
            load_or_create_keyring, key_path, may_create=may_create_key
        )
        await check_and_record(engine, keyring)
        async with engine.begin() as conn:
            await meta.set_value(conn, "master_key_id", keyring.active_key_id)
    except BaseException:
        await engine.dispose()
        raise
    # BEGIN IMMEDIATE and COMMIT of SQLite writers (one writer at a time: one thread).
    offload = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
    return Database(
        settings=settings,
        engine=engine,
        keyring=keyring,
        blobs=BlobStore(keyring, settings.storage.segment_size),
        reader=create_read_engine(settings, engine),
        writer=create_write_engine(settings, engine, offload),
        _offload=offload,
    )
