"""Merkle tree over the proof records, as Certificate Transparency builds it (RFC 9162 §2.1).

Why a tree next to the hash chain: the chain proves the whole ledger to whoever re-reads the
whole ledger, while the tree lets anyone check that *one* record is in a signed state with
log2(n) hashes (inclusion proof), and that a later signed state extends an earlier one
(consistency proof), without the database.

- leaf hash ``SHA-256(0x00 || record bytes)``;
- node hash ``SHA-256(0x01 || left || right)``;
- the tree of n leaves splits at k, the largest power of two smaller than n.

A *complete* subtree (2**level leaves starting at ``index * 2**level``) is named by
``(level, index)``; a tree of n leaves has ``2n - popcount(n)`` of them, and those of
:data:`STORED_FROM` levels and more (about n/15) are kept by :mod:`storage.proofs`. The hash
of any other range needed by a proof is folded from at most log2(n) complete subtrees, so a
proof costs O(log n) lookups. The *frontier* (the complete subtrees along the right edge,
largest first) is all an appender needs.

This module is pure (no database): :mod:`storage.proofs` stores the nodes and reads the ones
a proof needs through :func:`nodes_for_range`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

Node = tuple[int, int]  # (level, index): leaves index*2**level .. (index+1)*2**level - 1
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = SHA-256()


STORED_FROM = 4
"""The smallest level kept in ``proof_tree``: subtrees of 16 leaves and more. The smaller
ones are hashed again from their block of 16 records when a proof needs them, which costs
a proof at most 32 records read and saves an append the rows (and database pages) of the
four lowest levels: 15 of every 16 rows the tree would otherwise add."""


def leaf_hash(record: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def subtree_root(leaves: list[bytes]) -> bytes:
    """The root of a complete subtree from its leaf hashes (a power of two of them)."""
    level = leaves
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a growing tree: appending a leaf costs O(log n) hashes at worst.

    ``hashes[i]`` is the root of a complete subtree; their sizes are the set bits of
    ``size``, largest first. :meth:`append` returns the complete subtrees it created, which
    are the nodes to store.
    """

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)
        if len(self.hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} has {bin(size).count('1')} hashes")

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        created: list[tuple[Node, bytes]] = [((0, self.size), leaf)]
        index, level, current = self.size, 0, leaf
        while index & 1:  # the new subtree completes its left sibling: merge upwards
            current = node_hash(self.hashes.pop(), current)
            index, level = index >> 1, level + 1
            created.append(((level, index), current))
        self.hashes.append(current)
        self.size += 1
        return created

    def push(self, leaf: bytes) -> None:
        """:meth:`append` without listing the new nodes (for a verifier that keeps none)."""
        index, current = self.size, leaf
        while index & 1:
            current = node_hash(self.hashes.pop(), current)
            index >>= 1
        self.hashes.append(current)
        self.size += 1

    def root(self) -> bytes:
        """MTH of the whole tree: the frontier folded right to left."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            root = node_hash(h, root)
        return root

    def nodes(self) -> list[Node]:
        """The (level, index) of each frontier hash, largest first."""
        out, start = [], 0
        for level in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> level & 1:
                out.append((level, start >> level))
                start += 1 << level
        return out


def decompose(start: int, end: int) -> list[Node]:
    """The complete subtrees covering leaves [start, end) as the tree shapes that range,
    left to right (``start`` is aligned as every range in RFC 9162's recursions is)."""
    out: list[Node] = []
    while start < end:
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            out.append((n.bit_length() - 1, start // n))
            break
        k = split_point(n)
        out.append(((k.bit_length() - 1), start // k))
        start += k
    return out


def range_hash(start: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[start:end]) from stored complete subtrees (the right part folds first)."""
    parts = [nodes[n] for n in decompose(start, end)]
    h = parts[-1]
    for p in reversed(parts[:-1]):
        h = node_hash(p, h)
    return h


def _inclusion_ranges(m: int, start: int, end: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(m, D[start:end]) as the ranges whose hashes form the path."""
    out: list[tuple[int, int]] = []
    while end - start > 1:
        k = split_point(end - start)
        if m < k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start, m = start + k, m - k
    out.reverse()  # the path lists the sibling nearest the leaf first
    return out


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[0:n], true) as ranges, nearest the leaves first."""
    out: list[tuple[int, int]] = []
    start, end, complete = 0, n, True
    while True:
        size = end - start
        if m == size:
            if not complete:
                out.append((start, end))
            break
        k = split_point(size)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start, m, complete = start + k, m - k, False
    out.reverse()
    return out


def inclusion_nodes(index: int, size: int) -> set[Node]:
    """The stored nodes :func:`inclusion_proof` will read."""
    return {n for a, b in _inclusion_ranges(index, 0, size) for n in decompose(a, b)}


def inclusion_proof(index: int, size: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` (0-based) in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return [range_hash(a, b, nodes) for a, b in _inclusion_ranges(index, 0, size)]


def consistency_nodes(old: int, new: int) -> set[Node]:
    return {n for a, b in _consistency_ranges(old, new) for n in decompose(a, b)}


def consistency_proof(old: int, new: int, nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The proof that the tree of ``new`` leaves extends the tree of ``old`` leaves."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == new:
        return []
    return [range_hash(a, b, nodes) for a, b in _consistency_ranges(old, new)]


def root_nodes(size: int) -> list[Node]:
    return decompose(0, size) if size else []


def root_at(size: int, nodes: Mapping[Node, bytes]) -> bytes:
    return range_hash(0, size, nodes) if size else EMPTY_ROOT


# -- verification (RFC 9162 §2.1.3.2 and §2.1.4.2), what an auditor runs ---------------------


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> bool:
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    if old == new:
        return not proof and old_root == new_root
    if not 0 < old < new or not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first subtree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
