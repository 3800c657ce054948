"""The expiry digest: before bodies are purged, each owner is told what will go.

Seven days (``[retention] expiry_digest_days``) before the purge of a message's body, its
mailbox owner gets one message in INBOX listing every message of theirs that will expire
(date, correspondent, subject, and the day of the purge), so they can save what they need
(the seed's service keeps bodies and attachments for 3 months; the proofs stay).

Once per message and owner, across runs and crashes: each listed message's key
``expiry-digest:<message>:<account>`` is inserted in the same transaction as the digest
(:attr:`mail.pipeline.Delivery.markers`); a second run, or two runs at once, find the keys
and list only what was not yet told. The purge deletes the keys with the message.

The digest is filed through the pipeline's local delivery like any message (encrypted,
IMAP sessions told). Logs carry counts only: subjects and correspondents name patients.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Any

from sqlalchemy import Select, select, tuple_

from mail.pipeline import AlreadyDelivered, Delivery, LocalTarget, Pipeline
from mail.retention import DIGEST_MARKER
from storage import folders as folder_rows
from storage.database import Database
from storage.messages import KEY_COLUMNS, WITH_KEYS, open_fields
from storage.schema import accounts, folder_messages, folders, messages, meta
from storage.types import utcnow

log = logging.getLogger("mssante.retention")
_CHUNK = 500
MAX_LISTED = 1000  # per digest; the rest is listed by the next run


@dataclass
class DigestReport:
    digests: int = 0
    messages: int = 0


@dataclass
class _Entry:
    key: str
    date: str
    correspondent: str
    subject: str
    purge_on: str


@dataclass
class _Owner:
    address: str
    entries: list[_Entry] = field(default_factory=list)


def digest_sender(domain: str) -> str:
    return f"postmaster@{domain}"


def build_digest(*, sender: str, owner: str, entries: list[_Entry], hostname: str,
                 now: datetime) -> bytes:
    """The digest message (text/plain, UTF-8, CRLF)."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"Messagerie MSSante <{sender}>"
    msg["To"] = owner
    msg["Subject"] = f"{len(entries)} message(s) bientot supprime(s) / expiring soon"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<expiry.{secrets.token_hex(12)}@{hostname}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    lines = [
        "Le contenu (texte et pièces jointes) des messages suivants de votre boîte "
        f"{owner} sera supprimé à la date indiquée, selon la durée de conservation du service.",
        "Enregistrez ce dont vous avez besoin. Les preuves d'envoi, de remise et de lecture "
        "sont conservées.",
        "",
        "The body and attachments of the messages below will be deleted on the date shown; "
        "the proofs of sending, delivery and reading are kept.",
        "",
    ]
    for e in entries:
        lines.append(f"- {e.date} | {e.correspondent or '-'} | {e.subject or '(sans objet)'}"
                     f" | suppression le {e.purge_on}")
    msg.set_content("\n".join(lines) + "\n", charset="utf-8", cte="8bit")
    return msg.as_bytes()



def expiring_query(cutoff: datetime, after: tuple[datetime, int] | None,
                   limit: int) -> Select[Any]:
    """Messages that arrived at or before ``cutoff`` and are not purged, by arrival then id,
    after the ``(received_at, id)`` of the last one read: the ``received_at`` index finds
    and orders them (in id order SQLite read the whole table, on the event loop)."""
    query = (
        select(messages.c.id, messages.c.received_at, messages.c.sealed_fields,
               messages.c.blob_id, *KEY_COLUMNS)
        .select_from(WITH_KEYS)
        .where(messages.c.received_at <= cutoff, messages.c.purged_at.is_(None))
    )
    if after is not None:
        query = query.where(tuple_(messages.c.received_at, messages.c.id) > tuple_(*after))
    return query.order_by(messages.c.received_at, messages.c.id).limit(limit)


async def send_expiry_digests(db: Database, pipeline: Pipeline, *,
                              now: datetime | None = None) -> DigestReport:
    """Files one digest per owner for the messages entering the last days of their
    retention that the owner was not yet told of."""
    settings = db.settings
    report = DigestReport()
    if not settings.retention.expiry_digest:
        return report
    now = now or utcnow()
    days = settings.storage.body_retention_days
    before = settings.retention.expiry_digest_days
    cutoff = now - timedelta(days=max(days - before, 0))
    sender = digest_sender(settings.primary_domain)
    owners: dict[int, _Owner] = {}
    last: tuple[datetime, int] | None = None
    async with db.read() as conn:
        while True:
            rows = (await conn.execute(expiring_query(cutoff, last, _CHUNK))).all()
            if not rows:
                break
            last = (rows[-1].received_at, int(rows[-1].id))
            await _collect(conn, db, rows, owners, days, sender)
    for account_id, owner in owners.items():
        entries = owner.entries[:MAX_LISTED]
        async with db.read() as conn:
            inbox = await folder_rows.get(conn, account_id, "INBOX")
        if inbox is None or not entries:
            continue
        raw = build_digest(sender=sender, owner=owner.address, entries=entries,
                           hostname=settings.hostname, now=now)
        try:
            await pipeline.submit(Delivery(
                raw=raw, sender="", local=[LocalTarget(owner.address, account_id, inbox.id)],
                record_delivery=False, markers=tuple(e.key for e in entries)))
        except AlreadyDelivered:
            continue  # another run told this owner meanwhile; the next run sends the rest
        report.digests += 1
        report.messages += len(entries)
    if report.digests:
        log.info("expiry_digests_sent", extra={"fields": {
            "digests": report.digests, "messages": report.messages}})
    return report


async def _collect(conn: Any, db: Database, rows: Sequence[Any], owners: dict[int, _Owner],
                   days: int, sender: str) -> None:
    """Adds the not-yet-told (message, owner) pairs of ``rows`` to ``owners``."""
    ids = [int(r.id) for r in rows]
    placed = (await conn.execute(
        select(folder_messages.c.message_id, folders.c.account_id, folders.c.special_use,
               accounts.c.address)
        .select_from(folder_messages
                     .join(folders, folders.c.id == folder_messages.c.folder_id)
                     .join(accounts, accounts.c.id == folders.c.account_id))
        .where(folder_messages.c.message_id.in_(ids),
               folder_messages.c.expunged_modseq.is_(None)))).all()
    where: defaultdict[int, dict[int, tuple[str, str | None]]] = defaultdict(dict)
    for p in placed:
        where[int(p.message_id)].setdefault(int(p.account_id), (str(p.address), p.special_use))
    keys = [f"{DIGEST_MARKER}{m}:{a}" for m, by in where.items() for a in by]
    told: set[str] = set()
    for i in range(0, len(keys), _CHUNK):
        told |= set((await conn.execute(
            select(meta.c.key).where(meta.c.key.in_(keys[i:i + _CHUNK])))).scalars())
    for r in rows:
        mine = {a: v for a, v in where.get(int(r.id), {}).items()
                if f"{DIGEST_MARKER}{r.id}:{a}" not in told}
        if not mine:
            continue
        subject, from_, to, _cc, sent = open_fields(
            db.blobs, r.sealed_fields, r.blob_id, r.key_id, r.wrapped_key, r.content_sha256)
        if sender in (from_ or "").lower():
            continue  # an earlier digest: not worth a digest of its own
        purge_on = (r.received_at + timedelta(days=days)).date().isoformat()
        date = sent or r.received_at.date().isoformat()
        for account_id, (address, special_use) in mine.items():
            correspondent = to if special_use in ("\\Sent", "\\Drafts") else from_
            owners.setdefault(account_id, _Owner(address)).entries.append(_Entry(
                f"{DIGEST_MARKER}{r.id}:{account_id}", str(date), str(correspondent or ""),
                str(subject or ""), purge_on))
