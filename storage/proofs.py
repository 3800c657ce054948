"""The proof ledger: append-only, hash-chained, with signed checkpoints.

Record hash (hex SHA-256) over the canonical JSON (sorted keys, compact) of::

    {"seq", "kind", "created_at" (ISO 8601 UTC, microseconds), "message_ref",
     "content_sha256", "actor", "details", "prev_hash"}

``prev_hash`` is the previous record's hash (64 zeros for seq 1) and sequence numbers are
consecutive from 1, so changing a record, deleting one or swapping two breaks the chain at
that point. Deleting the newest records leaves a valid shorter chain; signed checkpoints
(Ed25519 over seq + hash) pin how far the ledger reached, so that too is detected.
Proofs name messages by Message-ID and content hash, never by patient data.

Next to the chain, the records are the leaves of a Merkle tree (:mod:`storage.merkle`,
RFC 9162 §2.1): the leaf of record ``seq`` is the canonical text above, UTF-8, at index
``seq - 1``. Every complete subtree of 16 leaves or more is stored in ``proof_tree`` (one
row per 15 records; smaller ones are hashed again from their 16 records when a proof needs
them) and the right edge of the tree in ``meta`` under ``proofs.tree``, so an append costs
O(log n) hashes and two statements more, and an inclusion or consistency proof O(log n)
lookups and at most 32 records.
Checkpoints are C2SP signed notes over (tree size, root) (:mod:`storage.notes`), also written
outside the database (:mod:`storage.checkpoint_files`) so that cutting the newest records
together with their checkpoint rows is still detected. ``docs/proofs.md`` has the procedure.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import checkpoint_files, merkle, notes, proof_walk
from storage import meta as meta_values
from storage.engine import serialize
from storage.errors import UnknownKeyId
from storage.keys import Keyring
from storage.schema import meta, proof_checkpoints, proof_tree, proofs
from storage.types import canonical_json, utcnow

GENESIS = "0" * 64
_quote: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
TREE_KEY = "proofs.tree"  # meta row: {"size": n, "frontier": [hex root, …]} (largest first)
DEFAULT_ORIGIN = "mssante-gateway/proofs"
_CHECKPOINT_PREFIX = b"mssante-proof-checkpoint/1\n"
# The events a proof is kept for (SMTP issue "Proofs recorded"; docs/architecture.md §1 rule 4).
PROOF_KINDS = (
    "submitted",  # accepted on submission: who, method, client IP, TLS
    # accepted from another operator: peer certificate subject and SHA-256 fingerprint, its
    # family and trust-space domains, the sender binding mode, the sender domains (MAIL FROM
    # and From:) and the sentence saying why they were accepted (binding_decision)
    "received",
    "delivered",  # filed in a local mailbox
    "relayed",  # handed to the next operator: remote host, reply, TLS, peer fingerprint
    "deferred",  # delivery attempt failed temporarily
    "bounced",  # delivery failed for good
    "dsn-sent",  # a delivery status notification was sent
    "read",  # first reading by the recipient
    "mdn-sent",  # a disposition notification was sent
    "purged",  # body removed at the end of its retention
    # registration life cycle (accounts/registrations.py) and account changes made by an
    # operator or the portal (accounts/audit.py), written with the change, naming the actor
    "account-created",  # a professional signed up, or an operator created a mailbox
    "account-confirmed",  # the usual e-mail address was confirmed by its link
    "account-approved",  # an administrator approved (or activated a pending account)
    "account-rejected",  # an administrator rejected, with the reason
    "account-suspended",
    "account-reactivated",
    "account-closed",
    # a setting that decides how the mailbox works changed (APP send mode, read-notice and
    # delivery-notice policy, directory listing, usual address): details say which, from/to
    "account-changed",
    "credential-added",
    "credential-revoked",
    "delegation-granted",
    "delegation-changed",
    "delegation-revoked",
    # reports filed in a local mailbox, under the message they answer (mail/reports.py)
    "dsn-received",  # a delivery status notification came back
    "mdn-received",  # a disposition notification (read receipt) came back
)
# The evidence type of ETSI EN 319 522-2 (Electronic Registered Delivery Services) each kind
# stands for, so that receipts and exports name it; None: an operator event ETSI has no
# evidence for. docs/proofs.md explains each line.
ETSI_EVIDENCE: dict[str, str | None] = {
    "submitted": "SubmissionAcceptance",
    "received": "RelayAcceptance",
    "relayed": "RelayAcceptance",
    "deferred": "RelayFailure",
    "bounced": "RelayRejection",
    "delivered": "ContentConsignment",
    "read": "ContentHandover",
    "dsn-sent": None,
    "mdn-sent": None,
    "purged": None,
}


@dataclass(frozen=True)
class ProofRecord:
    seq: int
    kind: str
    created_at: datetime
    message_ref: str | None
    content_sha256: str | None
    actor: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def text(self) -> str:
        """The canonical text the chain hash and the Merkle leaf are computed over."""
        return record_text(
            seq=self.seq, kind=self.kind, created_at=self.created_at,
            message_ref=self.message_ref, content_sha256=self.content_sha256,
            actor=self.actor, details_text=canonical_json(self.details),
            prev_hash=self.prev_hash,
        )

    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.text().encode())


class LedgerError(RuntimeError):
    """The stored tree does not fit the records (they were cut): appending would hide it."""


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: ``ok`` is True only when no problem was found."""

    records: int = 0
    checkpoints: int = 0
    checkpoint_files: int = 0
    last_seq: int = 0
    root: bytes = merkle.EMPTY_ROOT
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def record_text(
    *,
    seq: int,
    kind: str,
    created_at: datetime,
    message_ref: str | None,
    content_sha256: str | None,
    actor: str | None,
    details_text: str,
    prev_hash: str,
) -> str:
    """The canonical JSON text of one record (see the module documentation)."""
    doc = {
        "seq": seq,
        "kind": kind,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "message_ref": message_ref,
        "content_sha256": content_sha256,
        "actor": actor,
        "details": json.loads(details_text),
        "prev_hash": prev_hash,
    }
    return canonical_json(doc)


def record_hash(
    *,
    seq: int,
    kind: str,
    created_at: datetime,
    message_ref: str | None,
    content_sha256: str | None,
    actor: str | None,
    details_text: str,
    prev_hash: str,
) -> str:
    """The chained hash of one record (see the module documentation)."""
    return hashlib.sha256(record_text(
        seq=seq, kind=kind, created_at=created_at, message_ref=message_ref,
        content_sha256=content_sha256, actor=actor, details_text=details_text,
        prev_hash=prev_hash,
    ).encode()).hexdigest()


@dataclass(frozen=True)
class NewProof:
    """A proof to append (the ledger gives it its sequence number, time and hashes)."""

    kind: str
    message_ref: str | None = None
    content_sha256: str | None = None
    actor: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


async def append(
    conn: AsyncConnection,
    *,
    kind: str,
    message_ref: str | None = None,
    content_sha256: str | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
) -> ProofRecord:
    """Appends one proof in the caller's transaction (appenders are serialised)."""
    [record] = await append_many(
        conn, [NewProof(kind, message_ref, content_sha256, actor, details or {})]
    )
    return record


async def append_many(conn: AsyncConnection, items: Sequence[NewProof]) -> list[ProofRecord]:
    """Appends proofs in order with one read of the chain head and one insert.

    The accept path records several proofs per message and groups messages per commit;
    chaining them in memory keeps that cost independent of how many there are.
    """
    if not items:
        return []
    for item in items:
        if item.kind not in PROOF_KINDS:
            raise ValueError(
                f"invalid proof kind {item.kind!r}: expected one of {', '.join(PROOF_KINDS)}"
            )
    await serialize(conn, "mssante-proofs")
    # One statement for the chain head and the stored right edge of the tree: the accept
    # path calls this once per group commit, and each statement costs more than the hashing.
    last = (await conn.execute(_HEAD_AND_TREE, {"key": TREE_KEY})).first()
    seq, prev = (0, GENESIS) if last is None else (int(last.seq), str(last.hash))
    # Microsecond precision on both engines, so the hashed time is what is stored.
    created_at = utcnow()
    records: list[ProofRecord] = []
    stamp = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    rows: list[dict[str, Any]] = []
    tree = await _tree(conn, seq, stored=None if last is None else last.tree)
    nodes: list[tuple[merkle.Node, bytes]] = []
    for item in items:
        seq += 1
        # The JSON form of the details (string keys only), stored as is and hashed as is.
        details = json.loads(canonical_json(item.details))
        details_text = canonical_json(details)
        text = _record_text(
            seq, item.kind, stamp, item.message_ref, item.content_sha256, item.actor,
            details_text, prev,
        ).encode()
        digest = hashlib.sha256(text).hexdigest()
        nodes.extend(tree.append(merkle.leaf_hash(text)))
        records.append(
            ProofRecord(seq, item.kind, created_at, item.message_ref, item.content_sha256,
                        item.actor, details, prev, digest)
        )
        rows.append({"seq": seq, "kind": item.kind, "created_at": created_at,
                     "message_ref": item.message_ref, "content_sha256": item.content_sha256,
                     "actor": item.actor, "details": details_text, "prev_hash": prev,
                     "hash": digest})
        prev = digest
    await conn.execute(proofs.insert(), rows)
    await _store_tree(conn, tree, nodes)
    return records


async def _tree(conn: AsyncConnection, head: int, *, stored: str | None = None) -> merkle.Frontier:
    """The stored right edge of the tree, brought up to record ``head``.

    Records written before the tree existed (a ledger upgraded in place) are hashed into it
    once, here, in batches; afterwards the stored size always equals the newest sequence
    number. A stored tree larger than the ledger means records were cut off: refuse to
    append over the gap rather than hide it.
    """
    raw = await meta_values.get_value(conn, TREE_KEY) if stored is None else stored
    if raw is None:
        tree = merkle.Frontier()
    else:
        doc = json.loads(raw)
        tree = merkle.Frontier(int(doc["size"]), [bytes.fromhex(h) for h in doc["frontier"]])
    if tree.size > head:
        raise LedgerError(
            f"the proof tree covers {tree.size} records but the ledger ends at record {head}: "
            "records were cut off; run mssante proofs verify"
        )
    while tree.size < head:
        rows = (
            await conn.execute(
                select(proofs).where(proofs.c.seq > tree.size).order_by(proofs.c.seq)
                .limit(5000)
            )
        ).all()
        nodes: list[tuple[merkle.Node, bytes]] = []
        for r in rows:
            if r.seq != tree.size + 1:
                raise LedgerError(
                    f"record {tree.size + 1} is missing; run mssante proofs verify"
                )
            nodes.extend(tree.append(merkle.leaf_hash(_row_text(r).encode())))
        await _store_tree(conn, tree, nodes)
    return tree


async def _store_tree(
    conn: AsyncConnection, tree: merkle.Frontier, nodes: list[tuple[merkle.Node, bytes]]
) -> None:
    stored = [{"level": level, "idx": idx, "hash": h}
              for (level, idx), h in nodes if level >= merkle.STORED_FROM]
    if stored:
        await conn.execute(proof_tree.insert(), stored)
    value = json.dumps({"size": tree.size, "frontier": [h.hex() for h in tree.hashes]})
    # A prepared UPDATE (the row exists after the first append); the upsert builds its
    # statement anew on every call, which the accept path would pay per group commit.
    done = await conn.execute(_SET_TREE, {"k": TREE_KEY, "v": value})
    if not done.rowcount:
        await meta_values.set_value(conn, TREE_KEY, value)


# The chain head with the stored tree edge beside it (None before the first append).
_HEAD_AND_TREE = (
    select(
        proofs.c.seq, proofs.c.hash,
        select(meta.c.value).where(meta.c.key == bindparam("key")).scalar_subquery()
        .label("tree"),
    )
    .order_by(proofs.c.seq.desc())
    .limit(1)
)
_SET_TREE = update(meta).where(meta.c.key == bindparam("k")).values(value=bindparam("v"))


def _row_text(r: Any) -> str:
    return record_text(
        seq=r.seq, kind=r.kind, created_at=r.created_at, message_ref=r.message_ref,
        content_sha256=r.content_sha256, actor=r.actor, details_text=r.details,
        prev_hash=r.prev_hash,
    )


async def subtree_hashes(
    conn: AsyncConnection, wanted: set[merkle.Node]
) -> dict[merkle.Node, bytes]:
    """The hashes of the complete subtrees ``wanted``: those of :data:`merkle.STORED_FROM`
    leaves or more read from ``proof_tree`` (one query), the smaller ones hashed from the
    records of their block (at most two blocks for a proof: the leaf's and the right edge's).
    """
    low = {n for n in wanted if n[0] < merkle.STORED_FROM}
    found = await _stored_nodes(conn, wanted - low)
    if low:
        found.update(await _low_nodes(conn, low))
    return found


async def _low_nodes(conn: AsyncConnection, wanted: set[merkle.Node]) -> dict[merkle.Node, bytes]:
    """Subtrees below the stored levels, hashed from their records' texts."""
    block = 1 << merkle.STORED_FROM
    starts = sorted({(idx << level) // block * block for level, idx in wanted})
    rows = await conn.execute(
        select(proofs).where(or_(*(proofs.c.seq.between(a + 1, a + block) for a in starts)))
    )
    leaves = {int(r.seq) - 1: merkle.leaf_hash(_row_text(r).encode()) for r in rows}
    out: dict[merkle.Node, bytes] = {}
    for level, idx in wanted:
        first = idx << level
        try:
            out[(level, idx)] = merkle.subtree_root(
                [leaves[i] for i in range(first, first + (1 << level))])
        except KeyError as exc:
            raise LedgerError(
                f"record {exc.args[0] + 1} is missing under the stored tree; "
                "run mssante proofs verify"
            ) from None
    return out


async def _stored_nodes(
    conn: AsyncConnection, wanted: set[merkle.Node]
) -> dict[merkle.Node, bytes]:
    if not wanted:
        return {}
    by_level: dict[int, list[int]] = {}
    for level, idx in wanted:
        by_level.setdefault(level, []).append(idx)
    rows = await conn.execute(
        select(proof_tree.c.level, proof_tree.c.idx, proof_tree.c.hash).where(
            or_(*(and_(proof_tree.c.level == level, proof_tree.c.idx.in_(idxs))
                  for level, idxs in by_level.items()))
        )
    )
    found = {(int(r.level), int(r.idx)): bytes(r.hash) for r in rows}
    missing = wanted - found.keys()
    if missing:
        raise LedgerError(
            f"{len(missing)} stored tree node(s) are missing (for example level "
            f"{min(missing)[0]}, index {min(missing)[1]}); run mssante proofs verify"
        )
    return found


async def tree_size(conn: AsyncConnection) -> int:
    """How many records the stored tree covers."""
    raw = await meta_values.get_value(conn, TREE_KEY)
    return 0 if raw is None else int(json.loads(raw)["size"])


async def root_at(conn: AsyncConnection, size: int) -> bytes:
    """The root hash of the tree of the first ``size`` records."""
    return merkle.root_at(size, await subtree_hashes(conn, set(merkle.root_nodes(size))))


async def inclusion_proof(conn: AsyncConnection, seq: int, size: int) -> list[bytes]:
    """The audit path of record ``seq`` in the tree of ``size`` records (log2(size) hashes)."""
    index = seq - 1
    if not 0 <= index < size:
        raise ValueError(f"record {seq} is not in a tree of {size} records")
    nodes = await subtree_hashes(conn, merkle.inclusion_nodes(index, size))
    return merkle.inclusion_proof(index, size, nodes)


async def consistency_proof(conn: AsyncConnection, old: int, new: int) -> list[bytes]:
    """The proof that the tree of ``new`` records extends the tree of ``old`` records."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    nodes = await subtree_hashes(conn, merkle.consistency_nodes(old, new))
    return merkle.consistency_proof(old, new, nodes)


def _record_text(
    seq: int, kind: str, created_at: str, message_ref: str | None, content_sha256: str | None,
    actor: str | None, details_text: str, prev_hash: str,
) -> str:
    """The canonical text :func:`record_hash` hashes, written directly: keys in sorted order,
    ``details_text`` embedded as is (it is already canonical JSON with string keys, so it is
    exactly what serialising the whole document would write), one ``json.dumps`` fewer and
    no re-parsing per proof on the accept path."""
    def text(value: str | None) -> str:
        # What json.dumps(value, ensure_ascii=False) writes for a string or None, without
        # building an encoder per field (verify runs this for every record).
        return "null" if value is None else _quote(value)

    return (
        f'{{"actor":{text(actor)},"content_sha256":{text(content_sha256)},'
        f'"created_at":{text(created_at)},"details":{details_text},"kind":{text(kind)},'
        f'"message_ref":{text(message_ref)},"prev_hash":{text(prev_hash)},"seq":{int(seq)}}}'
    )


def _checkpoint_message(seq: int, digest: str) -> bytes:
    return _CHECKPOINT_PREFIX + f"{seq}\n{digest}\n".encode()


async def checkpoint(
    conn: AsyncConnection,
    keyring: Keyring,
    *,
    origin: str = DEFAULT_ORIGIN,
    directory: Path | None = None,
) -> int | None:
    """Signs the newest state with the active Ed25519 key; returns the tree size signed.

    Two signatures: the chain signature over (seq, hash) as before, and the C2SP checkpoint
    note over (origin, tree size, root), which is also written to ``directory`` when given.
    Returns None when the ledger is empty or the newest record is already checkpointed.
    """
    await serialize(conn, "mssante-proofs")
    last = (
        await conn.execute(
            select(proofs.c.seq, proofs.c.hash).order_by(proofs.c.seq.desc()).limit(1)
        )
    ).first()
    if last is None:
        return None
    # Before the early return: the start-up checkpoint is where a ledger upgraded in place
    # gets its tree built, before any listener opens, not in the first accepted message.
    tree = await _tree(conn, int(last.seq))
    done = (await conn.execute(select(func.max(proof_checkpoints.c.seq)))).scalar()
    if done is not None and done >= last.seq:
        return None
    root = tree.root()
    kid = keyring.signing_key_id
    key = keyring.signing_key(kid)
    signature = key.sign(_checkpoint_message(last.seq, last.hash))
    note = notes.sign(origin, tree.size, root, key)
    await conn.execute(
        proof_checkpoints.insert().values(
            seq=last.seq, hash=last.hash, signature=signature, key_id=kid, created_at=utcnow(),
            root=root.hex(), note=note,
        )
    )
    if directory is not None:
        # Written before the commit: a file for a state whose row is then rolled back still
        # names records that exist, so it verifies; the reverse order could lose the file.
        checkpoint_files.write(directory, note)
    return int(last.seq)


async def newest_checkpoint(conn: AsyncConnection) -> notes.Checkpoint | None:
    """The newest signed checkpoint note of the database (one indexed row)."""
    text = (
        await conn.execute(
            select(proof_checkpoints.c.note)
            .where(proof_checkpoints.c.note.is_not(None))
            .order_by(proof_checkpoints.c.seq.desc())
            .limit(1)
        )
    ).scalar()
    return None if text is None else notes.parse(text)


async def checkpoints(conn: AsyncConnection) -> list[notes.Checkpoint]:
    """The signed checkpoint notes of the database, smallest tree first."""
    rows = await conn.execute(
        select(proof_checkpoints.c.note)
        .where(proof_checkpoints.c.note.is_not(None))
        .order_by(proof_checkpoints.c.seq)
    )
    return [notes.parse(r.note) for r in rows]


def public_keys(keyring: Keyring) -> list[Any]:
    """The public halves of every signing key (old ones verify old checkpoints)."""
    return [keyring.verify_key(kid) for kid in keyring.signing_keys]


async def unsigned_records(conn: AsyncConnection) -> int:
    """How many records the newest checkpoint does not cover (0 on an empty ledger).

    Two index lookups (the newest record, the newest checkpoint), cheap enough for the
    checkpoint job to ask every second so it can sign after N records without waiting.
    """
    row = (
        await conn.execute(
            select(
                select(func.max(proofs.c.seq)).scalar_subquery(),
                select(func.max(proof_checkpoints.c.seq)).scalar_subquery(),
            )
        )
    ).one()
    head, done = int(row[0] or 0), int(row[1] or 0)
    return max(0, head - done)


async def get_by_message(conn: AsyncConnection, message_ref: str) -> list[ProofRecord]:
    """Every proof about one Message-ID, oldest first."""
    rows = await conn.execute(
        select(proofs).where(proofs.c.message_ref == message_ref).order_by(proofs.c.seq)
    )
    return [_record(r) for r in rows]


def record_from_row(row: Any) -> ProofRecord:
    """A ``proofs`` row as a record (details parsed)."""
    m = dict(row._mapping)
    m["details"] = json.loads(m["details"])
    return ProofRecord(**m)


_record = record_from_row


async def verify(
    conn: AsyncConnection,
    keyring: Keyring,
    *,
    batch: int = 16384,
    directory: Path | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Re-computes the chain and the tree, checks every checkpoint in the database and in
    ``directory`` (signature, root, consistency with the next one, forks, cut-off records).

    Reads in batches by sequence number, so memory stays flat on a large ledger. With
    ``workers`` > 1 (default: one per available CPU on a large ledger, at most
    :data:`MAX_WORKERS`) worker processes read and hash ranges of records through their own
    connections while this one builds the tree; the report is the same either way
    (:mod:`storage.proof_walk` says why and how).
    """
    report = VerifyReport()
    keys = public_keys(keyring)
    checkpoint_rows = (
        await conn.execute(select(proof_checkpoints).order_by(proof_checkpoints.c.seq))
    ).all()
    files = checkpoint_files.read_all(directory) if directory is not None else []
    wanted = {c.seq for c in checkpoint_rows} | {
        f.checkpoint.size for f in files if f.checkpoint is not None
    }
    tree = proof_walk.TreeBuilder(wanted)
    hashes_at: dict[int, str] = {}
    roots_at = tree.roots_at
    if workers is None:
        workers = _default_workers(await tree_size(conn))
    state = proof_walk.Walk(report.problems, tree, hashes_at, GENESIS)
    if workers > 1:
        await _walk_parallel(conn, state, batch, min(workers, MAX_WORKERS), wanted)
    else:
        after, frozen = 0, frozenset(wanted)
        while rows := await proof_walk.fetch_batch(conn, after, batch):
            state.add(proof_walk.scan(rows, frozen))
            after = rows[-1][0]
    tree.finish()
    report.records = state.records
    after = state.last_seq
    report.last_seq = after
    report.root = tree.root()
    signed: list[tuple[str, notes.Checkpoint]] = []
    for c in checkpoint_rows:
        report.checkpoints += 1
        if c.note is not None:
            cp = _checked_note(report, f"checkpoint {c.seq}", c.note, keys)
            if cp is None:
                continue
            signed.append((f"checkpoint {c.seq}", cp))
            if cp.size != c.seq:
                report.problems.append(
                    f"checkpoint {c.seq}: its signed note is for tree size {cp.size}"
                )
        try:
            keyring.verify_key(c.key_id).verify(
                bytes(c.signature), _checkpoint_message(c.seq, c.hash)
            )
        except InvalidSignature:
            report.problems.append(f"checkpoint {c.seq}: signature is invalid")
            continue
        except UnknownKeyId:
            report.problems.append(f"checkpoint {c.seq}: signing key {c.key_id!r} is unknown")
            continue
        if c.seq > after:
            report.problems.append(
                f"checkpoint {c.seq}: the ledger ends at record {after}; records up to "
                f"{c.seq} were deleted"
            )
        elif hashes_at.get(c.seq) != c.hash:
            report.problems.append(
                f"checkpoint {c.seq}: record {c.seq} differs from the signed state"
            )
        elif c.note is not None and roots_at.get(c.seq) != bytes.fromhex(c.root or ""):
            report.problems.append(
                f"checkpoint {c.seq}: the records do not produce the signed root hash"
            )
    _check_files(
        report, directory, files, keys, roots_at, {c.seq for c in checkpoint_rows}, signed
    )
    await _check_signed(conn, report, signed, roots_at, after)
    stored = await tree_size(conn)
    if stored > after:
        report.problems.append(
            f"records {after + 1}..{stored} were cut off: the stored proof tree covers "
            f"{stored} records, the ledger ends at record {after}"
        )
    elif stored == after and await _stored_frontier(conn) != tree.hashes:
        report.problems.append(
            "the stored proof tree does not match the records (its right edge differs): "
            "new checkpoints and inclusion proofs would be wrong"
        )
    return report


MAX_WORKERS = 8


PARALLEL_FROM = 200_000
"""Below this many records one process verifies: starting workers costs more than it saves."""
RANGE_BATCHES = 8
"""Batches in one worker's range of records."""


def _default_workers(records: int) -> int:
    """One process per CPU this process may run on (its affinity, not the machine's count),
    at most :data:`MAX_WORKERS`, for a ledger of :data:`PARALLEL_FROM` records or more.

    Worker processes read their own ranges (only 32 bytes a record come back), so they pay
    off even on two cores; an earlier version shipped the rows to them and was slower."""
    if records < PARALLEL_FROM:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


async def _walk_parallel(conn: AsyncConnection, state: proof_walk.Walk, batch: int,
                         workers: int, wanted: set[int]) -> None:
    """Hands ranges of sequence numbers (up to the newest record this transaction sees) to
    worker processes, at most two per worker in flight, and applies their results in ledger
    order. Workers are spawned (not forked: the caller runs an event loop and threads)."""
    loop = asyncio.get_running_loop()
    newest = (await conn.execute(select(func.max(proofs.c.seq)))).scalar() or 0
    span = batch * RANGE_BATCHES
    url = conn.engine.url
    ordered = sorted(wanted)
    pending: deque[asyncio.Future[proof_walk.Scanned]] = deque()
    starts = iter(range(0, max(newest, 0), span))
    with (proof_walk.light_worker_main(),
          ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool):
        while True:
            while len(pending) < 2 * workers and (after := next(starts, None)) is not None:
                upto = min(after + span, newest)
                inside = frozenset(ordered[bisect.bisect_right(ordered, after):
                                           bisect.bisect_right(ordered, upto)])
                pending.append(loop.run_in_executor(
                    pool, proof_walk.scan_range, url, after, upto, batch, inside))
            if not pending:
                break
            state.add(await pending.popleft())


async def _stored_frontier(conn: AsyncConnection) -> list[bytes]:
    raw = await meta_values.get_value(conn, TREE_KEY)
    return [] if raw is None else [bytes.fromhex(h) for h in json.loads(raw)["frontier"]]


def _checked_note(
    report: VerifyReport, what: str, text: str, keys: list[Any]
) -> notes.Checkpoint | None:
    """The parsed note when one of this ledger's keys signed it; else a problem and None."""
    try:
        cp = notes.parse(text)
    except notes.NoteError as exc:
        report.problems.append(f"{what}: the signed note is malformed ({exc})")
        return None
    if notes.verified_by(cp, keys) is None:
        ids = ", ".join(s.key_id.hex() for s in cp.signatures)
        report.problems.append(
            f"{what}: not signed by this ledger's keys (signed by key id {ids}: another "
            "key, or the note was altered)"
        )
        return None
    return cp


def _check_files(
    report: VerifyReport,
    directory: Path | None,
    files: list[checkpoint_files.CheckpointFile],
    keys: list[Any],
    roots_at: dict[int, bytes],
    db_sizes: set[int],
    signed: list[tuple[str, notes.Checkpoint]],
) -> None:
    """The checkpoints kept outside the database against the records and the rows."""
    after = report.last_seq
    newest: tuple[str, notes.Checkpoint] | None = None
    missing_rows: list[int] = []
    for f in files:
        report.checkpoint_files += 1
        what = f"checkpoint file {f.path.name}"
        if f.checkpoint is None:
            report.problems.append(f"{what}: unreadable ({f.error})")
            continue
        cp = _checked_note(report, what, f.checkpoint.text, keys)
        if cp is None:
            continue
        signed.append((what, cp))
        if newest is None or cp.size > newest[1].size:
            newest = (what, cp)
        if cp.size <= after and roots_at.get(cp.size) != cp.root:
            report.problems.append(
                f"{what}: the records do not produce its signed root hash (a record up to "
                f"{cp.size} was changed, inserted, deleted or moved)"
            )
        if cp.size not in db_sizes:
            missing_rows.append(cp.size)
    if newest is not None and newest[1].size > after:
        report.problems.append(
            f"records {after + 1}..{newest[1].size} were cut off: {newest[0]} signs "
            f"{newest[1].size} records, the database ends at record {after}"
        )
    if missing_rows:
        report.problems.append(
            f"checkpoint rows were deleted: {len(missing_rows)} checkpoint file(s) (tree sizes "
            f"{_ranges(missing_rows)}) have no row in the database"
        )
    on_disk = {cp.size for what, cp in signed if what.startswith("checkpoint file ")}
    no_file = [cp.size for what, cp in signed
               if not what.startswith("checkpoint file ") and cp.size not in on_disk]
    if directory is not None and no_file:
        report.problems.append(
            f"checkpoint files are missing: {len(no_file)} checkpoint(s) signed in the database "
            f"(tree sizes {_ranges(no_file)}) have no file in {directory} (deleted, or the "
            "directory was moved without its files)"
        )


async def _check_signed(
    conn: AsyncConnection,
    report: VerifyReport,
    signed: list[tuple[str, notes.Checkpoint]],
    roots_at: dict[int, bytes],
    after: int,
) -> None:
    """Forks (two roots for one size), then consistency between successive checkpoints."""
    by_size: dict[int, dict[bytes, list[str]]] = {}
    for what, cp in signed:
        by_size.setdefault(cp.size, {}).setdefault(cp.root, []).append(what)
    chain: list[tuple[int, bytes]] = []
    for size in sorted(by_size):
        roots = by_size[size]
        if len(roots) > 1:
            sources = "; ".join(
                f"{base64_text(root)} in {', '.join(whats)}" for root, whats in roots.items()
            )
            report.problems.append(
                f"fork at tree size {size}: signed checkpoints with different root hashes "
                f"({sources})"
            )
            continue
        chain.append((size, next(iter(roots))))
    stored = await tree_size(conn)
    beyond = [size for size, _ in chain if stored < size <= after]
    if beyond:
        report.problems.append(
            f"the stored proof tree was cut: it covers {stored} records, but a checkpoint "
            f"signs {beyond[-1]} and the ledger holds {after}"
        )
    for (old, old_root), (new, new_root) in zip(chain, chain[1:], strict=False):
        if new > min(stored, after):
            break
        try:
            proof = await consistency_proof(conn, old, new)
        except LedgerError as exc:
            report.problems.append(f"checkpoints {old} and {new}: {exc}")
            break
        if not merkle.verify_consistency(old, new, old_root, new_root, proof):
            report.problems.append(
                f"checkpoints {old} and {new} are not consistent: the stored tree does not "
                f"prove that the tree of {new} records extends the tree of {old} records"
            )


def base64_text(data: bytes) -> str:
    """A hash as signed notes write it (standard base64)."""
    return base64.b64encode(data).decode()


def _ranges(values: list[int]) -> str:
    values = sorted(set(values))
    return ", ".join(str(v) for v in values[:10]) + (" …" if len(values) > 10 else "")
