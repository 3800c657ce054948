"""SQLite connections on the loop thread (storage/sqlite_inline.py): reads are query-only,
writers of this process queue instead of racing in SQLite, and a writer that finds the
lock held by another process waits for it without stalling the event loop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage.database import Database, open_database
from storage.sqlite_inline import lock_path


def _path(db: Database) -> str:
    return str(make_url(db.settings.database_url).database)


async def test_reads_cannot_write(sqlite_database: Database) -> None:
    with pytest.raises(Exception, match="readonly|read-only|query_only|attempt to write"):
        async with sqlite_database.read() as conn:
            await conn.execute(text("CREATE TABLE t_readonly (x INTEGER)"))


async def test_writers_of_this_process_take_turns(sqlite_database: Database) -> None:
    db = sqlite_database
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE t_turns (n INTEGER)"))
    inside = 0
    most = 0

    async def writer(n: int) -> None:
        nonlocal inside, most
        async with db.begin() as conn:
            inside += 1
            most = max(most, inside)
            await conn.execute(text("INSERT INTO t_turns VALUES (:n)"), {"n": n})
            await asyncio.sleep(0.001)  # a suspension inside the transaction
            inside -= 1

    started = time.monotonic()
    await asyncio.gather(*(writer(n) for n in range(200)))
    assert time.monotonic() - started < 10  # no busy-handler sleeps
    assert most == 1
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t_turns"))).scalar() == 200


async def test_nested_write_transaction_is_refused(sqlite_database: Database) -> None:
    async with sqlite_database.begin():
        with pytest.raises(RuntimeError, match="nested write transaction"):
            async with sqlite_database.begin():
                pass


async def test_lock_held_by_another_process_is_waited_for_off_the_loop(
    sqlite_database: Database,
) -> None:
    db = sqlite_database
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE t_other (n INTEGER)"))
    holding = threading.Event()

    def other_process() -> None:
        other = sqlite3.connect(_path(db), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t_other VALUES (1)")
        holding.set()
        time.sleep(0.6)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=other_process)
    thread.start()
    await asyncio.to_thread(holding.wait)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticking = asyncio.ensure_future(ticker())
    started = time.monotonic()
    try:
        async with db.begin() as conn:
            waited = time.monotonic() - started
            await conn.execute(text("INSERT INTO t_other VALUES (2)"))
    finally:
        ticking.cancel()
        thread.join()
    assert waited >= 0.4  # it did wait for the other writer
    assert ticks >= 10  # and the loop kept running meanwhile
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT n FROM t_other ORDER BY n"))).scalars().all()
    assert rows == [1, 2]


async def test_large_write_runs_off_the_loop_thread(sqlite_database: Database) -> None:
    """A writer's executemany of large values (a message's encrypted segments) runs in the
    writer's thread, so the loop serves other sessions meanwhile; small ones stay inline."""
    db = sqlite_database
    seen: list[int] = []

    def where(value: bytes) -> bytes:
        seen.append(threading.get_ident())
        return value

    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE t_big (data BLOB)"))
        raw = await conn.get_raw_connection()
        raw.driver_connection._conn.create_function("where_am_i", 1, where)  # type: ignore[union-attr]
        insert = text("INSERT INTO t_big VALUES (where_am_i(:data))")
        await conn.execute(insert, [{"data": b"s" * 100}, {"data": b"t" * 100}])
        small = set(seen)
        seen.clear()
        await conn.execute(insert, [{"data": bytes([n]) * 100_000} for n in range(4)])
        large = set(seen)
    assert small == {threading.get_ident()}
    assert len(large) == 1 and large != small
    async with db.read() as conn:
        sizes = (await conn.execute(text("SELECT length(data) FROM t_big"))).scalars().all()
    assert sorted(sizes) == [100, 100] + [100_000] * 4


async def test_writer_lock_is_held_from_begin_to_commit(sqlite_database: Database) -> None:
    """Writers of other processes queue on the lock file, not in SQLite's busy handler."""
    db = sqlite_database
    async with db.begin() as conn:  # the first writer's connection creates the file
        await conn.execute(text("CREATE TABLE t_lock (n INTEGER)"))
    probe = os.open(lock_path(_path(db)), os.O_RDWR)

    def free() -> bool:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(probe, fcntl.LOCK_UN)
        return True

    try:
        assert free()
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO t_lock VALUES (0)"))
            assert not free()
        assert free()
        with pytest.raises(RuntimeError, match="rolled back"):
            async with db.begin() as conn:
                await conn.execute(text("INSERT INTO t_lock VALUES (1)"))
                raise RuntimeError("rolled back")
        # the failed member's group is committed (without it) in the background
        for _ in range(200):
            if free():
                break
            await asyncio.sleep(0.01)
        assert free()
        assert os.stat(lock_path(_path(db))).st_mode & 0o077 == 0
    finally:
        os.close(probe)


async def test_writer_of_another_process_begins_as_soon_as_the_lock_is_free(
    sqlite_database: Database,
) -> None:
    """Two writers of one file (two Database objects: two processes' worth of connections
    and commit threads). The waiting one begins right after the other commits, not at the
    next wake-up of SQLite's busy handler, which sleeps 1, 2, 5 … 25, 50, 100 ms: past the
    first 328 ms it is late by 50 ms on average (0 to 100 ms, whatever the phase)."""
    first = sqlite_database
    second = await open_database(first.settings, may_create_key=False)
    try:
        async with first.begin() as conn:
            await conn.execute(text("CREATE TABLE t_handoff (n INTEGER)"))
        late: list[float] = []
        for n, hold in enumerate((0.34, 0.39, 0.44, 0.49)):
            committed = 0.0
            holding = asyncio.Event()

            async def holder(n: int = n, hold: float = hold,
                             holding: asyncio.Event = holding) -> None:
                nonlocal committed
                async with second.begin() as conn:
                    await conn.execute(text("INSERT INTO t_handoff VALUES (:n)"), {"n": 2 * n})
                    holding.set()
                    await asyncio.sleep(hold)
                committed = time.monotonic()

            task = asyncio.ensure_future(holder())
            await holding.wait()
            async with first.begin() as conn:
                began = time.monotonic()
                await conn.execute(text("INSERT INTO t_handoff VALUES (:n)"), {"n": 2 * n + 1})
            await task
            # (the lock is free once COMMIT is through in the holder's commit thread, a
            # moment before the holder's task resumes: ``began`` may come first)
            late.append(began - committed)
        assert sum(late) / len(late) < 0.025, late
        async with first.read() as conn:
            rows = (await conn.execute(text("SELECT n FROM t_handoff ORDER BY rowid"))).scalars()
            assert rows.all() == list(range(8))  # each waiter after its holder
    finally:
        await second.close()
