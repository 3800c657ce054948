"""The accept path: an accepted message becomes durable in one transaction, then 250.

docs/architecture.md §2 "How a message flows", step 2. Network front-ends never write the
store: they hand a :class:`Delivery` to :meth:`Pipeline.submit`, which alone writes the
encrypted body (once, shared by every local recipient), the message row with its precomputed
IMAP view, the mailbox rows of local recipients, the outbound queue rows of remote ones and
the proof records — all committed together. ``submit`` returns only after that commit, so
the SMTP server answers 250 only for what would survive a crash.

Group commit: a single writer task takes every delivery waiting at that moment and commits
them in one transaction (one fsync), each inside its own SAVEPOINT so that one failing
message does not take the others down. Under load, throughput grows with concurrency
instead of being capped at one fsync per message (as Postfix's and PostgreSQL's group
commit do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select

from config import Settings
from mail.changes import ChangeHub
from mail.headers import codecda
from mail.mdn import MDN_SENT_FLAG, asks_for_receipt, record_client_mdn
from mail.reports import ReceivedReport, parse_report, report_kind
from mail.searchtext import indexed_text
from mail.views import MessageView, build_view
from storage import messages as message_rows
from storage import metadata, monthly, proofs
from storage import queue as queue_rows
from storage.blobs import BlobRef
from storage.database import Database
from storage.engine import insert_or_ignore
from storage.schema import accounts as account_table
from storage.schema import messages as message_table
from storage.schema import meta as meta_table
from storage.schema import proofs as proof_rows
from storage.schema import queue as queue_table
from storage.types import utcnow

log = logging.getLogger("mssante.pipeline")

MAX_BATCH = 128
MAX_BATCH_BYTES = 64 * 1024 * 1024
# How long the writer may wait for deliveries still being parsed to join a batch (the
# PostgreSQL commit_delay idea): a few milliseconds buy one fsync for many messages.
LINGER = 0.004
# Messages up to this size have their search text decoded on the event loop (a thread
# hop costs more than decoding them).
_INLINE_TEXT = 64 * 1024


def sealed_metadata(ref: BlobRef, view: MessageView,
                    text: str | None = None) -> dict[str, bytes]:
    """The message row's columns that say what its headers say, sealed under the body's
    data key (:mod:`storage.metadata`): the IMAP views (with attachment file names) and the
    decoded search fields, ending with the decoded body ``text`` for SEARCH BODY/TEXT
    (:mod:`mail.searchtext`; None when not indexed). Nothing derived from the message is
    stored in clear but the sent instant (``messages.sent_at``, :func:`sent_at`)."""
    key = ref.metadata
    assert key is not None, "BlobStore.put_many gives the key of every body it stores"
    s = view.search
    return {
        "sealed_view": key.seal(metadata.VIEW, view.to_json().encode()),
        "sealed_fields": key.seal(metadata.FIELDS, metadata.pack_fields(
            (s.subject, s.from_, s.to, s.cc, s.sent_date, text))),
    }


def sent_at(epoch: int | None) -> datetime | None:
    """``messages.sent_at`` of a message whose Date field names ``epoch`` (None: none),
    brought within the years 1–9999 a timestamp can hold: "31 Dec 9999 23:59:59 -1200" is
    a valid Date field past them, and must not fail the batch storing it."""
    if epoch is None:
        return None
    return _EPOCH + timedelta(seconds=min(max(epoch, _FIRST), _LAST))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST = int((datetime(1, 1, 2, tzinfo=UTC) - _EPOCH).total_seconds())
_LAST = int((datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH).total_seconds())


@dataclass(frozen=True)
class LocalTarget:
    """A local mailbox receiving the message: the folder it is filed in, with flags."""

    address: str
    account_id: int
    folder_id: int
    flags: tuple[str, ...] = ()
    # RFC 3461 parameters of this recipient: NOTIFY=SUCCESS asks for a "delivered" DSN.
    notify: str | None = None
    orcpt: str | None = None


@dataclass(frozen=True)
class RemoteTarget:
    """A recipient at another operator, delivered by the outbound worker (RFC 3461 params)."""

    address: str
    notify: str | None = None
    orcpt: str | None = None


@dataclass(frozen=True)
class ProofSpec:
    """A proof to record with the message (kind as in :data:`storage.proofs.PROOF_KINDS`)."""

    kind: str
    actor: str | None
    details: dict[str, Any] = field(default_factory=dict)
    # The message the proof is about when it is not the one stored: an MDN's ``mdn-sent``
    # proof is filed under the message that was read, so ``proofs show`` lists it there.
    message_ref: str | None = None
    content_sha256: str | None = None


@dataclass
class Delivery:
    """Everything the accept path needs; ``raw`` is the message as it will be stored."""

    raw: bytes
    sender: str
    local: list[LocalTarget] = field(default_factory=list)
    remote: list[RemoteTarget] = field(default_factory=list)
    proofs: list[ProofSpec] = field(default_factory=list)
    ret: str | None = None
    envid: str | None = None
    view: MessageView | None = None
    internal_date: Any = None
    # False for IMAP APPEND: a user filing a message is not a delivery to prove.
    record_delivery: bool = True
    # A DSN or MDN filed in a local mailbox or submitted by a user (set by submit()):
    # proved as received or sent under the message it answers.
    report: ReceivedReport | None = None
    # The decoded text SEARCH BODY/TEXT match (set by submit(); see mail.searchtext).
    search_text: str | None = None
    # The message asks for a read receipt (set by submit()): under an ``always`` policy
    # the recipient's copy is filed with $MDNSent.
    asks_receipt: bool = False
    # Once-only keys (``meta`` rows) inserted in the same transaction: when one is already
    # there the delivery is refused with AlreadyDelivered, so a notice repeated after a
    # crash or by a concurrent run is never filed twice (the expiry digest uses them).
    markers: tuple[str, ...] = ()
    # The X-MSS-CODECDA code of a message entering the gateway (set by submit()), counted
    # per month for the indicators (storage.monthly).
    codecda: str | None = None


class AlreadyDelivered(Exception):
    """A delivery whose once-only markers (:attr:`Delivery.markers`) were already recorded."""


@dataclass(frozen=True)
class Stored:
    """What was committed: ids for replies, logs and IMAP APPENDUID."""

    message_id: int
    content_sha256: str
    message_id_header: str | None
    uids: dict[int, int]  # folder id → UID
    queue_ids: list[int]


@dataclass
class _Pending:
    """One unit of work: its deliveries are committed together or fail together."""

    deliveries: list[Delivery]
    future: asyncio.Future[list[Stored]]

    @property
    def size(self) -> int:
        return sum(len(d.raw) for d in self.deliveries)


class Pipeline:
    """The single writer of accepted messages (one per process)."""

    def __init__(self, db: Database, settings: Settings, changes: ChangeHub) -> None:
        self._db = db
        self._settings = settings
        self._changes = changes
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._on_queued: list[Callable[[], None]] = []
        self._after: list[Callable[[Delivery, Stored], None]] = []
        self._preparing = 0  # submissions parsing their message, about to join the queue

    def on_queued(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` after each commit that queued outbound rows (wakes the worker)."""
        self._on_queued.append(callback)

    def after_commit(self, callback: Callable[[Delivery, Stored], None]) -> None:
        """Calls ``callback(delivery, stored)`` for each delivery once committed (the
        absence responder, :mod:`mail.vacation`); it must not block."""
        self._after.append(callback)
    def queued_elsewhere(self) -> None:
        """Another process of this gateway queued outbound rows: wake whoever listens here."""
        for callback in self._on_queued:
            callback()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="pipeline-writer")

    async def stop(self) -> None:
        """Commits what is already waiting, then stops the writer."""
        self._closing = True
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, delivery: Delivery) -> Stored:
        """Stores ``delivery`` durably; returns once committed (raises if it could not be)."""
        return (await self.submit_many([delivery]))[0]

    async def submit_many(self, deliveries: list[Delivery]) -> list[Stored]:
        """Stores all ``deliveries`` in ONE transaction: all are committed or none is.

        RFC 3502 §6 (MULTIAPPEND): "the server MUST NOT add any of the messages" when one
        fails; the unit is never split when a group-commit batch is retried one by one.
        """
        if self._closing or self._task is None:
            raise RuntimeError("the message pipeline is not running")
        if not deliveries:
            return []
        future: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        self._preparing += 1
        try:
            for delivery in deliveries:
                if delivery.view is None:
                    # Parsing a large message takes milliseconds of CPU: off the event loop.
                    delivery.view = await asyncio.to_thread(build_view, delivery.raw)
                if delivery.local and delivery.search_text is None:
                    delivery.search_text = await self._search_text(delivery.raw)
                if (delivery.record_delivery and delivery.report is None
                        and (delivery.local or _submitted(delivery) is not None)
                        and report_kind(delivery.raw) is not None):
                    delivery.report = await asyncio.to_thread(parse_report, delivery.raw)
                    if delivery.report is not None and delivery.local:
                        delivery.report = await self._by_envelope_id(delivery.report,
                                                                     delivery.local)
                if delivery.record_delivery and delivery.local:
                    delivery.asks_receipt = asks_for_receipt(delivery.raw)
                if delivery.record_delivery and any(p.kind in ("submitted", "received")
                                                    for p in delivery.proofs):
                    delivery.codecda = codecda(delivery.raw)
            self._queue.put_nowait(_Pending(list(deliveries), future))
        finally:
            self._preparing -= 1
        stored = await future
        for callback in self._after:
            for delivery, result in zip(deliveries, stored, strict=True):
                callback(delivery, result)
        return stored

    async def _search_text(self, raw: bytes) -> str | None:
        """The decoded text to index (:func:`mail.searchtext.indexed_text`); a large
        message is decoded off the event loop, as its view is parsed."""
        limit = self._settings.storage.search_text_max
        if len(raw) <= _INLINE_TEXT:
            return indexed_text(raw, limit)
        return await asyncio.to_thread(indexed_text, raw, limit)

    async def _by_envelope_id(self, report: ReceivedReport,
                              local: list[LocalTarget]) -> ReceivedReport:
        """A DSN that returned no header section names its message only by the sender's
        ENVID (RFC 3464 §2.2.1): the message one of the receiving mailboxes sent with it,
        from the outbound queue rows. Looked up here, before the write transaction, so a
        rare unindexed search never holds up the group commit."""
        if report.kind != "dsn" or report.original_message_id or not report.envelope_id:
            return report
        async with self._db.read() as conn:
            found = (await conn.execute(
                select(message_table.c.message_id_header)
                .select_from(queue_table.join(
                    message_table, message_table.c.id == queue_table.c.message_id))
                .where(queue_table.c.envid == report.envelope_id,
                       func.lower(queue_table.c.sender).in_(
                           [t.address.lower() for t in local]))
                .order_by(queue_table.c.id.desc()).limit(1))).scalar()
        if not found:
            return report
        return replace(report, original_message_id=str(found), matched_by="envid")

    async def _writer(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            size = first.size
            deadline = asyncio.get_running_loop().time() + LINGER
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                if self._queue.empty():
                    if not self._preparing or asyncio.get_running_loop().time() >= deadline:
                        break
                    await asyncio.sleep(0.0005)
                    continue
                item = self._queue.get_nowait()
                batch.append(item)
                size += item.size
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        """Commits the whole batch at once; if that fails, each delivery on its own.

        The fast path has no per-message savepoint: rows of all messages are written with
        one statement per table where possible. Only when the batch fails is it split, so
        that one bad message gets its error and the others are still stored.
        """
        try:
            async with self._db.begin() as conn:
                stored = await self._write_batch(
                    conn, [d for p in batch for d in p.deliveries])
        except Exception as exc:  # noqa: BLE001 - retried one by one below
            if len(batch) == 1:
                self._fail(batch[0], exc)
                return
            for pending in batch:
                await self._commit([pending])
            return
        results = iter(stored)
        for pending in batch:
            mine = [next(results) for _ in pending.deliveries]
            if not pending.future.done():
                pending.future.set_result(mine)
        self._changes.changed({f for result in stored for f in result.uids})
        if any(result.queue_ids for result in stored):
            for callback in self._on_queued:
                callback()

    @staticmethod
    def _fail(pending: _Pending, exc: Exception) -> None:
        if isinstance(exc, AlreadyDelivered):  # an expected outcome, not a storage fault
            if not pending.future.done():
                pending.future.set_exception(exc)
            return
        log.error(
            "message_store_failed",
            extra={"fields": {"error": type(exc).__name__, "detail": str(exc)}},
        )
        if not pending.future.done():
            pending.future.set_exception(exc)

    async def _write_batch(self, conn: Any, batch: list[Delivery]) -> list[Stored]:
        now = utcnow()
        for d in batch:
            if d.markers:
                await _claim_markers(conn, d.markers, now.isoformat())
        retention = timedelta(days=self._settings.storage.body_retention_days)
        lifetime = timedelta(hours=self._settings.smtp.queue_lifetime_hours)
        # 1. Bodies (deduplicated by content) and message rows, one statement each.
        refs = await self._db.blobs.put_many(conn, [d.raw for d in batch])
        shas = [ref.content_sha256 for ref in refs]
        views = cast(list[MessageView], [d.view for d in batch])
        assert all(v is not None for v in views), "submit() builds every view"
        ids = await message_rows.insert_messages(conn, [
            {
                "blob_id": ref.id, "content_sha256": ref.content_sha256, "size": len(d.raw),
                "header_size": v.search.header_size, "internal_date": d.internal_date or now,
                "received_at": now, "expires_at": now + retention,
                "message_id_header": v.search.message_id,
                "sent_at": sent_at(v.search.date),
                **sealed_metadata(ref, v, d.search_text),
            }
            for d, v, ref in zip(batch, views, refs, strict=True)
        ])
        # 2. Mailbox rows: one UID range and one MODSEQ per folder for the whole batch.
        answered = await _receipt_by_gateway(conn, batch)
        placements = [
            (i, t, message_rows.Placement(
                t.folder_id, ids[i],
                (*t.flags, MDN_SENT_FLAG) if (i, t.account_id) in answered else t.flags,
                d.internal_date or now))
            for i, d in enumerate(batch)
            for t in d.local
        ]
        placed = await message_rows.file_messages(conn, [p for _, _, p in placements])
        uids: list[dict[int, int]] = [{} for _ in batch]
        for (i, target, _), uid in zip(placements, placed, strict=True):
            uids[i][target.folder_id] = uid
        # 3. Outbound queue rows.
        queue_ids: list[list[int]] = [[] for _ in batch]
        for i, d in enumerate(batch):
            for remote in d.remote:
                queue_ids[i].append(
                    await queue_rows.enqueue(
                        conn, message_id=ids[i], sender=d.sender, recipient=remote.address,
                        expires_at=now + lifetime, orcpt=remote.orcpt, notify=remote.notify,
                        ret=d.ret, envid=d.envid,
                    )
                )
        # 4. Proofs, chained in memory and inserted together.
        new: list[proofs.NewProof] = []
        for i, d in enumerate(batch):
            ref = views[i].search.message_id
            new += [proofs.NewProof(p.kind, p.message_ref or ref,
                                    p.content_sha256 if p.message_ref else shas[i],
                                    p.actor, p.details) for p in d.proofs]
            if d.record_delivery:
                new += [
                    proofs.NewProof("delivered", ref, shas[i], t.address,
                                    {"mailbox": t.address, "uid": uids[i][t.folder_id]})
                    for t in d.local
                ]
                if d.report is not None and d.local:
                    new.append(await _report_proof(conn, d, ref, shas[i]))
                submitted = _submitted(d)
                if d.report is not None and d.report.kind == "mdn" and submitted is not None:
                    new.append(await _client_mdn_proof(conn, d, submitted, ref, shas[i]))
        await proofs.append_many(conn, new)
        codes = Counter(d.codecda for d in batch if d.codecda)
        if codes:
            await monthly.add(conn, monthly.month_of(now), "codecda", codes)
        return [
            Stored(
                message_id=ids[i], content_sha256=shas[i],
                message_id_header=views[i].search.message_id,
                uids=uids[i], queue_ids=queue_ids[i],
            )
            for i in range(len(batch))
        ]


async def _claim_markers(conn: Any, keys: tuple[str, ...], value: str) -> None:
    """Inserts every once-only key, or raises AlreadyDelivered (the transaction then rolls
    back, and a batch is retried one delivery at a time)."""
    stmt = (insert_or_ignore(conn, meta_table, ["key"])
            .values([{"key": k, "value": value} for k in sorted(set(keys))])
            .returning(meta_table.c.key))
    won = set((await conn.execute(stmt)).scalars())
    if len(won) != len(set(keys)):
        raise AlreadyDelivered(f"{len(set(keys)) - len(won)} marker(s) already recorded")


async def _receipt_by_gateway(conn: Any, batch: list[Delivery]) -> set[tuple[int, int]]:
    """(delivery index, account id) of the copies filed with ``$MDNSent``: the message asks
    for a receipt and the recipient's read-notice policy is ``always``, so the gateway
    answers it at the first reading and the recipient's client must not ask (RFC 3503)."""
    wanted = {t.account_id for d in batch if d.asks_receipt for t in d.local}
    if not wanted:
        return set()
    always = set((await conn.execute(
        select(account_table.c.id).where(account_table.c.id.in_(sorted(wanted)),
                                         account_table.c.mdn_policy == "always"))).scalars())
    return {(i, t.account_id) for i, d in enumerate(batch) if d.asks_receipt
            for t in d.local if t.account_id in always}


def _submitted(d: Delivery) -> ProofSpec | None:
    """The ``submitted`` proof of a message a user sent through submission, if it is one."""
    return next((p for p in d.proofs if p.kind == "submitted"), None)


async def _client_mdn_proof(conn: Any, d: Delivery, submitted: ProofSpec, ref: str | None,
                            sha: str) -> proofs.NewProof:
    """The ``mdn-sent`` proof of a read receipt a user's own client sent (Thunderbird asks
    the user, then submits it): filed under the message it answers when that message was
    delivered here to the user (or to a mailbox it wrote for), like the gateway's own."""
    report = d.report
    assert report is not None
    writers = [str(submitted.actor or ""),
               *(str(a) for a in submitted.details.get("on_behalf_of") or [])]
    original = report.original_message_id
    content = await _delivered_to(conn, original, writers) if original else None
    first = report.recipients[0] if report.recipients else {}
    details: dict[str, Any] = {
        "original_message_id": original, "to": [t.address for t in d.local]
        + [t.address for t in d.remote], "disposition": first.get("disposition"),
        "reader": submitted.actor, "sent_by": "client", "mdn_message_id": ref,
    }
    if content is not None and original:
        # The gateway sends no receipt of its own for a message the user's client answered.
        owners = (await conn.execute(select(account_table.c.id).where(
            account_table.c.address.in_(sorted({w.lower() for w in writers if w}))))).scalars()
        await record_client_mdn(conn, list(owners), original)
    return proofs.NewProof("mdn-sent", original if content is not None else ref,
                           content or (None if content is not None else sha),
                           submitted.actor, details)


async def _delivered_to(conn: Any, original: str, mailboxes: list[str]) -> str | None:
    """The content hash of ``original`` when it was delivered here to one of
    ``mailboxes``; None when it was not."""
    wanted = {m.lower() for m in mailboxes if m}
    rows = await conn.execute(
        select(proof_rows.c.content_sha256, proof_rows.c.actor)
        .where(proof_rows.c.message_ref == original, proof_rows.c.kind == "delivered"))
    for content, actor in rows:
        if str(actor or "").lower() in wanted:
            return str(content or "")
    return None


async def _report_proof(conn: Any, d: Delivery, ref: str | None, sha: str) -> proofs.NewProof:
    """The ``dsn-received`` / ``mdn-received`` proof of a report filed in local mailboxes.

    It is filed under the original message only when that message was submitted here by
    (or for) one of the mailboxes receiving the report — the sender a report answers — so
    that nobody can add events to the story of a message that is not theirs by mailing a
    made-up report to a user. Otherwise it is filed under the report's own Message-ID with
    the original named in its details. How the report arrived (received from which
    operator, or submitted by which user) is recorded too: the proof says that a report
    came, and through whom, not that what it reports is true.
    """
    report = d.report
    assert report is not None
    mailboxes = [t.address for t in d.local]
    original = report.original_message_id
    content = await _sent_from(conn, original, mailboxes) if original else None
    linked = content is not None
    details = dict(report.details(), mailboxes=mailboxes, report_sha256=sha,
                   envelope_sender=d.sender,
                   arrived=[{"kind": p.kind, "actor": p.actor} for p in d.proofs])
    if not linked:
        details["original_message_id"] = original
    return proofs.NewProof(report.proof_kind, original if linked else ref, content or None,
                           report.actor, details)


async def _sent_from(conn: Any, original: str, mailboxes: list[str]) -> str | None:
    """The content hash of message ``original`` ("" if unknown) when one of ``mailboxes``
    submitted it here, as author or delegate; None when none of them did."""
    wanted = {m.lower() for m in mailboxes}
    rows = await conn.execute(
        select(proof_rows.c.content_sha256, proof_rows.c.details)
        .where(proof_rows.c.message_ref == original, proof_rows.c.kind == "submitted"))
    for content, text in rows:
        facts = json.loads(text) if isinstance(text, str) else dict(text or {})
        senders = {str(facts.get("mail_from", "")).lower(), str(facts.get("login", "")).lower(),
                   *(str(a).lower() for a in facts.get("on_behalf_of") or [])}
        if senders & wanted:
            return str(content or "")
    return None
