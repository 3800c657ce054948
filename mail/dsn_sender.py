"""Sending a DSN to the original sender, through the message pipeline like any message.

A DSN to a local sender is filed in that mailbox's INBOX; a DSN to a sender at another
operator is queued for the outbound worker with the null reverse path ``<>``, so that a
failure to deliver it never produces another DSN (RFC 3461 §6.2, RFC 5321 §4.5.5). Either
way the pipeline writes it, and a ``dsn-sent`` proof records it against the original
message (by its Message-ID and content hash).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from config import Settings
from mail.dsn import DsnMessage, RecipientReport, build_dsn, wants_dsn
from mail.pipeline import Delivery, LocalTarget, Pipeline, RemoteTarget
from storage import accounts as account_rows
from storage import folders, proofs
from storage.database import Database

log = logging.getLogger("mssante.outbound")


class DsnSender:
    """Builds and routes DSNs for one gateway (its hostname is the Reporting-MTA)."""

    def __init__(self, db: Database, settings: Settings, pipeline: Pipeline) -> None:
        self._db = db
        self._settings = settings
        self._pipeline = pipeline

    async def send(
        self,
        *,
        sender: str,
        reports: Sequence[RecipientReport],
        original: bytes,
        message_ref: str | None,
        content_sha256: str | None,
        ret: str | None,
        envid: str | None,
        arrival: datetime | None,
        notify: Sequence[str | None] | None = None,
    ) -> DsnMessage | None:
        """Sends one DSN about ``reports`` unless NOTIFY or a null sender says not to.

        ``notify`` holds each report's stored NOTIFY (same order); reports whose NOTIFY
        does not ask for their action are left out. Returns the DSN sent, or None.
        """
        notifies = list(notify) if notify is not None else [None] * len(reports)
        wanted = [r for r, n in zip(reports, notifies, strict=True)
                  if wants_dsn(sender, n, r.action)]
        if not wanted:
            return None
        settings = self._settings
        dsn = build_dsn(
            reporting_mta=settings.hostname,
            postmaster=f"MAILER-DAEMON@{settings.primary_domain}",
            to=sender,
            recipients=wanted,
            original=original,
            ret=ret,
            envid=envid,
            arrival=arrival,
        )
        delivery = Delivery(raw=dsn.raw, sender="")
        domain = sender.rpartition("@")[2]
        if settings.is_local_domain(domain):
            target = await self._local_target(sender)
            if target is None:
                log.warning("dsn_dropped", extra={"fields": {
                    "reason": "local sender has no mailbox", "to": sender}})
                return None
            delivery.local.append(target)
        else:
            delivery.remote.append(RemoteTarget(address=sender, notify="NEVER"))
        await self._pipeline.submit(delivery)
        async with self._db.begin() as conn:
            await proofs.append(
                conn,
                kind="dsn-sent",
                message_ref=message_ref,
                content_sha256=content_sha256,
                actor=sender,
                details={
                    "action": wanted[0].action,
                    "to": sender,
                    "recipients": [r.final_recipient for r in wanted],
                    "status": [r.status for r in wanted],
                    "dsn_message_id": dsn.message_id,
                },
            )
        log.info("dsn_sent", extra={"fields": {
            "action": wanted[0].action, "to": sender, "recipients": len(wanted)}})
        return dsn

    async def _local_target(self, address: str) -> LocalTarget | None:
        async with self._db.read() as conn:
            account = await account_rows.get_by_address(conn, address.lower())
            if account is None:
                return None
            inbox = await folders.get(conn, account.id, "INBOX")
        if inbox is None:
            return None
        return LocalTarget(address=account.address, account_id=account.id, folder_id=inbox.id)
