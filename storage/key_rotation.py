"""Master key rotation: rewrap every body's data key under the newest master key.

A body is sealed once under its own random data key; only that 32-byte key is wrapped by a
master key (``storage/blobs.py``). Rotating the master key therefore never re-encrypts a
body: each blob row's ``wrapped_key`` is unwrapped with its old master key and wrapped with
the new one, in short transactions, while the gateway keeps serving. A row is updated only
if it still names the old key, so a purge or another rewrap running at the same time is
never overwritten; the run can be interrupted and started again (it picks up what is left).
The running gateway adopts the new key from the key file by itself (``Keyring.refresh``):
it seals new bodies with it within a second and reads rewrapped ones at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, select, update

from storage.database import Database
from storage.schema import blobs

BATCH = 500


@dataclass
class RewrapReport:
    rewrapped: int = 0
    remaining_by_key: dict[str, int] | None = None


async def count_by_key(db: Database) -> dict[str, int]:
    """Live (not purged) bodies per master key id."""
    from sqlalchemy import func

    async with db.read() as conn:
        rows = await conn.execute(
            select(blobs.c.key_id, func.count())
            .where(blobs.c.purged_at.is_(None))
            .group_by(blobs.c.key_id)
        )
        return {str(k): int(n) for k, n in rows}


async def rewrap_all(
    db: Database, *, batch: int = BATCH, progress: Callable[[int], None] | None = None
) -> RewrapReport:
    """Rewraps every live body not under the active master key; returns what it did."""
    report = RewrapReport()
    target = db.keyring.active_key_id
    last_id = 0
    while True:
        async with db.read() as conn:
            rows = (
                await conn.execute(
                    select(blobs.c.id, blobs.c.key_id, blobs.c.wrapped_key,
                           blobs.c.content_sha256)
                    .where(blobs.c.key_id != target, blobs.c.purged_at.is_(None),
                           blobs.c.id > last_id)
                    .order_by(blobs.c.id)
                    .limit(batch)
                )
            ).all()
        if not rows:
            break
        last_id = rows[-1].id
        updates = [
            (r.id, r.key_id, db.blobs.rewrap_key(r.id, r.key_id, bytes(r.wrapped_key),
                                                 r.content_sha256, target))
            for r in rows if r.wrapped_key
        ]
        async with db.begin() as conn:
            for blob_id, old_key, wrapped in updates:
                result = await conn.execute(
                    update(blobs)
                    .where(and_(blobs.c.id == blob_id, blobs.c.key_id == old_key,
                                blobs.c.purged_at.is_(None)))
                    .values(key_id=target, wrapped_key=wrapped)
                )
                report.rewrapped += result.rowcount or 0
        if progress is not None:
            progress(report.rewrapped)
    report.remaining_by_key = await count_by_key(db)
    return report
