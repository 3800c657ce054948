"""Verification with worker processes says exactly what the one-process walk says."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, update

from storage import proofs
from storage.database import Database
from storage.schema import proofs as proofs_table

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
        parallel = await proofs.verify(conn, db.keyring, batch=17, directory=outside,
                                       workers=2)
    return serial, parallel


async def test_parallel_verification_matches(sqlite_database: Database,
                                             tmp_path: Path) -> None:
    db, outside = sqlite_database, tmp_path / "checkpoints"
    await _ledger(db, outside)
    serial, parallel = await _both(db, outside)
    assert serial.ok and parallel.ok, (serial.problems, parallel.problems)
    assert (parallel.records, parallel.root, parallel.last_seq) == (
        serial.records, serial.root, serial.last_seq) == (120, serial.root, 120)
    async with db.begin() as conn:
        await conn.execute(update(proofs_table).where(proofs_table.c.seq == 50)
                           .values(details='{"mailbox":"x@chu.fr","uid":50}'))
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq == 90))
    serial, parallel = await _both(db, outside)
    assert any("record 50: content does not match" in p for p in parallel.problems)
    assert any("records 90..90 are missing" in p for p in parallel.problems)
    assert parallel.problems == serial.problems
