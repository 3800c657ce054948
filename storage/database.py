"""The opened database: engine, key file and blob store, as the other packages use them.

Start-up order matters: the database is checked and migrated first, so that the key file
rule can look at the data: a missing key file is created only when no encrypted body
exists yet. Creating a fresh key while blobs exist would make every stored body
unreadable, so it is refused with :class:`KeyFileMissing` whatever ``may_create_key`` says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from config.settings import Settings
from storage import meta
from storage.blobs import BlobStore, any_blob_stored
from storage.engine import check_database, create_engine, read_only
from storage.errors import KeyFileMissing
from storage.keys import Keyring, load_or_create_keyring
from storage.migrate import migrate


@dataclass
class Database:
    """Engine + keyring + blob store; close it once at shutdown."""

    settings: Settings
    engine: AsyncEngine
    keyring: Keyring
    blobs: BlobStore

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed on success, rolled back on error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction that never waits behind writers (SQLite WAL)."""
        async with read_only(self.engine).begin() as conn:
            yield conn

    async def close(self) -> None:
        """Closes every pooled connection."""
        await self.engine.dispose()


async def open_database(settings: Settings, *, may_create_key: bool) -> Database:
    """Checks, migrates and opens the database and its key file.

    Raises :class:`~storage.errors.DatabaseUnavailable` (server does not answer),
    :class:`~storage.errors.KeyFileMissing` (key file absent while encrypted data exists,
    or absent and ``may_create_key`` is false) or another
    :class:`~storage.errors.KeyringError` (unreadable key file).
    """
    await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
    engine = create_engine(settings)
    try:
        await check_database(engine, settings)
        await migrate(engine)
        key_path = settings.key_file
        async with engine.connect() as conn:
            has_blobs = await any_blob_stored(conn)
        if has_blobs and not await asyncio.to_thread(key_path.exists):
            raise KeyFileMissing(
                f"key file {key_path} is missing but the database holds encrypted message "
                "bodies; a new key cannot read them, so none is created. Restore the key "
                "file from backup (or point [storage].key_file at it) and start again"
            )
        keyring = await asyncio.to_thread(
            load_or_create_keyring, key_path, may_create=may_create_key
        )
        async with engine.begin() as conn:
            await meta.set_value(conn, "master_key_id", keyring.active_key_id)
    except BaseException:
        await engine.dispose()
        raise
    return Database(
        settings=settings,
        engine=engine,
        keyring=keyring,
        blobs=BlobStore(keyring, settings.storage.segment_size),
    )
