"""Verification with worker processes (each reading its own range, on SQLite and PostgreSQL)
says exactly what the one-process walk says."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import delete, update

from storage import proofs
from storage.database import Database
from storage.proof_walk import CHUNK, TreeBuilder
from storage.schema import proofs as proofs_table
from tests.storage import rfc9162

ORIGIN = "mx.mssante.test/proofs"


async def _ledger(db: Database, outside: Path) -> None:
    for first in (1, 41, 81):
        async with db.begin() as conn:
            for i in range(first, first + 40):
                await proofs.append(conn, kind="delivered", message_ref=f"<{i}@mssante.test>",
                                    content_sha256="ab" * 32, actor=None if i % 7 else "é@x",
                                    details={"mailbox": f"r{i}@chu.fr", "uid": i})
            await proofs.checkpoint(conn, db.keyring, origin=ORIGIN, directory=outside)


async def _both(db: Database, outside: Path) -> tuple[proofs.VerifyReport, ...]:
    async with db.read() as conn:
        serial = await proofs.verify(conn, db.keyring, batch=17, directory=outside, workers=1)
        # batches of 5 records: each worker's range is 40 records, so the 120 records
        # make three ranges, and the checks across their edges run
        parallel = await proofs.verify(conn, db.keyring, batch=5, directory=outside,
                                       workers=2)
    return serial, parallel


async def test_parallel_verification_matches(database: Database,
                                             tmp_path: Path) -> None:
    db, outside = database, tmp_path / "checkpoints"
    await _ledger(db, outside)
    serial, parallel = await _both(db, outside)
    assert serial.ok and parallel.ok, (serial.problems, parallel.problems)
    assert (parallel.records, parallel.root, parallel.last_seq) == (
        serial.records, serial.root, serial.last_seq) == (120, serial.root, 120)
    async with db.begin() as conn:
        await conn.execute(update(proofs_table).where(proofs_table.c.seq == 50)
                           .values(details='{"mailbox":"x@chu.fr","uid":50}'))
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq == 90))
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq == 41))  # an edge
    serial, parallel = await _both(db, outside)
    assert any("record 50: content does not match" in p for p in parallel.problems)
    assert any("records 90..90 are missing" in p for p in parallel.problems)
    assert any("records 41..41 are missing" in p for p in parallel.problems)
    assert any("record 42: previous-hash link broken" in p for p in parallel.problems)
    assert parallel.problems == serial.problems


def test_tree_builder_matches_rfc9162_across_chunks() -> None:
    """The level-by-level tree of the verifier (aligned chunks of CHUNK leaves, leaf by
    leaf elsewhere) against the independent RFC 9162 reading, with signed sizes at chunk
    edges, inside chunks and inside the unaligned tail, leaves arriving in uneven parts."""
    n = 2 * CHUNK + 777
    inputs = [f"record {i}".encode() for i in range(n)]
    leaves = [hashlib.sha256(b"\x00" + d).digest() for d in inputs]
    wanted = {1, 2, 3, 5, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK + 1000, 2 * CHUNK, 2 * CHUNK + 1,
              2 * CHUNK + 500, n}
    tree = TreeBuilder(wanted)
    at, step = 0, 1
    while at < n:  # parts of 1, 2, 4, ... 3000 leaves, then the rest
        tree.add(b"".join(leaves[at:at + step]))
        at, step = at + step, min(step * 2, 3000)
    tree.finish()
    ref = rfc9162.Tree(inputs)
    assert tree.size == n and tree.root() == ref.mth(0, n)
    assert tree.roots_at == {size: ref.mth(0, size) for size in wanted}
