"""Encrypted blob store on both engines: round trips, partial reads, dedupe, tampering."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import delete, select, update

from storage.blobs import BlobStore
from storage.database import Database
from storage.errors import BlobIntegrityError, BlobNotFound, UnknownKeyId
from storage.keys import load_or_create_keyring
from storage.schema import blob_segments, blobs

SEG = 65536


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 10 * 1024 * 1024])
async def test_round_trip(database: Database, size: int) -> None:
    data = os.urandom(size)
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, data)
    assert ref.size == size
    async with database.read() as conn:
        assert await database.blobs.read(conn, ref.id) == data
        assert await database.blobs.size(conn, ref.id) == size
        seg_count = len(
            (
                await conn.execute(
                    select(blob_segments.c.idx).where(blob_segments.c.blob_id == ref.id)
                )
            ).all()
        )
    assert seg_count == max(1, -(-size // SEG))


async def test_stored_bytes_are_encrypted(database: Database) -> None:
    data = b"Patient: Jean Dupont, INS 1234567890123 " * 100
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, data)
        stored = b"".join(
            bytes(r.data)
            for r in await conn.execute(
                select(blob_segments.c.data).where(blob_segments.c.blob_id == ref.id)
            )
        )
    assert b"Dupont" not in stored


async def test_partial_reads(database: Database) -> None:
    data = os.urandom(5 * SEG + 123)
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, data)
    store = database.blobs
    async with database.read() as conn:
        for off, ln in [
            (0, 10),
            (SEG - 5, 10),
            (2 * SEG, SEG),
            (5 * SEG + 100, 1000),
            (len(data), 5),
            (len(data) + 10, 5),
            (7, 0),
        ]:
            before = store.segments_decrypted
            assert await store.read(conn, ref.id, off, ln) == data[off : off + ln]
            touched = store.segments_decrypted - before
            if ln and off < len(data):
                assert touched == (min(len(data), off + ln) - 1) // SEG - off // SEG + 1
        assert await store.read(conn, ref.id, 3 * SEG) == data[3 * SEG :]
        with pytest.raises(ValueError, match="invalid range offset=-1"):
            await store.read(conn, ref.id, -1, 5)


async def test_partial_read_never_touches_other_segments(database: Database) -> None:
    """Segment 0 is corrupt: a read of segment 3 works, a read of segment 0 refuses."""
    data = os.urandom(4 * SEG)
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, data)
        await conn.execute(
            update(blob_segments)
            .where(blob_segments.c.blob_id == ref.id, blob_segments.c.idx == 0)
            .values(data=b"\x00" * (SEG + 16))
        )
    async with database.read() as conn:
        assert (
            await database.blobs.read(conn, ref.id, 3 * SEG + 1, 100)
            == data[3 * SEG + 1 : 3 * SEG + 101]
        )
        with pytest.raises(BlobIntegrityError, match=f"blob {ref.id}: segment 0 failed"):
            await database.blobs.read(conn, ref.id, 10, 10)


async def test_same_content_stored_once(database: Database) -> None:
    data = os.urandom(SEG * 2 + 7)
    async with database.begin() as conn:
        a = await database.blobs.put(conn, data)
        b = await database.blobs.put(conn, data)
    async with database.begin() as conn:
        c = await database.blobs.put(conn, data)
        d = await database.blobs.put(conn, data + b"x")
        count = len((await conn.execute(select(blobs.c.id))).all())
    assert a.id == b.id == c.id != d.id
    assert count == 2


async def _segment(conn, blob_id: int, idx: int) -> bytes:  # type: ignore[no-untyped-def]
    return bytes(
        (
            await conn.execute(
                select(blob_segments.c.data).where(
                    blob_segments.c.blob_id == blob_id, blob_segments.c.idx == idx
                )
            )
        ).scalar_one()
    )


async def test_altered_byte_detected(database: Database) -> None:
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, os.urandom(2 * SEG + 10))
        raw = bytearray(await _segment(conn, ref.id, 1))
        raw[100] ^= 0x01
        await conn.execute(
            update(blob_segments)
            .where(blob_segments.c.blob_id == ref.id, blob_segments.c.idx == 1)
            .values(data=bytes(raw))
        )
    async with database.read() as conn:
        with pytest.raises(BlobIntegrityError, match=f"blob {ref.id}: segment 1 failed"):
            await database.blobs.read(conn, ref.id)


async def test_swapped_segments_detected(database: Database) -> None:
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, os.urandom(3 * SEG))
        s0, s1 = await _segment(conn, ref.id, 0), await _segment(conn, ref.id, 1)
        for idx, data in ((0, s1), (1, s0)):
            await conn.execute(
                update(blob_segments)
                .where(blob_segments.c.blob_id == ref.id, blob_segments.c.idx == idx)
                .values(data=data)
            )
    async with database.read() as conn:
        with pytest.raises(BlobIntegrityError, match="segment 0 failed authentication"):
            await database.blobs.read(conn, ref.id)


async def test_segment_swapped_between_blobs_detected(database: Database) -> None:
    async with database.begin() as conn:
        a = await database.blobs.put(conn, os.urandom(SEG))
        b = await database.blobs.put(conn, os.urandom(SEG))
        await conn.execute(
            update(blob_segments)
            .where(blob_segments.c.blob_id == a.id)
            .values(data=await _segment(conn, b.id, 0))
        )
    async with database.read() as conn:
        with pytest.raises(BlobIntegrityError, match=f"blob {a.id}"):
            await database.blobs.read(conn, a.id)


async def test_deleted_last_segment_detected(database: Database) -> None:
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, os.urandom(3 * SEG + 5))
        await conn.execute(
            delete(blob_segments).where(blob_segments.c.blob_id == ref.id, blob_segments.c.idx == 3)
        )
    async with database.read() as conn:
        with pytest.raises(BlobIntegrityError, match=r"segments \[3\] are missing"):
            await database.blobs.read(conn, ref.id)


async def test_truncation_with_edited_size_detected(database: Database) -> None:
    """Drop the last segment and rewrite size/count to match: the AAD still catches it."""
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, os.urandom(3 * SEG + 5))
        await conn.execute(
            delete(blob_segments).where(blob_segments.c.blob_id == ref.id, blob_segments.c.idx == 3)
        )
        await conn.execute(
            update(blobs).where(blobs.c.id == ref.id).values(size=3 * SEG, segment_count=3)
        )
    async with database.read() as conn:
        with pytest.raises(BlobIntegrityError, match=f"blob {ref.id}"):
            await database.blobs.read(conn, ref.id)
        with pytest.raises(BlobIntegrityError):
            await database.blobs.read(conn, ref.id, 0, 10)


async def test_purge_destroys_body_and_same_body_can_return(database: Database) -> None:
    data = os.urandom(SEG + 1)
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, data)
        assert await database.blobs.purge(conn, ref.id) is True
        assert await database.blobs.purge(conn, ref.id) is False
    async with database.begin() as conn:
        with pytest.raises(BlobNotFound, match=f"blob {ref.id} was purged"):
            await database.blobs.read(conn, ref.id)
        assert not (
            await conn.execute(select(blob_segments).where(blob_segments.c.blob_id == ref.id))
        ).all()
        again = await database.blobs.put(conn, data)
        assert again.id == ref.id
        assert await database.blobs.read(conn, ref.id) == data
        with pytest.raises(BlobNotFound, match="blob 999999 does not exist"):
            await database.blobs.read(conn, 999999)


async def test_unknown_master_key_is_a_clear_error(database: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with database.begin() as conn:
        ref = await database.blobs.put(conn, b"hello")
    other = BlobStore(load_or_create_keyring(tmp_path / "other.key", may_create=True), SEG)
    async with database.read() as conn:
        with pytest.raises(UnknownKeyId, match=f"master key '{database.keyring.active_key_id}'"):
            await other.read(conn, ref.id)


async def test_rotation_keeps_old_blobs_readable(database: Database) -> None:
    async with database.begin() as conn:
        old = await database.blobs.put(conn, b"sealed under the first key")
    old_id = database.keyring.active_key_id
    new_id = database.keyring.rotate()
    async with database.begin() as conn:
        new = await database.blobs.put(conn, b"sealed under the second key")
        keys = dict((await conn.execute(select(blobs.c.id, blobs.c.key_id))).all())
        assert await database.blobs.read(conn, old.id) == b"sealed under the first key"
        assert await database.blobs.read(conn, new.id) == b"sealed under the second key"
    assert keys == {old.id: old_id, new.id: new_id}
    reloaded = load_or_create_keyring(database.keyring.path, may_create=False)
    assert reloaded.active_key_id == new_id and old_id in reloaded.master_keys


async def test_rolled_back_put_leaves_nothing(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.begin() as conn:
            await database.blobs.put(conn, b"never committed")
            raise RuntimeError("caller failed")
    async with database.read() as conn:
        assert not (await conn.execute(select(blobs.c.id))).all()
