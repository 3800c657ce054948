"""What the relay and submission policies share: mailbox look-ups, TLS facts, the accept path.

Kept apart from :mod:`smtp.handlers` so that each policy reads as the list of its decisions,
while the mechanics (where a local recipient's INBOX is, what the TLS session negotiated,
how an accepted message is handed to the pipeline and what is answered) exist once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import socket
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import select

from mail.dsn import RecipientReport, wants_dsn
from mail.headers import prepend
from mail.limits import check_attachment_sizes
from mail.pipeline import Delivery, LocalTarget, ProofSpec, RemoteTarget, Stored
from mail.views import MessageView, build_view
from smtp.dsn_params import RcptParams
from smtp.outbound_dsn import DsnSender
from smtp.policy import GatewayEnvelope
from storage.schema import accounts, folders
from storage.types import utcnow
from trustspace.policy import Address, MailboxStatus, check_mailbox
from trustspace.refusal import Refusal

if TYPE_CHECKING:
    from smtp.deps import SmtpGateway as Gateway
    from smtp.session import GatewaySMTP

log = logging.getLogger("mssante.smtp")

INLINE_VIEW_LIMIT = 256 * 1024
"""Messages up to this size are parsed on the loop (cheaper than a thread hop); larger in a
worker thread so a 40 MB message never stalls other sessions."""
RDNS_TIMEOUT = 1.0
RDNS_TTL = 300.0

_STATUS = {
    "active": MailboxStatus.ACTIVE,
    "suspended": MailboxStatus.SUSPENDED,
    "pending": MailboxStatus.SUSPENDED,  # registered, not yet activated: not accepting mail
}


@dataclass
class Transaction:
    """Per-envelope decisions kept between MAIL, RCPT and the end of DATA."""

    may_send_as: frozenset[str] = frozenset()
    local: dict[int, LocalTarget] = field(default_factory=dict)  # account id → target
    remote: dict[str, RemoteTarget] = field(default_factory=dict)  # address key → target
    peer: dict[str, str] = field(default_factory=dict)  # relay: certificate facts
    # Submission: the sender's mailbox wants delivery notices without asking (mail.notices).
    notices_always: bool = False


class TransactionStore:
    """Transactions keyed by envelope; they vanish with the envelope (RSET, new MAIL)."""

    def __init__(self) -> None:
        self._by_envelope: WeakKeyDictionary[GatewayEnvelope, Transaction] = WeakKeyDictionary()

    def get(self, envelope: GatewayEnvelope) -> Transaction:
        found = self._by_envelope.get(envelope)
        if found is None:
            found = self._by_envelope[envelope] = Transaction()
        return found

    def reset(self, envelope: GatewayEnvelope) -> Transaction:
        """A fresh transaction for a new MAIL FROM on this envelope."""
        found = self._by_envelope[envelope] = Transaction()
        return found


def new_smtp_id() -> str:
    """A short unique id for the Received field, the 250 reply and the logs."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii")


@dataclass(frozen=True)
class TlsFacts:
    """The negotiated TLS parameters of a session (None fields: no TLS)."""

    version: str | None
    cipher: str | None
    bits: int | None

    def as_details(self) -> dict[str, Any]:
        return {"tls_version": self.version, "tls_cipher": self.cipher}


def tls_facts(session: GatewaySMTP) -> TlsFacts:
    obj = session.ssl_object
    if obj is None:
        return TlsFacts(None, None, None)
    cipher = obj.cipher()
    return TlsFacts(obj.version(), cipher[0] if cipher else None, cipher[2] if cipher else None)


class ReverseDns:
    """Reverse DNS names of clients for Received fields, looked up off the loop, cached.

    A slow resolver must never hold a 250 back: the look-up is bounded by RDNS_TIMEOUT
    and "unknown" is written instead (as Postfix does).
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def name(self, ip: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(ip)
        if hit is not None and hit[0] > now:
            return hit[1]
        loop = asyncio.get_running_loop()
        try:
            host, _port = await asyncio.wait_for(
                loop.getnameinfo((ip, 0), socket.NI_NAMEREQD), RDNS_TIMEOUT
            )
            name: str | None = host
        except (OSError, TimeoutError, ValueError):
            name = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[ip] = (now + RDNS_TTL, name)
        return name


MAILBOX_CACHE_TTL = 5.0


class Mailboxes:
    """Local recipients: account status and INBOX, read with one Core query.

    Answers are remembered for :data:`MAILBOX_CACHE_TTL` seconds (as Postfix's proxymap
    does) so that a busy session does not pay a database round trip per RCPT; a suspension
    takes effect within that time.
    """

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._cache: dict[tuple[str, bool], tuple[float, Any]] = {}

    async def _lookup(self, address: str, postmaster: bool) -> Any:
        key = (address, postmaster)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        db = self._gateway.db
        assert db is not None
        query = (
            select(accounts.c.id, accounts.c.status, folders.c.id.label("inbox"))
            .select_from(accounts)
            .outerjoin(
                folders, (folders.c.account_id == accounts.c.id) & (folders.c.name == "INBOX")
            )
        )
        async with db.read() as conn:
            row = (await conn.execute(query.where(accounts.c.address == address))).first()
            if row is None and postmaster:
                row = (
                    await conn.execute(
                        query.where(accounts.c.is_admin.is_(True), accounts.c.status == "active")
                        .order_by(accounts.c.id)
                        .limit(1)
                    )
                ).first()
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (now + MAILBOX_CACHE_TTL, row)
        return row

    async def resolve(self, rcpt: Address) -> LocalTarget:
        """The INBOX target of a local recipient, or the Refusal that says why not.

        RFC 5321 §4.5.1: postmaster must be accepted; without a postmaster mailbox it goes
        to the first active administrator.
        """
        address = rcpt.key()
        row = await self._lookup(address, rcpt.is_postmaster)
        status = MailboxStatus.UNKNOWN if row is None else _STATUS.get(row.status,
                                                                       MailboxStatus.UNKNOWN)
        if rcpt.is_postmaster and row is None:
            # No administrator at all: refusing is more honest than accepting into nowhere.
            raise Refusal.unknown_mailbox(str(rcpt))
        check_mailbox(rcpt, status)
        if row is None or row.inbox is None:
            raise Refusal.temporary_failure(f"mailbox {rcpt} has no INBOX; try again later")
        return LocalTarget(address=address, account_id=int(row.id), folder_id=int(row.inbox))


def _rfc3461(params: RcptParams) -> tuple[str | None, str | None]:
    notify = ",".join(sorted(params.notify)) if params.notify is not None else None
    orcpt = f"{params.orcpt[0]};{params.orcpt[1]}" if params.orcpt is not None else None
    return notify, orcpt


def local_target(target: LocalTarget, params: RcptParams) -> LocalTarget:
    """A local recipient with its RFC 3461 NOTIFY and ORCPT, for the "delivered" DSN."""
    notify, orcpt = _rfc3461(params)
    return replace(target, notify=notify, orcpt=orcpt)


def remote_target(rcpt: Address, params: RcptParams) -> RemoteTarget:
    """An outbound recipient with its RFC 3461 NOTIFY and ORCPT kept for the next hop."""
    notify, orcpt = _rfc3461(params)
    return RemoteTarget(address=str(rcpt), notify=notify, orcpt=orcpt)


async def build_checked_view(raw: bytes, max_attachment: int) -> MessageView:
    """Parses the message once (the pipeline reuses this view) and applies the size rules."""
    if len(raw) <= INLINE_VIEW_LIMIT:
        view = build_view(raw)
    else:
        view = await asyncio.to_thread(build_view, raw)
    check_attachment_sizes(view, max_attachment)
    return view


async def store(
    gateway: Gateway,
    session: GatewaySMTP,
    envelope: GatewayEnvelope,
    transaction: Transaction,
    data: bytes,
    fields: list[bytes],
    proof: ProofSpec,
    smtp_id: str,
) -> str:
    """Prepends ``fields``, checks sizes, commits through the pipeline; the 250 text.

    The pipeline answers only after the body, mailbox rows, queue rows and proofs are
    committed together (docs/architecture.md §2 step 2), so the 250 that follows is durable.
    """
    raw = prepend(data, fields)
    view = await build_checked_view(raw, gateway.settings.smtp.max_attachment_size)
    pipeline = gateway.pipeline
    if pipeline is None:
        raise Refusal(421, "4.3.2", "the gateway is shutting down; try again later")
    params = envelope.mail_params
    delivery = Delivery(
        raw=raw,
        sender=envelope.mail_from or "",
        local=list(transaction.local.values()),
        remote=list(transaction.remote.values()),
        proofs=[proof],
        ret=params.ret,
        envid=params.envid,
        view=view,
    )
    try:
        stored = await pipeline.submit(delivery)
    except Refusal:
        raise
    except Exception as exc:  # noqa: BLE001 - any storage failure is a temporary refusal
        log.error("event=smtp_store_failed kind=%s peer=%s id=%s error=%s",
                  session.kind, session.peer_ip, smtp_id, type(exc).__name__)
        raise Refusal.temporary_failure(
            "the message could not be stored safely; nothing was kept, please try again later"
        ) from None
    # One line ties the session, the message, its queue rows and (through the proofs'
    # smtp_id and session) everything recorded about it; outbound lines carry queue_id and
    # message, so a grep for either follows the message to the other operator.
    log.info("event=smtp_stored kind=%s peer=%s session=%s id=%s message=%d queue=%s size=%d "
             "local=%d remote=%d", session.kind, session.peer_ip, session.trace_id, smtp_id,
             stored.message_id, ",".join(map(str, stored.queue_ids)) or "-", len(data),
             len(delivery.local), len(delivery.remote))
    await send_delivered_dsn(gateway, delivery, stored)
    return f"Ok: queued as {smtp_id}"


async def send_delivered_dsn(gateway: Gateway, delivery: Delivery, stored: Stored) -> None:
    """RFC 3461 §4.1 / RFC 3464: the "delivered" DSN for local recipients that asked
    ``NOTIFY=SUCCESS``, sent once the message is committed to their mailboxes.

    Sent before the 250 (one more group commit): if the gateway stops in between, the
    client sees no 250 and sends again, rather than the notice being lost unseen. A
    failure to build or store it is logged and does not undo the delivery. The DSN goes
    through the pipeline like any message, with a ``dsn-sent`` proof under the original.
    """
    wanted = [t for t in delivery.local if wants_dsn(delivery.sender, t.notify, "delivered")]
    if not wanted or gateway.db is None or gateway.pipeline is None:
        return
    reports = [RecipientReport(final_recipient=t.address, action="delivered", status="2.0.0",
                               original_recipient=t.orcpt,
                               diagnostic="delivered to the recipient's mailbox")
               for t in wanted]
    try:
        await DsnSender(gateway.db, gateway.settings, gateway.pipeline).send(
            sender=delivery.sender, reports=reports, notify=[t.notify for t in wanted],
            original=delivery.raw, message_ref=stored.message_id_header,
            content_sha256=stored.content_sha256, ret=delivery.ret, envid=delivery.envid,
            arrival=utcnow(),
        )
    except Exception:  # noqa: BLE001 - the message is delivered; the notice is best effort
        log.exception("event=dsn_delivered_failed message=%d", stored.message_id)
