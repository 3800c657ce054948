"""The accept path: an accepted message becomes durable in one transaction, then 250.

DESIGN.md §2 "How a message flows", step 2. Network front-ends never write the store: they
hand a :class:`Delivery` to :meth:`Pipeline.submit`, which alone writes the encrypted body
(once, shared by every local recipient), the message row with its precomputed IMAP view,
the mailbox rows of local recipients, the outbound queue rows of remote ones and the proof
records — all committed together. ``submit`` returns only after that commit, so the SMTP
server answers 250 only for what would survive a crash.

Group commit: a single writer task takes every delivery waiting at that moment and commits
them in one transaction (one fsync), each inside its own SAVEPOINT so that one failing
message does not take the others down. Under load, throughput grows with concurrency
instead of being capped at one fsync per message (as Postfix's and PostgreSQL's group
commit do).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from config import Settings
from mail.changes import ChangeHub
from mail.views import MessageView, build_view
from storage import messages as message_rows
from storage import proofs
from storage import queue as queue_rows
from storage.database import Database
from storage.types import utcnow

log = logging.getLogger("mssante.pipeline")

MAX_BATCH = 128
MAX_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LocalTarget:
    """A local mailbox receiving the message: the folder it is filed in, with flags."""

    address: str
    account_id: int
    folder_id: int
    flags: tuple[str, ...] = ()


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
    delivery: Delivery
    future: asyncio.Future[Stored]


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

    def on_queued(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` after each commit that queued outbound rows (wakes the worker)."""
        self._on_queued.append(callback)

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
        if self._closing or self._task is None:
            raise RuntimeError("the message pipeline is not running")
        if delivery.view is None:
            # Parsing a large message takes milliseconds of CPU: keep it off the event loop.
            delivery.view = await asyncio.to_thread(build_view, delivery.raw)
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(delivery, future))
        return await future

    async def _writer(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            size = len(first.delivery.raw)
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.delivery.raw)
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        results: list[tuple[_Pending, Stored | BaseException]] = []
        folders: set[int] = set()
        try:
            async with self._db.begin() as conn:
                for pending in batch:
                    try:
                        async with conn.begin_nested():
                            stored = await self._write_one(conn, pending.delivery)
                        results.append((pending, stored))
                    except Exception as exc:  # noqa: BLE001 - reported to that sender only
                        log.error(
                            "message_store_failed",
                            extra={"fields": {"error": type(exc).__name__, "detail": str(exc)}},
                        )
                        results.append((pending, exc))
        except Exception as exc:  # noqa: BLE001 - the commit itself failed: nothing stored
            log.error("message_commit_failed", extra={"fields": {"error": type(exc).__name__,
                                                                  "batch": len(batch)}})
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        queued = False
        for pending, outcome in results:
            if isinstance(outcome, Stored):
                folders.update(outcome.uids)
                queued = queued or bool(outcome.queue_ids)
            if pending.future.done():
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
        self._changes.changed(folders)
        if queued:
            for callback in self._on_queued:
                callback()

    async def _write_one(self, conn: Any, d: Delivery) -> Stored:
        view = d.view
        assert view is not None
        now = utcnow()
        blob = await self._db.blobs.put(conn, d.raw)
        sha = hashlib.sha256(d.raw).hexdigest()
        search = view.search
        message_id = await message_rows.insert_message(
            conn,
            blob_id=blob.id,
            content_sha256=sha,
            size=len(d.raw),
            header_size=search.header_size,
            internal_date=d.internal_date or now,
            received_at=now,
            expires_at=now + timedelta(days=self._settings.storage.body_retention_days),
            message_id_header=search.message_id,
            view=view.to_json(),
            subject=search.subject,
            from_addr=search.from_,
            to_addr=search.to,
            cc_addr=search.cc,
            date_header=search.sent_date,
        )
        uids: dict[int, int] = {}
        for target in d.local:
            [(uid, _modseq)] = await message_rows.add_to_folder(
                conn, target.folder_id, [message_id], flags=target.flags,
                internal_date=d.internal_date or now,
            )
            uids[target.folder_id] = uid
        queue_ids: list[int] = []
        lifetime = timedelta(hours=self._settings.smtp.queue_lifetime_hours)
        for remote in d.remote:
            queue_ids.append(
                await queue_rows.enqueue(
                    conn, message_id=message_id, sender=d.sender, recipient=remote.address,
                    expires_at=now + lifetime, orcpt=remote.orcpt, notify=remote.notify,
                    ret=d.ret, envid=d.envid,
                )
            )
        for spec in d.proofs:
            await proofs.append(
                conn, kind=spec.kind, message_ref=search.message_id, content_sha256=sha,
                actor=spec.actor, details=spec.details,
            )
        for target in d.local if d.record_delivery else ():
            await proofs.append(
                conn, kind="delivered", message_ref=search.message_id, content_sha256=sha,
                actor=target.address, details={"mailbox": target.address,
                                               "uid": uids[target.folder_id]},
            )
        return Stored(
            message_id=message_id, content_sha256=sha, message_id_header=search.message_id,
            uids=uids, queue_ids=queue_ids,
        )
