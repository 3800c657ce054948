"""Each way of tampering with the ledger is named by verify (both engines, real files)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update

from storage import checkpoint_files, merkle, notes, proofs
from storage import meta as meta_values
from storage.database import Database
from storage.schema import proof_checkpoints, proof_tree
from storage.schema import proofs as proofs_table

ORIGIN = "mx.mssante.test/proofs"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


async def _append(db: Database, first: int, count: int) -> None:
    async with db.begin() as conn:
        for i in range(first, first + count):
            await proofs.append(conn, kind="submitted", message_ref=f"<{i}@mssante.test>",
                                content_sha256="ab" * 32, actor="dr@mssante.test",
                                details={"recipients": [f"r{i}@chu.fr"]})


async def _checkpoint(db: Database, outside: Path) -> int | None:
    async with db.begin() as conn:
        return await proofs.checkpoint(conn, db.keyring, origin=ORIGIN, directory=outside)


async def _ledger(db: Database, outside: Path) -> None:
    """Six records, checkpoints at 3 and 6, in the database and in files."""
    await _append(db, 1, 3)
    assert await _checkpoint(db, outside) == 3
    await _append(db, 4, 3)
    assert await _checkpoint(db, outside) == 6


async def _verify(db: Database, outside: Path) -> list[str]:
    async with db.read() as conn:
        return (await proofs.verify(conn, db.keyring, batch=4, directory=outside)).problems


async def _rewind_tree(db: Database, size: int) -> None:
    """What a careful editor does after cutting records: the stored tree ends there too."""
    async with db.begin() as conn:
        edge = merkle.Frontier(size, [b""] * bin(size).count("1")).nodes()
        found = await proofs.subtree_hashes(conn, set(edge))
        await meta_values.set_value(conn, proofs.TREE_KEY, json.dumps(
            {"size": size, "frontier": [found[n].hex() for n in edge]}))


def _listing(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def _file(outside: Path, size: int) -> str:
    [name] = [p.name for p in outside.iterdir() if p.name.startswith(f"{size:020d}-")]
    return name


async def test_intact_ledger_and_its_files(database: Database, outside: Path) -> None:
    await _ledger(database, outside)
    assert await _verify(database, outside) == []
    files = _listing(outside)
    assert [p.name[:20] for p in files] == [f"{3:020d}", f"{6:020d}"]
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        cp = notes.parse(p.read_text(encoding="utf-8"))
        assert cp.origin == ORIGIN and notes.verified_by(cp, proofs.public_keys(database.keyring))
    text = files[1].read_text(encoding="utf-8")
    assert checkpoint_files.write(outside, text) == files[1]  # same note: left as is
    assert len(_listing(outside)) == 2
    assert await _checkpoint(database, outside) is None  # nothing new to sign


async def test_changed_record(database: Database, outside: Path) -> None:
    await _ledger(database, outside)
    async with database.begin() as conn:
        await conn.execute(update(proofs_table).where(proofs_table.c.seq == 2)
                           .values(actor="someone-else@mssante.test"))
    problems = await _verify(database, outside)
    assert "record 2: content does not match its hash (the record was changed)" in problems
    assert "checkpoint 3: the records do not produce the signed root hash" in problems


async def test_deleted_record(database: Database, outside: Path) -> None:
    await _ledger(database, outside)
    async with database.begin() as conn:
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq == 4))
    problems = await _verify(database, outside)
    assert "records 4..4 are missing (deleted)" in problems


async def test_inserted_record(database: Database, outside: Path) -> None:
    """A forged record after 3, later ones renumbered and the whole chain recomputed."""
    await _ledger(database, outside)
    async with database.begin() as conn:
        rows = (await conn.execute(select(proofs_table).where(proofs_table.c.seq >= 4)
                                   .order_by(proofs_table.c.seq))).all()
        prev = (await conn.execute(select(proofs_table.c.hash)
                                   .where(proofs_table.c.seq == 3))).scalar_one()
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq >= 4))
        forged = dict(rows[0]._mapping, message_ref="<forged@mssante.test>")
        for seq, r in enumerate([forged, *(dict(r._mapping) for r in rows)], start=4):
            fields = dict(r, seq=seq, prev_hash=prev)
            fields["hash"] = prev = proofs.record_hash(
                seq=seq, kind=r["kind"], created_at=r["created_at"],
                message_ref=r["message_ref"], content_sha256=r["content_sha256"],
                actor=r["actor"], details_text=r["details"], prev_hash=fields["prev_hash"])
            await conn.execute(proofs_table.insert().values(**fields))
    problems = await _verify(database, outside)
    assert not any("link broken" in p or "does not match its hash" in p for p in problems)
    assert "checkpoint 6: record 6 differs from the signed state" in problems
    assert (f"checkpoint file {_file(outside, 6)}: the records do not produce its signed root "
            "hash (a record up to 6 was changed, inserted, deleted or moved)") in problems


async def test_reordered_records(database: Database, outside: Path) -> None:
    await _ledger(database, outside)
    async with database.begin() as conn:
        rows = {r.seq: r for r in (await conn.execute(
            select(proofs_table).where(proofs_table.c.seq.in_([4, 5])))).all()}
        for seq, other in ((4, 5), (5, 4)):
            values = dict(rows[other]._mapping)
            values.pop("seq")
            await conn.execute(update(proofs_table).where(proofs_table.c.seq == seq)
                               .values(**values))
    problems = await _verify(database, outside)
    assert any(p.startswith("record 4: previous-hash link broken") for p in problems)


async def test_newest_cut_with_their_checkpoint_rows(database: Database, outside: Path) -> None:
    """Records 4..6, checkpoint row 6 and the tree's tail gone: only the file still knows."""
    await _ledger(database, outside)
    async with database.begin() as conn:
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq > 3))
        await conn.execute(delete(proof_checkpoints).where(proof_checkpoints.c.seq > 3))
    await _rewind_tree(database, 3)
    async with database.read() as conn:  # what the database alone says: nothing wrong
        assert (await proofs.verify(conn, database.keyring)).problems == []
    assert await _verify(database, outside) == [
        f"records 4..6 were cut off: checkpoint file {_file(outside, 6)} signs 6 records, "
        "the database ends at record 3",
        "checkpoint rows were deleted: 1 checkpoint file(s) (tree sizes 6) have no row in "
        "the database",
    ]


async def test_newest_cut_without_their_checkpoint_rows(
    database: Database, outside: Path
) -> None:
    await _ledger(database, outside)
    async with database.begin() as conn:
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq > 3))
    await _rewind_tree(database, 3)
    problems = await _verify(database, outside)
    assert "checkpoint 6: the ledger ends at record 3; records up to 6 were deleted" in problems
    assert (f"records 4..6 were cut off: checkpoint file {_file(outside, 6)} signs 6 records, "
            "the database ends at record 3") in problems


async def test_checkpoint_signed_by_another_key(database: Database, outside: Path) -> None:
    await _ledger(database, outside)
    other = Ed25519PrivateKey.generate()
    async with database.begin() as conn:
        root = await proofs.root_at(conn, 6)
        forged = notes.sign(ORIGIN, 6, root, other)
        await conn.execute(update(proof_checkpoints).where(proof_checkpoints.c.seq == 6)
                           .values(note=forged))
    other_dir = outside.parent / "elsewhere"
    name = checkpoint_files.write(other_dir, forged).name
    os.replace(other_dir / name, outside / f"{6:020d}-forged.note")
    kid = notes.key_id(ORIGIN, other.public_key()).hex()
    problems = await _verify(database, outside)
    assert (f"checkpoint 6: not signed by this ledger's keys (signed by key id {kid}: another "
            "key, or the note was altered)") in problems
    assert (f"checkpoint file {6:020d}-forged.note: not signed by this ledger's keys (signed "
            f"by key id {kid}: another key, or the note was altered)") in problems


async def test_fork(database: Database, outside: Path) -> None:
    """Two checkpoints of size 6 with different roots, both validly signed."""
    await _ledger(database, outside)
    other_root = bytes(32)
    path = checkpoint_files.write(outside, notes.sign(ORIGIN, 6, other_root,
                                                      database.keyring.signing_key()))
    assert len(_listing(outside)) == 3  # never overwritten
    problems = await _verify(database, outside)
    fork = [p for p in problems if p.startswith("fork at tree size 6: signed checkpoints with "
                                                "different root hashes")]
    assert len(fork) == 1 and path.name in fork[0] and "checkpoint 6" in fork[0]


async def test_stored_tree_inconsistent_with_checkpoints(
    database: Database, outside: Path
) -> None:
    """A stored subtree (16 leaves: the smallest kept) changed: the consistency proof
    between two checkpoints, which reads it, no longer holds."""
    await _append(database, 1, 20)
    assert await _checkpoint(database, outside) == 20
    await _append(database, 21, 20)
    assert await _checkpoint(database, outside) == 40
    async with database.begin() as conn:
        changed = await conn.execute(update(proof_tree).where(proof_tree.c.level == 4,
                                                              proof_tree.c.idx == 0)
                                     .values(hash=bytes(32)))
        assert changed.rowcount == 1
    problems = await _verify(database, outside)
    assert ("checkpoints 20 and 40 are not consistent: the stored tree does not prove that "
            "the tree of 40 records extends the tree of 20 records") in problems


def _remove(path: Path) -> None:
    path.unlink()


async def test_deleted_checkpoint_file(database: Database, outside: Path) -> None:
    await _ledger(database, outside)
    _remove(outside / _file(outside, 6))
    assert await _verify(database, outside) == [
        f"checkpoint files are missing: 1 checkpoint(s) signed in the database (tree sizes 6) "
        f"have no file in {outside} (deleted, or the directory was moved without its files)"
    ]


async def test_stored_tree_edge_differs_from_the_records(
    database: Database, outside: Path
) -> None:
    await _ledger(database, outside)
    async with database.begin() as conn:
        await meta_values.set_value(conn, proofs.TREE_KEY, json.dumps(
            {"size": 6, "frontier": ["00" * 32, "11" * 32]}))
    assert await _verify(database, outside) == [
        "the stored proof tree does not match the records (its right edge differs): new "
        "checkpoints and inclusion proofs would be wrong"
    ]
