"""An independent reading of RFC 9162 §2.1, written from the text, for checking the ledger.

Nothing here imports the project's code: MTH, PATH and PROOF are the recursive definitions
of §2.1.1, §2.1.3.1 and §2.1.4.1 (memoised over ranges so that large trees stay quick), and
the two verifiers are the algorithms of §2.1.3.2 and §2.1.4.2, step by step.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """D[n], the list of leaf inputs, with MTH/PATH/PROOF over index ranges."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return sha256(b"")
        if n == 1:
            return sha256(b"\x00" + self.leaves[start])
        k = largest_power_below(n)
        return sha256(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n <= 1:
            return []
        k = largest_power_below(n)
        if m < k:
            return self.path(m, start, start + k) + [self.mth(start + k, end)]
        return self.path(m - k, start + k, end) + [self.mth(start, start + k)]

    def subproof(self, m: int, start: int, end: int, b: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if b else [self.mth(start, end)]
        k = largest_power_below(n)
        if m <= k:
            return self.subproof(m, start, start + k, b) + [self.mth(start + k, end)]
        return self.subproof(m - k, start + k, end, False) + [self.mth(start, start + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True)


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_input: bytes, path: list[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, numbered steps."""
    if leaf_index >= tree_size:  # 1
        return False
    fn, sn = leaf_index, tree_size - 1  # 2
    r = sha256(b"\x00" + leaf_input)  # 3
    for p in path:  # 4
        if sn == 0:  # 4a
            return False
        if fn % 2 == 1 or fn == sn:  # 4b
            r = sha256(b"\x01" + p + r)  # 4b i
            if fn % 2 == 0:  # 4b ii
                while not (fn % 2 == 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)  # 4b (otherwise)
        fn >>= 1  # 4c
        sn >>= 1
    return sn == 0 and r == root  # 5


def verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, numbered steps (first < second)."""
    if not proof:  # 1
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # 2: an exact power of two
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1  # 3
    while fn % 2 == 1:  # 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # 5
    for c in path[1:]:  # 6
        if sn == 0:  # 6a
            return False
        if fn % 2 == 1 or fn == sn:  # 6b
            fr = sha256(b"\x01" + c + fr)
            sr = sha256(b"\x01" + c + sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha256(b"\x01" + sr + c)
        fn >>= 1  # 6c
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0  # 7


def record_bytes(row: Any) -> bytes:
    """The leaf input of a ledger record, from its columns, as docs/proofs.md defines it."""
    created: datetime = row.created_at
    doc = {
        "seq": row.seq,
        "kind": row.kind,
        "created_at": created.astimezone(UTC).isoformat(timespec="microseconds"),
        "message_ref": row.message_ref,
        "content_sha256": row.content_sha256,
        "actor": row.actor,
        "details": json.loads(row.details),
        "prev_hash": row.prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
