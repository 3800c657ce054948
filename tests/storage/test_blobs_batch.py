"""Batched blob reads (``BlobStore.read_many``) on both engines: one query, same answers and
same refusals as one ``read`` per range."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import event, update

from storage.blobs import BlobStore
from storage.database import Database
from storage.errors import BlobIntegrityError, BlobNotFound
from storage.schema import blob_segments

SEG = 65536


async def test_read_many_matches_single_reads_in_one_query(database: Database) -> None:
    bodies = [os.urandom(n) for n in (0, 10, SEG - 1, SEG + 7, 4 * SEG + 123)]
    async with database.begin() as conn:
        refs = await database.blobs.put_many(conn, bodies)
    requests: list[tuple[int, int, int | None]] = []
    for ref, body in zip(refs, bodies, strict=True):
        requests += [(ref.id, 0, None), (ref.id, 0, len(body)), (ref.id, 3, 5)]
        if len(body) > SEG:
            requests += [(ref.id, SEG - 2, 4), (ref.id, len(body) - 3, 100)]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, stmt: str, *_a: object) -> None:
        statements.append(stmt)

    event.listen(database.reader.sync_engine, "before_cursor_execute", count)
    try:
        async with database.read() as conn:
            before = len(statements)
            got = await database.blobs.read_many(conn, requests)
            used = len(statements) - before
            expected = [await database.blobs.read(conn, b, o, n) for b, o, n in requests]
    finally:
        event.remove(database.reader.sync_engine, "before_cursor_execute", count)
    assert got == expected
    assert used == 1
    by_id = {ref.id: body for ref, body in zip(refs, bodies, strict=True)}
    for (blob_id, offset, length), data in zip(requests, got, strict=True):
        body = by_id[blob_id]
        assert data == (body[offset:] if length is None else body[offset : offset + length])


async def test_read_many_decrypts_only_covering_segments(database: Database) -> None:
    data = os.urandom(6 * SEG)
    other = os.urandom(3 * SEG)
    async with database.begin() as conn:
        a, b = await database.blobs.put_many(conn, [data, other])
    store: BlobStore = database.blobs
    async with database.read() as conn:
        before = store.segments_decrypted
        got = await store.read_many(conn, [(a.id, 5 * SEG + 1, 10), (b.id, 0, 100)])
    assert got == [data[5 * SEG + 1 : 5 * SEG + 11], other[:100]]
    assert store.segments_decrypted - before == 2


async def test_read_many_refuses_altered_segment(database: Database) -> None:
    data = os.urandom(2 * SEG)
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, data)
        await conn.execute(
            update(blob_segments)
            .where(blob_segments.c.blob_id == ref.id, blob_segments.c.idx == 1)
            .values(data=b"\x00" * (SEG + 16))
        )
    async with database.read() as conn:
        # The untouched segment still reads; the altered one refuses, batched or not.
        assert await database.blobs.read_many(conn, [(ref.id, 0, 10)]) == [data[:10]]
        with pytest.raises(BlobIntegrityError, match=f"blob {ref.id}: segment 1 failed"):
            await database.blobs.read_many(conn, [(ref.id, 0, 10), (ref.id, SEG, 10)])


async def test_read_many_refuses_missing_and_purged(database: Database) -> None:
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, b"body")
        gone = await database.blobs.put(conn, b"purged body")
        await database.blobs.purge(conn, gone.id)
    async with database.read() as conn:
        with pytest.raises(BlobNotFound, match="blob 987654 does not exist"):
            await database.blobs.read_many(conn, [(ref.id, 0, None), (987654, 0, None)])
        with pytest.raises(BlobNotFound, match=f"blob {gone.id} was purged"):
            await database.blobs.read_many(conn, [(gone.id, 0, 4)])
        with pytest.raises(ValueError, match="invalid range offset=-1"):
            await database.blobs.read_many(conn, [(ref.id, -1, 4)])
        assert await database.blobs.read_many(conn, []) == []


async def test_read_many_refuses_truncated_body(database: Database) -> None:
    data = os.urandom(3 * SEG)
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, data)
        await conn.execute(
            blob_segments.delete().where(blob_segments.c.blob_id == ref.id,
                                         blob_segments.c.idx == 2)
        )
    async with database.read() as conn:
        with pytest.raises(BlobIntegrityError, match=r"segments \[2\] are missing"):
            await database.blobs.read_many(conn, [(ref.id, 2 * SEG, 10)])
