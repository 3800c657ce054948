"""Submission below the front-ends: what SMTP submission and the webmail share.

A user's message leaves the same way whichever door it came in by: each recipient is
checked against the trust space (and local ones against their mailboxes) with the same
functions, the message gets the same Received/Message-ID/Date/Sender fields, the same
attachment size rule, the same ``submitted`` proof, one :meth:`mail.pipeline.Pipeline.submit`
and the same "delivered" DSN for local recipients that asked ``NOTIFY=SUCCESS``. SMTP
submission (:mod:`smtp.handlers`) calls the pieces step by step as its dialogue goes;
the webmail calls :class:`Submission` once with the whole envelope.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import select

from accounts.sharing import APP_MODE, SEND_ONLY
from config import Settings
from mail.dsn import RecipientReport, wants_dsn
from mail.dsn_sender import DsnSender
from mail.headers import (
    HeaderFacts,
    ReceivedInfo,
    date_value,
    field,
    new_message_id,
    prepend,
    read_header_facts,
    received_field,
    without_bcc,
)
from mail.limits import check_attachment_sizes
from mail.pipeline import Delivery, LocalTarget, Pipeline, ProofSpec, RemoteTarget, Stored
from mail.sender_fields import check_sender_fields, on_behalf_of, sender_field
from mail.views import MessageView, build_view
from storage.database import Database
from storage.schema import accounts, folders
from storage.types import utcnow
from trustspace.policy import (
    Address,
    MailboxStatus,
    check_from_header,
    check_mailbox,
    check_submission_recipient,
    check_submission_sender,
)
from trustspace.refusal import Refusal
from trustspace.whitelist import TrustSpace

log = logging.getLogger("mssante.submission")

INLINE_VIEW_LIMIT = 256 * 1024
"""Messages up to this size are parsed on the loop (cheaper than a thread hop); larger in a
worker thread so a 40 MB message never stalls other sessions."""
MAILBOX_CACHE_TTL = 5.0

_STATUS = {
    "active": MailboxStatus.ACTIVE,
    "suspended": MailboxStatus.SUSPENDED,
    "pending": MailboxStatus.SUSPENDED,  # registered, not yet activated: not accepting mail
}


class HasDatabase(Protocol):
    """Anything holding the database once started (the gateway, the web side's deps)."""

    @property
    def db(self) -> Database | None: ...


def new_smtp_id() -> str:
    """A short unique id for the Received field, the reply and the logs."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii")


def submission_fields(facts: HeaderFacts, info: ReceivedInfo, login: str, hostname: str,
                      ) -> tuple[list[bytes], list[str], bool]:
    """The fields a submission adds in front of a message, whichever way it came (SMTP
    submission or the webmail): (fields, the authors it was written for, whether a Sender
    field was added).

    A Received trace field; RFC 6409 §8.3 / §8.1: a missing Message-ID and Date; RFC 5322
    §3.6.2: when the author is not who sends (a secretary writing for a doctor, a member
    for an organisational mailbox), Sender names the one who did.
    """
    fields = [received_field(info)]
    if facts.message_id is None:
        fields.append(field("Message-ID", new_message_id(hostname)))
    if not facts.has_date:
        fields.append(field("Date", date_value()))
    written_for = on_behalf_of(facts.from_addresses, login)
    sender_added = bool(written_for) and not any(
        name.lower() == "sender" for name, _ in facts.sender_addresses)
    if sender_added:
        fields.append(sender_field(login))
    return fields, written_for, sender_added


class Mailboxes:
    """Local recipients: account status and INBOX, read with one Core query.

    Answers are remembered for :data:`MAILBOX_CACHE_TTL` seconds (as Postfix's proxymap
    does) so that a busy session does not pay a database round trip per RCPT; a suspension
    takes effect within that time.
    """

    def __init__(self, owner: HasDatabase) -> None:
        self._owner = owner
        self._cache: dict[tuple[str, bool], tuple[float, Any]] = {}

    async def _lookup(self, address: str, postmaster: bool) -> Any:
        key = (address, postmaster)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        db = self._owner.db
        assert db is not None
        query = (
            select(accounts.c.id, accounts.c.status, accounts.c.type, accounts.c.settings,
                   folders.c.id.label("inbox"))
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
        if row is not None and row.type == "APP" and not rcpt.is_postmaster and (
                (row.settings or {}).get(APP_MODE) == SEND_ONLY):
            raise Refusal(550, "5.2.1", f"mailbox {rcpt} is an applicative mailbox that "
                                        "only sends; it does not accept mail")
        if row is None or row.inbox is None:
            raise Refusal.temporary_failure(f"mailbox {rcpt} has no INBOX; try again later")
        return LocalTarget(address=address, account_id=int(row.id), folder_id=int(row.inbox))


async def build_checked_view(raw: bytes, max_attachment: int) -> MessageView:
    """Parses the message once (the pipeline reuses this view) and applies the size rules."""
    if len(raw) <= INLINE_VIEW_LIMIT:
        view = build_view(raw)
    else:
        view = await asyncio.to_thread(build_view, raw)
    check_attachment_sizes(view, max_attachment)
    return view


async def send_delivered_dsn(db: Database | None, settings: Settings, pipeline: Pipeline | None,
                             delivery: Delivery, stored: Stored) -> None:
    """RFC 3461 §4.1 / RFC 3464: the "delivered" DSN for local recipients that asked
    ``NOTIFY=SUCCESS``, sent once the message is committed to their mailboxes.

    Sent before the 250 (one more group commit): if the gateway stops in between, the
    client sees no 250 and sends again, rather than the notice being lost unseen. A
    failure to build or store it is logged and does not undo the delivery. The DSN goes
    through the pipeline like any message, with a ``dsn-sent`` proof under the original.
    """
    wanted = [t for t in delivery.local if wants_dsn(delivery.sender, t.notify, "delivered")]
    if not wanted or db is None or pipeline is None:
        return
    reports = [RecipientReport(final_recipient=t.address, action="delivered", status="2.0.0",
                               original_recipient=t.orcpt,
                               diagnostic="delivered to the recipient's mailbox")
               for t in wanted]
    try:
        await DsnSender(db, settings, pipeline).send(
            sender=delivery.sender, reports=reports, notify=[t.notify for t in wanted],
            original=delivery.raw, message_ref=stored.message_id_header,
            content_sha256=stored.content_sha256, ret=delivery.ret, envid=delivery.envid,
            arrival=utcnow(),
        )
    except Exception:  # noqa: BLE001 - the message is delivered; the notice is best effort
        log.exception("event=dsn_delivered_failed message=%d", stored.message_id)


# -- one whole submission (the webmail) ------------------------------------------------------


class RecipientDirectory(Protocol):
    """The directory look-up behind ``directory.require_in_directory`` (optional service)."""

    async def recipient_known(self, address: str) -> bool: ...


@dataclass(frozen=True)
class Author:
    """Who submits: the logged-in account, how it logged in, and whom it may send as."""

    login: str
    method: str
    may_send_as: frozenset[str]
    client_ip: str | None = None
    session: str | None = None


@dataclass(frozen=True)
class Checked:
    """Recipients that passed: local mailboxes and remote trust-space addresses."""

    local: list[LocalTarget]
    remote: list[RemoteTarget]


@dataclass(frozen=True)
class Submitted:
    """What was committed, and the message as stored (with the fields submission added),
    for the copy a user keeps in Sent."""

    stored: Stored
    raw: bytes


class RecipientRefused(Exception):
    """One recipient cannot receive: the address and the refusal (its English reason)."""

    def __init__(self, address: str, refusal: Refusal) -> None:
        super().__init__(f"{address}: {refusal.text}")
        self.address = address
        self.refusal = refusal


class TooManyRecipients(Refusal):
    """More recipients than ``[smtp] max_recipients`` allows in one message."""

    def __init__(self, limit: int) -> None:
        super().__init__(452, "4.5.3", f"too many recipients: at most {limit} per message")
        self.limit = limit


class Submission:
    """A whole message submitted at once through the same rules and pipeline as SMTP."""

    def __init__(self, owner: HasDatabase, settings: Settings, pipeline: Pipeline,
                 directory: RecipientDirectory | None = None) -> None:
        self._owner = owner
        self._settings = settings
        self._pipeline = pipeline
        self._directory = directory
        self._mailboxes = Mailboxes(owner)

    async def check_recipients(self, addresses: Sequence[str], space: TrustSpace,
                               notify: str | None = None) -> Checked:
        """Each address as SMTP RCPT would judge it; the first refused raises
        :class:`RecipientRefused` naming it. Duplicates are merged."""
        local: dict[int, LocalTarget] = {}
        remote: dict[str, RemoteTarget] = {}
        limit = self._settings.smtp.max_recipients
        if len(addresses) > limit:
            # RFC 5321 §4.5.3.1.8: what SMTP answers to the RCPT past the limit
            raise TooManyRecipients(limit)
        for address in addresses:
            try:
                rcpt = check_submission_recipient(address, space,
                                                  self._settings.primary_domain)
                if space.is_local(rcpt.domain):
                    target = await self._mailboxes.resolve(rcpt)
                    local.setdefault(target.account_id, replace(target, notify=notify))
                    continue
                await self._check_directory(str(rcpt))
            except Refusal as refusal:
                raise RecipientRefused(address, refusal) from None
            remote.setdefault(rcpt.key(), RemoteTarget(address=str(rcpt), notify=notify))
        return Checked(list(local.values()), list(remote.values()))

    async def _check_directory(self, address: str) -> None:
        if not self._settings.directory.require_in_directory or self._directory is None:
            return
        if not await self._directory.recipient_known(address):
            raise Refusal(550, "5.1.1", f"{address} is not published in the MSSanté directory")

    async def submit(self, author: Author, mail_from: str, raw: bytes, checked: Checked, *,
                     protocol: str = "HTTPS", envid: str | None = None) -> Submitted:
        """Checks the author's fields, adds the submission fields, commits; the stored ids.

        The same decisions as SMTP submission at the end of DATA: envelope sender, From and
        Sender must be the author or a mailbox it may send as; a message written for
        someone else gets ``Sender:`` the author (RFC 5322 §3.6.2) and its ``submitted``
        proof names the author as actor and the mailbox written for.
        """
        others = author.may_send_as - {author.login}
        raw = without_bcc(raw)  # RFC 5322 §3.6.3: blind recipients stay blind
        check_submission_sender(mail_from, author.login, others)
        facts = read_header_facts(raw)
        check_from_header(facts.from_addresses, author.login, others)
        check_sender_fields(facts.sender_addresses, author.login, others)
        settings = self._settings
        smtp_id = new_smtp_id()
        recipients = [t.address for t in checked.local] + [t.address for t in checked.remote]
        info = ReceivedInfo(
            helo="webmail" if protocol == "HTTPS" else settings.hostname,
            client_ip=author.client_ip or "127.0.0.1",
            client_name=None, by_host=settings.hostname, protocol=protocol,
            smtp_id=smtp_id, tls_version=None, tls_cipher=None, tls_bits=None,
            auth_login=author.login, auth_method=author.method,
            recipient=recipients[0] if len(recipients) == 1 else None,
        )
        fields, written_for, sender_added = submission_fields(
            facts, info, author.login, settings.hostname)
        proof = ProofSpec(kind="submitted", actor=author.login, details={
            "login": author.login, "method": author.method, "client_ip": author.client_ip,
            "via": protocol.lower(), "mail_from": mail_from, "recipients": recipients,
            "smtp_id": smtp_id, "session": author.session,
            **({"on_behalf_of": written_for, "sender_field_added": sender_added}
               if written_for else {}),
        })
        full = prepend(raw, fields)
        if len(full) > settings.smtp.max_message_size:
            # the SIZE limit SMTP announces in EHLO (RFC 1870), for the same message
            raise Refusal(552, "5.3.4", f"message size {len(full)} exceeds the limit of "
                          f"{settings.smtp.max_message_size} octets")
        view = await build_checked_view(full, settings.smtp.max_attachment_size)
        delivery = Delivery(raw=full, sender=mail_from, local=checked.local,
                            remote=checked.remote, proofs=[proof], envid=envid, view=view)
        stored = await self._pipeline.submit(delivery)
        log.info("event=web_submitted id=%s message=%d local=%d remote=%d", smtp_id,
                 stored.message_id, len(checked.local), len(checked.remote))
        await send_delivered_dsn(self._owner.db, settings, self._pipeline, delivery, stored)
        return Submitted(stored, full)
