"""The outbound relay worker: due queue rows → other operators, over mutual TLS, with proofs.

docs/architecture.md §2 "How a message flows", step 3. The loop claims due rows (a lease in the
database, so two workers never send the same row), groups them per destination domain and
then per message (one transaction carries every recipient of a message at that domain),
and delivers them over at most ``outbound_concurrency_per_destination`` connections per
domain, each connection carrying several messages.

Outcomes (one database transaction per row, the row update and its proof together):

* 2xx → ``sent`` + proof ``relayed`` (remote host, reply, TLS version and cipher, peer
  certificate SHA-256). When the next hop does not announce DSN and the recipient asked
  NOTIFY=SUCCESS, the sender gets a "relayed" DSN (RFC 3461 §5.2.3); when it does, NOTIFY is
  passed on and the final operator reports delivery (RFC 3461 §5.2.2), so no DSN here.
* 5xx, a destination outside the trust space, a null MX → ``bounced`` + proof ``bounced``
  + failure DSN.
* 4xx, connection or TLS failure (including a peer without STARTTLS) → ``deferred`` with
  the next attempt from ``smtp.retry_schedule`` (indexed by attempt, the last value
  repeating) + proof ``deferred``; once the row is older than ``delay_warning_hours``,
  one delay DSN. When the queue lifetime has ended, the row bounces instead (4.4.7).

No DSN is ever sent for a message with the null reverse path (RFC 3461 §6.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from config import Settings
from config.metrics import DELIVERY_LATENCY, OUTBOUND
from mail.dsn import Action, RecipientReport
from mail.dsn_sender import DsnSender
from mail.pipeline import Pipeline
from smtp.mx import Destination, MxResolver, ResolutionError
from smtp.outbound_rows import QueuedMessage, message_of, release_claims, renew_claims
from smtp.outbound_session import Envelope, OutboundSession, SessionFailure
from storage import proofs
from storage import queue as queue_rows
from storage.database import Database
from storage.queue import QueueItem
from storage.types import utcnow
from trustspace.crl import CrlStore
from trustspace.tls import client_context

log = logging.getLogger("mssante.outbound")

OutcomeKind = Literal["sent", "temporary", "permanent"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one row in one attempt."""

    kind: OutcomeKind
    reply: str
    status: str  # RFC 3463 enhanced status code
    remote_host: str | None = None
    session: OutboundSession | None = None


@dataclass
class _Job:
    """The rows of one message for one destination domain."""

    message_id: int
    items: list[QueueItem]


def retry_delay(schedule: tuple[str, ...], attempts: int) -> timedelta:
    """Back-off after ``attempts`` attempts: the schedule's entry, the last one repeating."""
    values = [float(v) for v in schedule] or [60.0]
    index = min(max(attempts, 1), len(values)) - 1
    return timedelta(seconds=values[index])


class OutboundWorker:
    """Delivers queued mail to other operators until stopped (a gateway Service)."""

    name = "outbound"

    def __init__(
        self,
        db: Database,
        settings: Settings,
        pipeline: Pipeline,
        *,
        trust: Callable[[str], bool] | None = None,
        resolver: MxResolver | None = None,
        worker_id: str | None = None,
        poll_interval: float = 0.5,
        claim_limit: int = 100,
        lease: timedelta | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._db = db
        self._settings = settings
        self._trust = trust
        self._resolver = resolver or MxResolver(settings.transport)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._poll = poll_interval
        self._claim_limit = claim_limit
        self._lease = lease or timedelta(seconds=settings.smtp.outbound_lease)
        self._renew_task: asyncio.Task[None] | None = None
        self._timeout = timeout
        self._dsn = DsnSender(db, settings, pipeline)
        self._tls: ssl.SSLContext | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self.revocation: CrlStore | None = None
        """CRLs the peer's server certificate is checked against (set by the gateway)."""

    def set_transport(self, transport: Mapping[str, str]) -> None:
        """New ``[transport]`` overrides from a reload (SIGHUP)."""
        self._resolver.set_transport(transport)

    # -- service life cycle -----------------------------------------------------------
    async def start(self) -> None:
        """Builds the client TLS context, then starts the claiming loop."""
        await self.prepare()
        async with self._db.begin() as conn:
            # Rows an earlier run of this node still held (it was killed): due again now,
            # not when their lease lapses.
            reclaimed = await release_claims(conn, self.worker_id)
        if reclaimed:
            log.info("outbound_claims_reclaimed", extra={"fields": {"rows": reclaimed}})
        self._loop_task = asyncio.create_task(self._run(), name="outbound-worker")
        self._renew_task = asyncio.create_task(self._renew(), name="outbound-lease")

    async def prepare(self) -> None:
        """Loads our certificate and the anchors (files: off the event loop)."""
        if self._tls is None:
            self._tls = await asyncio.to_thread(
                client_context, self._settings, with_client_cert=True
            )

    def listeners(self) -> list[object]:
        return []

    def wake(self) -> None:
        """New rows were queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self, grace: float) -> None:
        """Stops claiming, lets deliveries run up to ``grace`` seconds, releases the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        renew, self._renew_task = self._renew_task, None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=max(grace, 0.001))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if renew is not None:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
        async with self._db.begin() as conn:
            released = await release_claims(conn, self.worker_id)
        if released:
            log.info("outbound_claims_released", extra={"fields": {"rows": released}})

    async def _renew(self) -> None:
        """Extends the lease of the rows this node holds, every third of the lease, so a
        long delivery keeps its rows while a dead node's rows come back within one lease."""
        period = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            if not self._tasks:
                continue
            try:
                async with self._db.begin() as conn:
                    await renew_claims(conn, self.worker_id, self._lease)
            except Exception:  # noqa: BLE001 - try again next period; the lease has slack
                log.exception("outbound_lease_renewal_failed")

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await self._dispatch()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the worker
                log.exception("outbound_claim_failed")
                claimed = 0
            if claimed >= self._claim_limit:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    async def run_once(self) -> int:
        """Claims one batch and waits until it is delivered; returns how many rows."""
        await self.prepare()
        claimed, tasks = await self._claim_and_spawn()
        if tasks:
            await asyncio.gather(*tasks)
        return claimed

    async def _dispatch(self) -> int:
        claimed, _ = await self._claim_and_spawn()
        return claimed

    async def _claim_and_spawn(self) -> tuple[int, list[asyncio.Task[None]]]:
        # Polling must not take the write lock when nothing is due (SQLite has one writer).
        async with self._db.read() as conn:
            if not await queue_rows.any_due(conn):
                return 0, []
        async with self._db.begin() as conn:
            items = await queue_rows.claim_due(
                conn, worker=self.worker_id, limit=self._claim_limit, lease=self._lease
            )
        by_domain: dict[str, list[QueueItem]] = defaultdict(list)
        for item in items:
            by_domain[item.domain].append(item)
        tasks = []
        for domain, rows in by_domain.items():
            task = asyncio.create_task(self._deliver_domain(domain, rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            tasks.append(task)
        return len(items), tasks

    # -- delivery ---------------------------------------------------------------------
    async def _deliver_domain(self, domain: str, items: list[QueueItem]) -> None:
        try:
            jobs: dict[int, _Job] = {}
            for item in items:
                jobs.setdefault(item.message_id, _Job(item.message_id, [])).items.append(item)
            if self._trust is not None and not self._trust(domain):
                # MSSanté rule 1: never relay outside the trust space.
                text = f"550 5.7.1 {domain} is not in the MSSanté trust space"
                for job in jobs.values():
                    await self._settle(job, Outcome("permanent", text, "5.7.1"))
                return
            try:
                destinations = await self._resolver.resolve(domain)
            except ResolutionError as exc:
                code = "550" if exc.permanent else "451"
                if exc.enhanced == "5.1.10":
                    code = "556"  # RFC 7505 §4.1
                kind: OutcomeKind = "permanent" if exc.permanent else "temporary"
                for job in jobs.values():
                    await self._settle(job, Outcome(kind, f"{code} {exc.enhanced} {exc.text}",
                                                    exc.enhanced))
                return
            limit = self._limits.setdefault(
                domain, asyncio.Semaphore(self._settings.smtp.outbound_concurrency_per_destination)
            )
            width = self._settings.smtp.outbound_concurrency_per_destination
            chunks: list[list[_Job]] = [[] for _ in range(min(width, len(jobs)))]
            for index, job in enumerate(jobs.values()):
                chunks[index % len(chunks)].append(job)
            await asyncio.gather(*(self._deliver_chunk(limit, destinations, c) for c in chunks))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - rows stay claimed and come back after the lease
            log.exception("outbound_domain_failed", extra={"fields": {"domain": domain}})

    async def _deliver_chunk(
        self, limit: asyncio.Semaphore, destinations: list[Destination], jobs: list[_Job]
    ) -> None:
        async with limit:
            session: OutboundSession | None = None
            try:
                for position, job in enumerate(jobs):
                    if session is None:
                        try:
                            session = await self._connect(destinations)
                        except SessionFailure as exc:
                            outcome = Outcome(
                                "permanent" if exc.permanent else "temporary",
                                f"{'550' if exc.permanent else '451'} {exc.enhanced} {exc.text}",
                                exc.enhanced,
                            )
                            for rest in jobs[position:]:
                                await self._settle(rest, outcome)
                            return
                    broken = await self._deliver_job(session, job)
                    if broken:
                        await session.close()
                        session = None
            finally:
                if session is not None:
                    await session.close()

    async def _connect(self, destinations: list[Destination]) -> OutboundSession:
        assert self._tls is not None
        failures: list[SessionFailure] = []
        for destination in destinations:
            try:
                session = await OutboundSession.open(
                    destination, self._tls, local_hostname=self._settings.hostname,
                    command_timeout=self._timeout,
                )
                cert = session.tls.certificate
                verdict = self.revocation.check(cert) if self.revocation and cert else None
                if verdict is not None and not verdict.ok:
                    await session.close()
                    raise SessionFailure(  # RFC 3463 X.7.5: cryptographic failure; retried
                        f"TLS with {destination.host}:{destination.port} refused: server "
                        f"certificate: {verdict.reason}", "4.7.5")
                return session
            except SessionFailure as exc:
                log.info("outbound_connect_failed", extra={"fields": {
                    "host": destination.host, "port": destination.port, "reason": exc.text}})
                failures.append(exc)
        if not failures:
            raise SessionFailure("no destination host to try", "4.4.4")
        raise failures[-1]

    async def _deliver_job(self, session: OutboundSession, job: _Job) -> bool:
        """Sends one message to its recipients at this destination; True if the link broke."""
        try:
            async with self._db.read() as conn:
                message = await message_of(conn, job.message_id)
                raw = (await self._db.blobs.read(conn, message.blob_id)
                       if message.blob_id is not None else None)
        except Exception as exc:  # noqa: BLE001 - reported on the rows, not fatal
            await self._settle(job, Outcome("temporary", f"451 4.3.0 cannot read the stored "
                                            f"message: {type(exc).__name__}", "4.3.0"))
            return False
        if raw is None:
            await self._settle(job, Outcome("permanent", "554 5.3.0 the message body was "
                                            "purged before it could be delivered", "5.3.0"))
            return False
        host = session.destination.host
        peer_limit = session.size_limit
        if peer_limit is not None and len(raw) > peer_limit:
            text = (f"552 5.3.4 message of {len(raw)} octets is larger than {host} accepts "
                    f"({peer_limit})")
            await self._settle(job, Outcome("permanent", text, "5.3.4", host), message, raw)
            return False
        first = job.items[0]
        envelope = Envelope(
            sender=first.sender,
            recipients=[(i.recipient, i.notify, i.orcpt) for i in job.items],
            data=raw,
            ret=first.ret,
            envid=first.envid,
        )
        try:
            result = await session.send(envelope)
        except SessionFailure as exc:
            await self._settle(job, Outcome("temporary", f"451 {exc.enhanced} {exc.text}",
                                            exc.enhanced, host), message, raw)
            return True
        outcomes: dict[int, Outcome] = {}
        for item in job.items:
            rcpt = result.rcpt.get(item.recipient)
            final = rcpt if rcpt is None or not rcpt.ok else result.data
            if final is None:
                final = rcpt
            assert final is not None
            kind: OutcomeKind = "sent" if final.ok else (
                "permanent" if final.permanent else "temporary")
            outcomes[item.id] = Outcome(kind, final.text, final.enhanced, host, session)
        await self._settle(job, outcomes, message, raw)
        return False

    # -- outcomes ---------------------------------------------------------------------
    async def _settle(
        self,
        job: _Job,
        outcome: Outcome | dict[int, Outcome],
        message: QueuedMessage | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Records each row's outcome with its proof, then the DSNs the sender asked for."""
        if message is None:
            async with self._db.read() as conn:
                message = await message_of(conn, job.message_id)
        now = utcnow()
        dsn_items: dict[str, list[tuple[QueueItem, RecipientReport]]] = defaultdict(list)
        peer_dsn = False
        for item in job.items:
            result = outcome[item.id] if isinstance(outcome, dict) else outcome
            report = await self._record(item, result, message, now)
            if report is not None:
                dsn_items[report.action].append((item, report))
            if result.session is not None:
                peer_dsn = result.session.supports_dsn
        for action, pairs in dsn_items.items():
            if action == "relayed" and peer_dsn:
                continue  # RFC 3461 §5.2.2: the next hop reports, we passed NOTIFY on
            await self._send_dsn(job, message, raw, pairs)

    async def _record(
        self, item: QueueItem, outcome: Outcome, message: QueuedMessage, now: datetime
    ) -> RecipientReport | None:
        """Updates one row and appends its proof in one transaction; returns a DSN report."""
        ref, sha = message.message_id_header, message.content_sha256
        base = {"recipient": item.recipient, "queue_id": item.id, "attempt": item.attempts}
        if outcome.remote_host:
            base["remote_host"] = outcome.remote_host
        report: RecipientReport | None = None

        def report_for(action: Action, status: str, diagnostic: str,
                       until: datetime | None = None) -> RecipientReport:
            return RecipientReport(
                final_recipient=item.recipient, action=action, status=status,
                original_recipient=item.orcpt, remote_mta=outcome.remote_host,
                diagnostic=diagnostic, last_attempt=now, will_retry_until=until,
            )

        async with self._db.begin() as conn:
            if outcome.kind == "sent":
                details = dict(base, reply=outcome.reply)
                if outcome.session is not None:
                    tls = outcome.session.tls
                    details.update(
                        remote_port=outcome.session.destination.port,
                        tls_version=tls.version, tls_cipher=tls.cipher,
                        peer_certificate_sha256=tls.fingerprint_sha256,
                        peer_subject=tls.subject,
                    )
                await queue_rows.mark_sent(conn, item.id, outcome.reply)
                OUTBOUND.labels("relayed").inc()
                DELIVERY_LATENCY.observe(max(0.0, (now - item.created_at).total_seconds()))
                await proofs.append(conn, kind="relayed", message_ref=ref, content_sha256=sha,
                                    actor=item.recipient, details=details)
                report = report_for("relayed", outcome.status, outcome.reply)
                log.info("outbound_relayed", extra={"fields": {
                    "queue_id": item.id, "message": item.message_id,
                    "host": outcome.remote_host}})
            elif outcome.kind == "permanent" or now >= item.expires_at:
                reply = outcome.reply
                status = outcome.status
                if outcome.kind != "permanent":
                    hours = self._settings.smtp.queue_lifetime_hours
                    status = "4.4.7"  # RFC 3463 X.4.7: delivery time expired
                    reply = (f"queue lifetime of {hours:g} hours exceeded; last error: "
                             f"{outcome.reply}")
                await queue_rows.mark_bounced(conn, item.id, reply)
                OUTBOUND.labels("bounced").inc()
                await proofs.append(conn, kind="bounced", message_ref=ref, content_sha256=sha,
                                    actor=item.recipient, details=dict(base, reply=reply,
                                                                       status=status))
                report = report_for("failed", _failed_status(status), reply)
                log.info("outbound_bounced", extra={"fields": {
                    "queue_id": item.id, "message": item.message_id, "status": status}})
            else:
                delay = retry_delay(self._settings.smtp.retry_schedule, item.attempts)
                next_at = min(now + delay, item.expires_at)
                await queue_rows.mark_deferred(conn, item.id, outcome.reply, next_at)
                OUTBOUND.labels("deferred").inc()
                await proofs.append(conn, kind="deferred", message_ref=ref, content_sha256=sha,
                                    actor=item.recipient,
                                    details=dict(base, reply=outcome.reply,
                                                 next_attempt_at=next_at.isoformat()))
                warn_after = timedelta(hours=self._settings.smtp.delay_warning_hours)
                if not item.delay_notified and now - item.created_at >= warn_after:
                    await queue_rows.mark_delay_notified(conn, item.id)
                    report = report_for("delayed", outcome.status, outcome.reply,
                                        item.expires_at)
                log.info("outbound_deferred", extra={"fields": {
                    "queue_id": item.id, "message": item.message_id, "status": outcome.status,
                    "next_attempt_at": next_at.isoformat()}})
        return report

    async def _send_dsn(
        self,
        job: _Job,
        message: QueuedMessage,
        raw: bytes | None,
        pairs: list[tuple[QueueItem, RecipientReport]],
    ) -> None:
        first = pairs[0][0]
        try:
            if raw is None and message.blob_id is not None:
                async with self._db.read() as conn:
                    raw = await self._db.blobs.read(conn, message.blob_id)
            await self._dsn.send(
                sender=first.sender,
                reports=[r for _, r in pairs],
                notify=[i.notify for i, _ in pairs],
                original=raw or b"",
                message_ref=message.message_id_header,
                content_sha256=message.content_sha256,
                ret=first.ret,
                envid=first.envid,
                arrival=message.received_at,
            )
        except Exception:  # noqa: BLE001 - the outcome is recorded; the DSN is best effort
            log.exception("dsn_failed", extra={"fields": {"message": job.message_id}})


def _failed_status(status: str) -> str:
    """A failed DSN carries a 5.x.x status (RFC 3464 §2.3.4): 4.4.7 becomes 5.4.7."""
    return "5" + status[1:] if status.startswith("4.") else status
