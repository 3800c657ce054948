"""The proof ledger: append-only, hash-chained, with signed checkpoints.

Record hash (hex SHA-256) over the canonical JSON (sorted keys, compact) of::

    {"seq", "kind", "created_at" (ISO 8601 UTC, microseconds), "message_ref",
     "content_sha256", "actor", "details", "prev_hash"}

``prev_hash`` is the previous record's hash (64 zeros for seq 1) and sequence numbers are
consecutive from 1, so changing a record, deleting one or swapping two breaks the chain at
that point. Deleting the newest records leaves a valid shorter chain; signed checkpoints
(Ed25519 over seq + hash) pin how far the ledger reached, so that too is detected.
Proofs name messages by Message-ID and content hash, never by patient data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engine import serialize
from storage.errors import UnknownKeyId
from storage.keys import Keyring
from storage.schema import proof_checkpoints, proofs
from storage.types import canonical_json, utcnow

GENESIS = "0" * 64
_CHECKPOINT_PREFIX = b"mssante-proof-checkpoint/1\n"
# The events a proof is kept for (SMTP issue "Proofs recorded"; DESIGN.md §1 rule 4).
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
    # reports filed in a local mailbox, under the message they answer (mail/reports.py)
    "dsn-received",  # a delivery status notification came back
    "mdn-received",  # a disposition notification (read receipt) came back
    # account life cycle and delegations, written with the change by whoever made it
    "account-created",
    "account-approved",
    "account-suspended",
    "account-reactivated",
    "account-closed",
    "credential-added",
    "credential-revoked",
    "delegation-granted",
    "delegation-changed",
    "delegation-revoked",
)


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


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: ``ok`` is True only when no problem was found."""

    records: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


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
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


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
    last = (
        await conn.execute(
            select(proofs.c.seq, proofs.c.hash).order_by(proofs.c.seq.desc()).limit(1)
        )
    ).first()
    seq, prev = (0, GENESIS) if last is None else (int(last.seq), str(last.hash))
    # Microsecond precision on both engines, so the hashed time is what is stored.
    created_at = utcnow()
    records: list[ProofRecord] = []
    stamp = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    rows: list[dict[str, Any]] = []
    for item in items:
        seq += 1
        # The JSON form of the details (string keys only), stored as is and hashed as is.
        details = json.loads(canonical_json(item.details))
        details_text = canonical_json(details)
        digest = hashlib.sha256(_record_text(
            seq, item.kind, stamp, item.message_ref, item.content_sha256, item.actor,
            details_text, prev,
        ).encode()).hexdigest()
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
    return records


def _record_text(
    seq: int, kind: str, created_at: str, message_ref: str | None, content_sha256: str | None,
    actor: str | None, details_text: str, prev_hash: str,
) -> str:
    """The canonical text :func:`record_hash` hashes, written directly: keys in sorted order,
    ``details_text`` embedded as is (it is already canonical JSON with string keys, so it is
    exactly what serialising the whole document would write), one ``json.dumps`` fewer and
    no re-parsing per proof on the accept path."""
    def text(value: str | None) -> str:
        return json.dumps(value, ensure_ascii=False)

    return (
        f'{{"actor":{text(actor)},"content_sha256":{text(content_sha256)},'
        f'"created_at":{text(created_at)},"details":{details_text},"kind":{text(kind)},'
        f'"message_ref":{text(message_ref)},"prev_hash":{text(prev_hash)},"seq":{int(seq)}}}'
    )


def _checkpoint_message(seq: int, digest: str) -> bytes:
    return _CHECKPOINT_PREFIX + f"{seq}\n{digest}\n".encode()


async def checkpoint(conn: AsyncConnection, keyring: Keyring) -> int | None:
    """Signs the newest record (seq + hash) with the active Ed25519 key; returns its seq.

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
    done = (await conn.execute(select(func.max(proof_checkpoints.c.seq)))).scalar()
    if done is not None and done >= last.seq:
        return None
    kid = keyring.signing_key_id
    signature = keyring.signing_key(kid).sign(_checkpoint_message(last.seq, last.hash))
    await conn.execute(
        proof_checkpoints.insert().values(
            seq=last.seq, hash=last.hash, signature=signature, key_id=kid, created_at=utcnow()
        )
    )
    return int(last.seq)


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


def _record(row: Any) -> ProofRecord:
    m = dict(row._mapping)
    m["details"] = json.loads(m["details"])
    return ProofRecord(**m)


async def verify(conn: AsyncConnection, keyring: Keyring, *, batch: int = 1000) -> VerifyReport:
    """Re-computes the whole chain and checks every checkpoint signature.

    Reads in batches by sequence number, so memory stays flat on a large ledger.
    """
    report = VerifyReport()
    hashes_at: dict[int, str] = {}
    prev_hash, expected_seq = GENESIS, 1
    checkpoints = (
        await conn.execute(select(proof_checkpoints).order_by(proof_checkpoints.c.seq))
    ).all()
    wanted = {c.seq for c in checkpoints}
    after = 0
    while True:
        rows = (
            await conn.execute(
                select(proofs).where(proofs.c.seq > after).order_by(proofs.c.seq).limit(batch)
            )
        ).all()
        if not rows:
            break
        for r in rows:
            report.records += 1
            if r.seq != expected_seq:
                report.problems.append(
                    f"records {expected_seq}..{r.seq - 1} are missing (deleted)"
                    if r.seq > expected_seq
                    else f"record {r.seq} is out of sequence"
                )
            if r.prev_hash != prev_hash:
                report.problems.append(
                    f"record {r.seq}: previous-hash link broken (a record before it was "
                    "changed, deleted or moved)"
                )
            try:
                computed = record_hash(
                    seq=r.seq,
                    kind=r.kind,
                    created_at=r.created_at,
                    message_ref=r.message_ref,
                    content_sha256=r.content_sha256,
                    actor=r.actor,
                    details_text=r.details,
                    prev_hash=r.prev_hash,
                )
            except ValueError:
                computed = ""
            if computed != r.hash:
                report.problems.append(
                    f"record {r.seq}: content does not match its hash (the record was changed)"
                )
            if r.seq in wanted:
                hashes_at[r.seq] = r.hash
            prev_hash, expected_seq, after = r.hash, r.seq + 1, r.seq
    report.last_seq = after
    for c in checkpoints:
        report.checkpoints += 1
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
    return report
