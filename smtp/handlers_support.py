"""What the relay and submission policies share: mailbox look-ups, TLS facts, the accept path.

Kept apart from :mod:`smtp.handlers` so that each policy reads as the list of its decisions,
while the mechanics (where a local recipient's INBOX is, what the TLS session negotiated,
how an accepted message is handed to the pipeline and what is answered) exist once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from mail.headers import prepend
from mail.pipeline import Delivery, LocalTarget, ProofSpec, RemoteTarget
from mail.submission import build_checked_view, send_delivered_dsn
from smtp.dsn_params import RcptParams
from smtp.policy import GatewayEnvelope
from trustspace.policy import Address
from trustspace.refusal import Refusal

if TYPE_CHECKING:
    from smtp.deps import SmtpGateway as Gateway
    from smtp.session import GatewaySMTP

log = logging.getLogger("mssante.smtp")

RDNS_TIMEOUT = 1.0
RDNS_TTL = 300.0


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
    await send_delivered_dsn(gateway.db, gateway.settings, pipeline, delivery, stored)
    return f"Ok: queued as {smtp_id}"
