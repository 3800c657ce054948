"""Revision 0011 on both engines: a ledger stored with every level of its Merkle tree (as
before) loses the rows of the four lowest levels, and every root, inclusion and consistency
proof stays what the independent RFC 9162 reading says."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import func, select

import config
from storage import proofs
from storage.database import open_database
from storage.engine import create_engine
from storage.migrate import alembic_config, migrate
from storage.schema import proof_tree
from storage.schema import proofs as proofs_table
from tests.storage import rfc9162

RECORDS = 70


async def test_0011_drops_the_low_levels_and_proofs_stay(db_settings: config.Settings) -> None:
    db = await open_database(db_settings, may_create_key=True)  # at the head; 0010 below
    try:
        async with db.begin() as conn:
            await proofs.append_many(conn, [
                proofs.NewProof("delivered", f"<{i}@mssante.test>", "ab" * 32,
                                "dr@mssante.test", {"uid": i}) for i in range(RECORDS)])
        async with db.read() as conn:
            rows = (await conn.execute(
                select(proofs_table).order_by(proofs_table.c.seq))).all()
        ref = rfc9162.Tree([rfc9162.record_bytes(r) for r in rows])
        # The layout of revision 0010: every complete subtree, the low levels included.
        async with db.begin() as conn:
            await conn.execute(proof_tree.insert(), [
                {"level": level, "idx": idx,
                 "hash": ref.mth(idx << level, (idx + 1) << level)}
                for level in range(4) for idx in range(RECORDS >> level)])
    finally:
        await db.close()
    engine = create_engine(db_settings)
    try:
        async with engine.begin() as conn:
            def at_0010(sync_conn: Any) -> None:
                command.stamp(alembic_config(sync_conn), "0010")

            await conn.run_sync(at_0010)
        await migrate(engine)
    finally:
        await engine.dispose()
    db = await open_database(db_settings, may_create_key=False)
    try:
        async with db.read() as conn:
            levels = dict((await conn.execute(
                select(proof_tree.c.level, func.count()).group_by(proof_tree.c.level))).all())
            assert levels == {4: 4, 5: 2, 6: 1}
            for n in (1, 5, 16, 17, 40, RECORDS):
                assert await proofs.root_at(conn, n) == ref.mth(0, n)
                for seq in (1, n):
                    assert await proofs.inclusion_proof(conn, seq, n) == ref.path(seq - 1, 0, n)
                if n > 1:
                    assert await proofs.consistency_proof(conn, n - 1, n) == ref.proof(n - 1, n)
            report = await proofs.verify(conn, db.keyring)
        assert report.ok, report.problems
    finally:
        await db.close()
