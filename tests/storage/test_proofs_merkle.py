"""The Merkle tree over the ledger against an independent RFC 9162 implementation."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import select

from storage import merkle, proofs
from storage.database import Database
from storage.schema import proof_tree
from storage.schema import proofs as proofs_table
from tests.storage import rfc9162


def _built(leaves: list[bytes]) -> tuple[merkle.Frontier, dict[merkle.Node, bytes]]:
    tree, nodes = merkle.Frontier(), {}
    for leaf in leaves:
        nodes.update(tree.append(merkle.leaf_hash(leaf)))
    return tree, nodes


def _check_size(ref: rfc9162.Tree, nodes: dict[merkle.Node, bytes], n: int, sample: int) -> None:
    root = ref.mth(0, n)
    assert merkle.root_at(n, nodes) == root
    indexes = range(n) if n <= sample else random.Random(n).sample(range(n), sample)
    for m in indexes:
        path = merkle.inclusion_proof(m, n, nodes)
        assert path == ref.path(m, 0, n), (m, n)
        assert rfc9162.verify_inclusion(m, n, ref.leaves[m], path, root)
        assert not rfc9162.verify_inclusion(m, n, ref.leaves[m] + b"x", path, root)
        assert merkle.verify_inclusion(m, n, merkle.leaf_hash(ref.leaves[m]), path, root)
    olds = range(1, n) if n <= sample else random.Random(-n).sample(range(1, n), sample)
    for old in olds:
        proof = merkle.consistency_proof(old, n, nodes)
        assert proof == ref.proof(old, n), (old, n)
        assert rfc9162.verify_consistency(old, n, ref.mth(0, old), root, proof)
        assert merkle.verify_consistency(old, n, ref.mth(0, old), root, proof)
        assert not rfc9162.verify_consistency(old, n, ref.mth(0, old), ref.mth(0, n - 1)
                                              if n > old + 1 else b"\0" * 32, proof)


def test_every_size_up_to_300() -> None:
    leaves = [f"record {i}".encode() for i in range(300)]
    ref = rfc9162.Tree(leaves)
    tree, nodes = _built(leaves)
    assert tree.root() == ref.mth(0, 300)
    # The nodes of the 300-leaf tree answer for every smaller size: a tree only grows.
    for n in range(1, 301):
        _check_size(ref, nodes, n, sample=40)
        prefix, _ = _built(leaves[:n])
        assert prefix.root() == ref.mth(0, n)


def test_large_sizes() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(70_001)]
    ref = rfc9162.Tree(leaves)
    _, nodes = _built(leaves)
    for n in (4096, 4097, 65_535, 65_536, 65_537, 70_001):
        _check_size(ref, nodes, n, sample=12)


async def _leaves(db: Database) -> list[bytes]:
    async with db.read() as conn:
        rows = (await conn.execute(select(proofs_table).order_by(proofs_table.c.seq))).all()
    return [rfc9162.record_bytes(r) for r in rows]


async def test_stored_tree_matches_reference(database: Database) -> None:
    """Appends in batches of varying size; the stored tree proves every size up to 300."""
    rnd, appended = random.Random(7), 0
    while appended < 300:
        batch = [
            proofs.NewProof("delivered", f"<{appended + i}@x>", "cd" * 32, "a@mssante.test",
                            {"n": appended + i, "é": "ü"})
            for i in range(min(rnd.randint(1, 37), 300 - appended))
        ]
        async with database.begin() as conn:
            await proofs.append_many(conn, batch)
        appended += len(batch)
    ref = rfc9162.Tree(await _leaves(database))
    async with database.read() as conn:
        assert await proofs.tree_size(conn) == 300
        stored = {(r.level, r.idx): bytes(r.hash)
                  for r in await conn.execute(select(proof_tree))}
        # Only the complete subtrees of 16 leaves or more, each with the reference's hash.
        assert stored == {(level, idx): ref.mth(idx << level, (idx + 1) << level)
                          for level in range(4, 9) for idx in range(300 >> level)}
        for n in (1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 255, 256, 257, 300):
            assert await proofs.root_at(conn, n) == ref.mth(0, n)
            for seq in sorted({1, n, (n + 1) // 2}):
                path = await proofs.inclusion_proof(conn, seq, n)
                assert path == ref.path(seq - 1, 0, n)
                assert rfc9162.verify_inclusion(seq - 1, n, ref.leaves[seq - 1], path,
                                                ref.mth(0, n))
            for old in sorted({1, n // 2 or 1, n - 1 or 1}):
                if old < n:
                    proof = await proofs.consistency_proof(conn, old, n)
                    assert rfc9162.verify_consistency(old, n, ref.mth(0, old), ref.mth(0, n),
                                                      proof)


async def test_concurrent_writers_keep_one_tree(database: Database) -> None:
    """Writers racing on both engines: one order, no gap, and the tree is over that order."""
    async def one(i: int) -> None:
        async with database.begin() as conn:
            await proofs.append_many(
                conn, [proofs.NewProof("submitted", f"<{i}.{j}@x>") for j in range(3)]
            )

    await asyncio.gather(*(one(i) for i in range(10)))
    leaves = await _leaves(database)
    assert len(leaves) == 30
    async with database.read() as conn:
        assert await proofs.root_at(conn, 30) == rfc9162.Tree(leaves).mth(0, 30)
        report = await proofs.verify(conn, database.keyring)
    assert report.ok, report.problems
    assert report.root == rfc9162.Tree(leaves).mth(0, 30)


async def test_ledger_written_before_the_tree_is_caught_up(database: Database) -> None:
    """Records already there when the tree was added are hashed in at the next append."""
    async with database.begin() as conn:
        for i in range(5):
            await proofs.append(conn, kind="read", message_ref=f"<{i}@x>")
    async with database.begin() as conn:  # as after the upgrade: no tree yet
        from storage.schema import meta, proof_tree

        await conn.execute(proof_tree.delete())
        await conn.execute(meta.delete().where(meta.c.key == proofs.TREE_KEY))
        await proofs.append(conn, kind="read", message_ref="<5@x>")
    ref = rfc9162.Tree(await _leaves(database))
    async with database.read() as conn:
        assert await proofs.tree_size(conn) == 6
        assert await proofs.root_at(conn, 6) == ref.mth(0, 6)


async def test_start_up_checkpoint_builds_the_tree_even_with_nothing_to_sign(
    database: Database,
) -> None:
    """The gateway signs at start-up before listening: an upgraded ledger gets its tree
    there, not inside the first accepted message's transaction."""
    from storage.schema import meta, proof_tree

    async with database.begin() as conn:
        for i in range(4):
            await proofs.append(conn, kind="read", message_ref=f"<{i}@x>")
        assert await proofs.checkpoint(conn, database.keyring) == 4
        await conn.execute(proof_tree.delete())
        await conn.execute(meta.delete().where(meta.c.key == proofs.TREE_KEY))
    async with database.begin() as conn:
        assert await proofs.checkpoint(conn, database.keyring) is None  # nothing new
        assert await proofs.tree_size(conn) == 4
