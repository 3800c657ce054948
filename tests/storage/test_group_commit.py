"""Group commit of SQLite writers (storage/group_commit.py): fewer commits than writers,
each writer's work durable when its block returns, a failing writer rolls back only its
own work, a failed commit reaches every writer of the group, and a writer that gives up
while waiting never leaves the others hanging."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url

from storage.database import Database


async def _table(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE g_parent (id INTEGER PRIMARY KEY)"))
        await conn.execute(text(
            "CREATE TABLE g_child (id INTEGER PRIMARY KEY, "
            "parent INTEGER NOT NULL REFERENCES g_parent(id))"))


def _committed(db: Database) -> list[int]:
    """What another connection (another process) sees: committed rows only."""
    other = sqlite3.connect(str(make_url(db.settings.database_url).database))
    try:
        return [r[0] for r in other.execute("SELECT id FROM g_parent ORDER BY id")]
    finally:
        other.close()


async def test_concurrent_writers_share_commits_and_are_durable_on_return(
    sqlite_database: Database,
) -> None:
    db = sqlite_database
    await _table(db)
    commits = 0

    def on_commit(_conn: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.writer.sync_engine, "commit", on_commit)
    seen_after_return: list[bool] = []

    async def writer(n: int) -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO g_parent (id) VALUES (:n)"), {"n": n})
        seen_after_return.append(n in await asyncio.to_thread(_committed, db))

    try:
        await asyncio.gather(*(writer(n) for n in range(1, 201)))
    finally:
        event.remove(db.writer.sync_engine, "commit", on_commit)
    assert all(seen_after_return)
    assert _committed(db) == list(range(1, 201))
    assert 1 <= commits < 100  # grouped: far fewer commits than transactions


async def test_failing_writer_rolls_back_only_its_own_work(sqlite_database: Database) -> None:
    db = sqlite_database
    await _table(db)
    gate = asyncio.Event()

    async def writer(n: int, fail: bool) -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO g_parent (id) VALUES (:n)"), {"n": n})
            if n == 1:
                await gate.wait()  # the others queue meanwhile: one group
            if fail:
                raise ValueError(f"writer {n} refuses")

    first = asyncio.ensure_future(writer(1, False))
    await asyncio.sleep(0.01)
    others = [asyncio.ensure_future(writer(n, n == 3)) for n in (2, 3, 4)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], ValueError)
    assert _committed(db) == [1, 2, 4]


async def test_failed_commit_reaches_every_writer_of_the_group(
    sqlite_database: Database,
) -> None:
    """A deferred foreign key fails at COMMIT: nobody in that group was told success."""
    db = sqlite_database
    await _table(db)
    gate = asyncio.Event()

    async def writer(n: int) -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO g_parent (id) VALUES (:n)"), {"n": n})
            if n == 1:
                await gate.wait()
            if n == 2:
                await conn.execute(text("PRAGMA defer_foreign_keys = ON"))
                await conn.execute(text("INSERT INTO g_child (id, parent) VALUES (1, 999)"))

    first = asyncio.ensure_future(writer(1))
    await asyncio.sleep(0.01)
    others = [asyncio.ensure_future(writer(n)) for n in (2, 3)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)
    assert all(isinstance(r, exc.IntegrityError) for r in results), results
    assert _committed(db) == []
    # The next writer starts a fresh group.
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO g_parent (id) VALUES (7)"))
    assert _committed(db) == [7]


async def test_writer_cancelled_while_waiting_does_not_hold_the_group(
    sqlite_database: Database,
) -> None:
    db = sqlite_database
    await _table(db)
    gate = asyncio.Event()

    async def holder() -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO g_parent (id) VALUES (1)"))
            await gate.wait()

    async def waiter() -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO g_parent (id) VALUES (2)"))

    held = asyncio.ensure_future(holder())
    await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(waiter())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    await asyncio.wait_for(held, 5)
    assert _committed(db) == [1]
