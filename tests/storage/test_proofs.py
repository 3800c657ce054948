"""Proof ledger on both engines: chain, checkpoints, and detection of every tampering."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, select, update

from storage import proofs
from storage.database import Database
from storage.schema import proof_checkpoints
from storage.schema import proofs as proofs_table


async def _ledger(db: Database, n: int = 6) -> None:
    async with db.begin() as conn:
        for i in range(n):
            await proofs.append(
                conn,
                kind="submitted",
                message_ref=f"<{i}@mssante.test>",
                content_sha256="ab" * 32,
                actor="dr@mssante.test",
                details={"recipients": [f"r{i}@chu.fr"], "size": i},
            )
        await proofs.checkpoint(conn, db.keyring)


async def _verify(db: Database) -> proofs.VerifyReport:
    async with db.read() as conn:
        return await proofs.verify(conn, db.keyring, batch=4)


async def test_chain_verifies(database: Database) -> None:
    await _ledger(database)
    report = await _verify(database)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.last_seq) == (6, 1, 6)
    async with database.begin() as conn:
        assert await proofs.checkpoint(conn, database.keyring) is None  # nothing new
        got = await proofs.get_by_message(conn, "<2@mssante.test>")
        assert got[0].details == {"recipients": ["r2@chu.fr"], "size": 2}
        with pytest.raises(ValueError, match="invalid proof kind 'oops'"):
            await proofs.append(conn, kind="oops")


async def test_concurrent_appends_keep_one_chain(database: Database) -> None:
    async def one(i: int) -> None:
        async with database.begin() as conn:
            await proofs.append(conn, kind="delivered", message_ref=f"<{i}@x>")

    await asyncio.gather(*(one(i) for i in range(12)))
    report = await _verify(database)
    assert report.ok and report.records == 12


async def test_edit_detected(database: Database) -> None:
    await _ledger(database)
    async with database.begin() as conn:
        await conn.execute(
            update(proofs_table)
            .where(proofs_table.c.seq == 3)
            .values(actor="someone-else@mssante.test")
        )
    report = await _verify(database)
    assert "record 3: content does not match its hash (the record was changed)" in report.problems
    assert "checkpoint 6: record 6 differs from the signed state" not in report.problems


async def test_recomputed_edit_detected(database: Database) -> None:
    """An editor who also recomputes the edited record's hash breaks the next link."""
    await _ledger(database)
    async with database.begin() as conn:
        r = (await conn.execute(select(proofs_table).where(proofs_table.c.seq == 2))).one()
        forged = proofs.record_hash(
            seq=2,
            kind=r.kind,
            created_at=r.created_at,
            message_ref="<forged@x>",
            content_sha256=r.content_sha256,
            actor=r.actor,
            details_text=r.details,
            prev_hash=r.prev_hash,
        )
        await conn.execute(
            update(proofs_table)
            .where(proofs_table.c.seq == 2)
            .values(message_ref="<forged@x>", hash=forged)
        )
    report = await _verify(database)
    assert any(p.startswith("record 3: previous-hash link broken") for p in report.problems)


async def test_deletion_detected(database: Database) -> None:
    await _ledger(database)
    async with database.begin() as conn:
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq == 4))
    report = await _verify(database)
    assert "records 4..4 are missing (deleted)" in report.problems


async def test_deletion_of_newest_records_detected_by_checkpoint(database: Database) -> None:
    await _ledger(database)
    async with database.begin() as conn:
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq >= 5))
    report = await _verify(database)
    assert report.problems == [
        "checkpoint 6: the ledger ends at record 4; records up to 6 were deleted",
        "records 5..6 were cut off: the stored proof tree covers 6 records, the ledger ends "
        "at record 4",
    ]


async def test_reordering_detected(database: Database) -> None:
    await _ledger(database)
    async with database.begin() as conn:
        rows = {
            r.seq: r
            for r in (
                await conn.execute(select(proofs_table).where(proofs_table.c.seq.in_([2, 3])))
            ).all()
        }
        cols = [
            "kind",
            "created_at",
            "message_ref",
            "content_sha256",
            "actor",
            "details",
            "prev_hash",
            "hash",
        ]
        for seq, other in ((2, 3), (3, 2)):
            await conn.execute(
                update(proofs_table)
                .where(proofs_table.c.seq == seq)
                .values(**{c: getattr(rows[other], c) for c in cols})
            )
    report = await _verify(database)
    assert not report.ok
    assert any("record 2" in p for p in report.problems)


async def test_forged_checkpoint_detected(database: Database) -> None:
    await _ledger(database)
    async with database.begin() as conn:
        await conn.execute(update(proof_checkpoints).values(signature=b"\x00" * 64))
    report = await _verify(database)
    assert report.problems == ["checkpoint 6: signature is invalid"]
