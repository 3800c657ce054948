"""The full re-reading of the proof ledger behind ``mssante proofs verify``, made fast.

10 million records must verify in under two minutes. Profiling the previous walk on
1 M records (py-spy, 2 loaded cores) put the time in three places: reading the rows
(about 45 %: SQLite's fetch and SQLAlchemy's row objects), rebuilding and hashing each
record's canonical text (about 35 %), and a second Python loop per record for the chain
checks and the Merkle frontier (about 20 %). Worker processes did not help there, because
the rows were read in the parent and pickled to them, which cost about what hashing did.

So, here:

- one loop per record (:func:`scan`) rebuilds the text, checks its hash, the link to the
  previous record and the sequence, and computes its RFC 9162 leaf hash; it returns the
  leaves as one contiguous byte string and the problems in record order;
- the tree (:class:`TreeBuilder`) is built from those leaves level by level, in aligned
  chunks of :data:`CHUNK` leaves (one list comprehension per level over contiguous bytes,
  one frontier step per chunk); the roots of the signed tree sizes are read from the chunk's
  levels, so checkpoints in the middle of a chunk cost O(log n);
- with several CPUs, worker processes each read *their own* range of sequence numbers
  through their own connection (:func:`scan_range`) and send back only 32 bytes per record
  and the problems; the parent applies the ranges in order (the checks between two ranges
  are the first record's link and sequence, done in :meth:`Walk.add`).

Everything is pure but :func:`fetch_batch` and :func:`scan_range`, and the same checks
run whatever the number of processes: the reports are identical (tests compare them).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engine import create_scan_engine, fetch_tuples
from storage.merkle import EMPTY_ROOT
from storage.schema import proofs
from storage.types import utc_text

CHUNK_LEVEL = 12
CHUNK = 1 << CHUNK_LEVEL
"""Leaves hashed level by level at once (aligned on a multiple of CHUNK in the tree)."""

_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]

# The columns verify reads, as the driver returns them: created_at not converted to a
# datetime per row (on SQLite the stored text, see storage.types.utc_text).
VERIFY_COLUMNS = (
    proofs.c.seq, proofs.c.kind, type_coerce(proofs.c.created_at, Text), proofs.c.message_ref,
    proofs.c.content_sha256, proofs.c.actor, proofs.c.details, proofs.c.prev_hash,
    proofs.c.hash,
)


@dataclass(repr=False)  # no repr of megabytes of leaves in a debug message
class Scanned:
    """What :func:`scan` found in consecutive rows (a batch, or a worker's whole range)."""

    count: int = 0
    first_seq: int = 0
    first_prev: str = ""
    last_seq: int = 0
    last_digest: str = ""
    problems: list[str] = field(default_factory=list)
    """In record order; the first row's sequence and link are the caller's to check."""
    hashes_at: dict[int, str] = field(default_factory=dict)
    """The stored hash of the records whose seq is wanted (signed by a checkpoint)."""
    parts: list[bytes] = field(default_factory=list)
    """The leaf hashes, 32 bytes each, in record order (one string per batch)."""

    @property
    def leaves(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def scan(rows: Sequence[Any], wanted: frozenset[int] | set[int],
         into: Scanned | None = None) -> Scanned:
    """The hot loop: each record's canonical text rebuilt (the form of
    ``storage.proofs._record_text``, inlined: no call per field), its SHA-256 compared with
    the stored hash, its leaf hash ``SHA-256(0x00 || text)`` computed, the sequence and the
    previous-hash link checked against the row before. ``into`` continues an earlier scan
    of the rows just before (its last row is then the one the first row is checked with).
    """
    out = into if into is not None else Scanned()
    if not rows:
        return out
    sha256 = hashlib.sha256
    quote = _quote
    problems = out.problems
    hashes_at = out.hashes_at
    leaves: list[bytes] = []
    add = leaves.append
    if out.count:
        expected, prev_hash = out.last_seq + 1, out.last_digest
    else:
        expected, prev_hash = rows[0][0], rows[0][7]
        out.first_seq, out.first_prev = rows[0][0], rows[0][7]
    for seq, kind, created, ref, content, actor, details, prev, digest in rows:
        if seq != expected:
            problems.append(f"records {expected}..{seq - 1} are missing (deleted)"
                            if seq > expected else f"record {seq} is out of sequence")
        if prev != prev_hash:
            problems.append(f"record {seq}: previous-hash link broken (a record before "
                            "it was changed, deleted or moved)")
        if type(created) is str and len(created) == 26 and created[10] == " ":
            created = f"{created[:10]}T{created[11:]}+00:00"  # utc_text's fast path
        else:
            created = utc_text(created)
        # The stored details text is canonical JSON (append_many writes it so), hence the
        # direct form: a details text edited into any other spelling no longer hashes.
        text = (f'{{"actor":{"null" if actor is None else quote(actor)},'
                f'"content_sha256":{"null" if content is None else quote(content)},'
                f'"created_at":{quote(created)},"details":{details},"kind":{quote(kind)},'
                f'"message_ref":{"null" if ref is None else quote(ref)},'
                f'"prev_hash":{quote(prev)},"seq":{int(seq)}}}').encode()
        if sha256(text).hexdigest() != digest:
            problems.append(
                f"record {seq}: content does not match its hash (the record was changed)")
        add(sha256(b"\x00" + text).digest())  # RFC 9162 §2.1.1 leaf hash
        if seq in wanted:
            hashes_at[seq] = digest
        prev_hash, expected = digest, seq + 1
    out.count += len(rows)
    out.last_seq, out.last_digest = rows[-1][0], rows[-1][8]
    out.parts.append(b"".join(leaves))
    return out


def chunk_levels(leaves: bytes) -> list[bytes]:
    """Every level of the complete tree over ``leaves`` (a power of two of them), leaves
    first, root last, each level one byte string of 32-byte hashes."""
    sha256 = hashlib.sha256
    levels = [leaves]
    level = leaves
    while len(level) > 32:
        level = b"".join([sha256(b"\x01" + level[i:i + 64]).digest()
                          for i in range(0, len(level), 64)])
        levels.append(level)
    return levels


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of a tree from its frontier (complete subtrees, largest first)."""
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = hashlib.sha256(b"\x01" + h + root).digest()
    return root


class TreeBuilder:
    """The Merkle tree of the leaves added so far, as its frontier, and the roots at the
    ``wanted`` tree sizes (those of checkpoints and checkpoint files)."""

    def __init__(self, wanted: set[int]) -> None:
        self.size = 0
        self.hashes: list[bytes] = []
        self.roots_at: dict[int, bytes] = {}
        self._wanted = sorted(wanted)
        self._wanted_set = frozenset(wanted)
        self._pending = b""

    def add(self, leaves: bytes) -> None:
        data = self._pending + leaves if self._pending else leaves
        offset, end = 0, len(data)
        span = CHUNK * 32
        while offset < end:
            if self.size % CHUNK == 0:
                if end - offset < span:
                    break  # wait for more leaves to fill the chunk
                self._add_chunk(data[offset:offset + span])
                offset += span
            else:  # not aligned (a ledger with records missing, or a first partial chunk)
                self._push(data[offset:offset + 32])
                offset += 32
        self._pending = data[offset:]

    def finish(self) -> None:
        """Adds what waits for a chunk to fill, one leaf at a time."""
        data, self._pending = self._pending, b""
        for offset in range(0, len(data), 32):
            self._push(data[offset:offset + 32])

    def _push(self, leaf: bytes) -> None:
        sha256 = hashlib.sha256
        hashes = self.hashes
        index, current = self.size, leaf
        while index & 1:
            current = sha256(b"\x01" + hashes.pop() + current).digest()
            index >>= 1
        hashes.append(current)
        self.size += 1
        if self.size in self._wanted_set:
            self.roots_at[self.size] = fold(hashes)

    def root(self) -> bytes:
        return fold(self.hashes) if self.hashes else EMPTY_ROOT

    def _add_chunk(self, leaves: bytes) -> None:
        levels = chunk_levels(leaves)
        start = self.size
        first = bisect.bisect_right(self._wanted, start)
        last = bisect.bisect_right(self._wanted, start + CHUNK)
        for size in self._wanted[first:last]:
            self.roots_at[size] = fold(self.hashes + _pieces(levels, size - start))
        sha256 = hashlib.sha256
        hashes = self.hashes
        index, current = start >> CHUNK_LEVEL, levels[-1]
        while index & 1:
            current = sha256(b"\x01" + hashes.pop() + current).digest()
            index >>= 1
        hashes.append(current)
        self.size = start + CHUNK


def _pieces(levels: list[bytes], count: int) -> list[bytes]:
    """The complete subtrees (largest first) covering the first ``count`` leaves of a
    chunk whose levels are ``levels``."""
    out: list[bytes] = []
    done = 0
    for level in range(len(levels) - 1, -1, -1):
        if count >> level & 1:
            at = (done >> level) * 32
            out.append(levels[level][at:at + 32])
            done += 1 << level
    return out


@dataclass
class Walk:
    """What verification accumulates, range after range in ledger order."""

    problems: list[str]
    tree: TreeBuilder
    hashes_at: dict[int, str]
    prev_hash: str
    expected_seq: int = 1
    last_seq: int = 0
    records: int = 0

    def add(self, part: Scanned) -> None:
        if not part.count:
            return
        seq = part.first_seq
        if seq != self.expected_seq:
            self.problems.append(
                f"records {self.expected_seq}..{seq - 1} are missing (deleted)"
                if seq > self.expected_seq else f"record {seq} is out of sequence")
        if part.first_prev != self.prev_hash:
            self.problems.append(f"record {seq}: previous-hash link broken (a record before "
                                 "it was changed, deleted or moved)")
        self.problems.extend(part.problems)
        self.hashes_at.update(part.hashes_at)
        self.tree.add(part.leaves)
        self.records += part.count
        self.prev_hash, self.expected_seq = part.last_digest, part.last_seq + 1
        self.last_seq = part.last_seq


async def fetch_batch(conn: AsyncConnection, after: int, batch: int,
                      upto: int | None = None) -> Sequence[Any]:
    """The next ``batch`` records after seq ``after`` (and up to ``upto``), in seq order."""
    query = select(*VERIFY_COLUMNS).where(proofs.c.seq > after)
    if upto is not None:
        query = query.where(proofs.c.seq <= upto)
    return await fetch_tuples(conn, query.order_by(proofs.c.seq).limit(batch))


@contextmanager
def light_worker_main() -> Iterator[None]:
    """While worker processes are spawned, has them import this module as their main one
    instead of the parent's main script.

    A spawned child re-runs the parent's ``__main__`` first: for ``mssante proofs verify``
    that is the command line, which imports the whole gateway (about 1.5 s of CPU per
    worker on the loaded reference machine, for a worker that needs this module only).
    multiprocessing takes a main module named by its ``__spec__`` as one to import by name,
    so the parent's ``__main__.__spec__`` names this module for the time of the pool."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    had = "__spec__" in vars(main)
    saved = getattr(main, "__spec__", None)
    main.__spec__ = importlib.util.find_spec(__name__)
    try:
        yield
    finally:
        if had:
            main.__spec__ = saved
        else:
            del main.__spec__


def scan_range(url: URL, after: int, upto: int, batch: int,
               wanted: frozenset[int]) -> Scanned:
    """A worker process's share: records ``after`` < seq <= ``upto`` read through a
    connection of its own (nothing but the results crosses between processes)."""
    async def run() -> Scanned:
        engine = create_scan_engine(url)
        try:
            async with engine.connect() as conn:
                out, last = Scanned(), after
                while True:
                    rows = await fetch_batch(conn, last, batch, upto)
                    if not rows:
                        return out
                    scan(rows, wanted, out)
                    last = rows[-1][0]
        finally:
            await engine.dispose()

    return asyncio.run(run())
