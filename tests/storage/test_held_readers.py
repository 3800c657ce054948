"""Read transactions on held connections (storage/held_readers.py), on SQLite's inline
readers: reused between transactions, never carrying a transaction or a snapshot over,
and closed when their block ended badly or the database closes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from config import load_settings
from storage import meta as meta_values
from storage.database import Database, open_database
from storage.schema import meta


async def _value(db: Database) -> str | None:
    async with db.read() as conn:
        return (await conn.execute(select(meta.c.value).where(meta.c.key == "probe"))).scalar()


async def test_a_connection_serves_one_reader_after_another(sqlite_database: Database) -> None:
    db = sqlite_database
    async with db.read() as first:
        pass
    async with db.read() as second:
        assert second is first  # kept connected, not checked in and out of the pool
        assert second.in_transaction()
    assert not second.in_transaction()


async def test_each_transaction_sees_what_was_committed_before_it(
    sqlite_database: Database,
) -> None:
    """A held connection keeps no snapshot between two transactions (WAL: a reader's
    snapshot is taken at its first read and dropped at its end)."""
    db = sqlite_database
    for value in ("one", "two", "three"):
        async with db.begin() as conn:
            await meta_values.set_value(conn, "probe", value)
        assert await _value(db) == value


async def test_a_transaction_keeps_its_snapshot_while_a_writer_commits(
    sqlite_database: Database,
) -> None:
    db = sqlite_database
    async with db.begin() as conn:
        await meta_values.set_value(conn, "probe", "before")
    async with db.read() as reader:
        first = (await reader.execute(
            select(meta.c.value).where(meta.c.key == "probe"))).scalar()
        async with db.begin() as conn:
            await meta_values.set_value(conn, "probe", "after")
        again = (await reader.execute(
            select(meta.c.value).where(meta.c.key == "probe"))).scalar()
    assert (first, again) == ("before", "before")
    assert await _value(db) == "after"


async def test_concurrent_readers_get_their_own_connections(sqlite_database: Database) -> None:
    db = sqlite_database
    seen: list[object] = []
    gate = asyncio.Event()

    async def reader() -> None:
        async with db.read() as conn:
            seen.append(conn)
            await gate.wait()

    tasks = [asyncio.create_task(reader()) for _ in range(3)]
    while len(seen) < 3:  # noqa: ASYNC110
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert len({id(c) for c in seen}) == 3


async def test_an_error_or_a_cancellation_leaves_no_transaction_open(
    sqlite_database: Database,
) -> None:
    db = sqlite_database
    with pytest.raises(LookupError):
        async with db.read() as conn:
            await conn.execute(select(meta.c.value))
            raise LookupError("not found")
    assert not conn.in_transaction()

    started = asyncio.Event()

    async def cancelled() -> None:
        async with db.read() as c:
            await c.execute(select(meta.c.value))
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(cancelled())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.read() as after:  # whichever connection: none is in a transaction
        assert after.in_transaction()
    assert not after.in_transaction()
    assert await _value(db) is None


async def test_closing_the_database_closes_the_held_connections(tmp_path: Path) -> None:
    db = await open_database(load_settings(data_dir=tmp_path, env={}), may_create_key=True)
    async with db.read() as conn:
        pass
    await db.close()
    assert conn.closed
