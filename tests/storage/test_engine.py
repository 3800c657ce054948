"""Engine behaviour on both SQLite and PostgreSQL: pragmas, health check, migrations."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

import config
from storage.database import Database
from storage.engine import check_database, create_engine, is_postgres, mask_url
from storage.errors import DatabaseUnavailable
from storage.migrate import current_revision, head_revision, migrate
from storage.schema import metadata


async def test_sqlite_pragmas_on_every_connection(tmp_path: Path) -> None:
    settings = config.load_settings(
        data_dir=tmp_path, env={}, overrides={"database": {"busy_timeout_ms": 4321}}
    )
    engine = create_engine(settings)
    try:
        for _ in range(2):
            async with engine.connect() as conn:
                got = {
                    p: (await conn.execute(text(f"PRAGMA {p}"))).scalar()
                    for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
                }
                # synchronous: 2 = FULL
                assert got == {
                    "journal_mode": "wal",
                    "synchronous": 2,
                    "foreign_keys": 1,
                    "busy_timeout": 4321,
                }
    finally:
        await engine.dispose()


def test_mask_url_hides_password() -> None:
    masked = mask_url("postgresql+asyncpg://mss:Sup3rSecret@db.example:5432/mss")
    assert masked == "postgresql+asyncpg://mss:***@db.example:5432/mss"
    assert mask_url("sqlite+aiosqlite:////var/lib/x.db") == "sqlite+aiosqlite:////var/lib/x.db"


def test_unsupported_url_refused(tmp_path: Path) -> None:
    settings = config.load_settings(
        data_dir=tmp_path, env={}, overrides={"database": {"url": "mysql://u:pw@h/db"}}
    )
    with pytest.raises(ValueError, match=r"unsupported database URL 'mysql://u:\*\*\*@h/db'"):
        create_engine(settings)


async def test_refused_postgres_connection_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+asyncpg://mss:TopSecretPw@127.0.0.1:{port}/mss"
    settings = config.load_settings(data_dir=tmp_path, env={}, overrides={"database": {"url": url}})
    engine = create_engine(settings)
    try:
        with pytest.raises(DatabaseUnavailable) as err:
            await check_database(engine, settings)
    finally:
        await engine.dispose()
    assert f"postgresql+asyncpg://mss:***@127.0.0.1:{port}/mss" in str(err.value)
    assert "TopSecretPw" not in str(err.value)


async def test_silent_postgres_server_times_out(tmp_path: Path) -> None:
    """A server that accepts TCP but never speaks: fail within connect_timeout (< 10 s)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes handshakes; nobody ever answers
    port = silent.getsockname()[1]
    url = f"postgresql+asyncpg://mss:TopSecretPw@127.0.0.1:{port}/mss"
    settings = config.load_settings(
        data_dir=tmp_path,
        env={},
        overrides={"database": {"url": url, "connect_timeout": 1.5}},
    )
    engine = create_engine(settings)
    start = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable, match=r"mss:\*\*\*@127\.0\.0\.1") as err:
            await check_database(engine, settings)
    finally:
        await engine.dispose()
        silent.close()
    assert time.monotonic() - start < 10
    assert "TopSecretPw" not in str(err.value)


async def test_check_database_ok(database: Database) -> None:
    await check_database(database.engine, database.settings)


async def test_migrations_create_tables_and_are_idempotent(db_settings: config.Settings) -> None:
    engine = create_engine(db_settings)
    try:
        assert await current_revision(engine) is None
        await migrate(engine)
        await migrate(engine)  # second run: nothing to do
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(metadata.tables) <= names
    finally:
        await engine.dispose()


async def test_migrated_schema_matches_metadata(database: Database) -> None:
    """The migrations produce exactly schema.py (no forgotten revision)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    async with database.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata
            )
        )
    assert diff == []


async def test_concurrent_migrate_from_several_nodes(db_settings: config.Settings) -> None:
    engines = [create_engine(db_settings) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(e) for e in engines))
        assert await current_revision(engines[0]) == head_revision()
        assert is_postgres(engines[0]) == db_settings.database_url.startswith("postgresql")
    finally:
        for e in engines:
            await e.dispose()
