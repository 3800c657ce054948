"""The absence message ("répondeur d'absence"): RFC 5230 vacation semantics with the
RFC 3834 rules for automatic responses, answered at local delivery.

Whom to answer (:func:`reason_not_to_reply` says why not, for the logs and the tests):

- never a null or daemon sender: ``<>``, ``MAILER-DAEMON``, ``owner-*``, ``*-request``,
  ``LISTSERV``, ``majordomo`` (RFC 5230 §4.6, RFC 3834 §2);
- never a message that is itself automatic: ``Auto-Submitted`` other than ``no``
  (RFC 3834 §5), ``Precedence: bulk/list/junk``, list messages (``List-Id``,
  ``List-Unsubscribe``… RFC 2369/2919), delivery or read reports;
- only when the user's own address is among the To/Cc recipients (RFC 5230 §4.5: a
  message received through a list or as Bcc is not answered);
- never outside the MSSanté trust space (the answer would be refused anyway);
- once per sender per period: again only after ``days`` days (RFC 5230 §4.1, default 7)
  or when the user changes the message (:mod:`storage.vacations`).

The answer (RFC 3834 §3): ``From:`` the user, ``To:`` the sender, ``Subject:`` the
configured one or "Absent : <original subject>", ``In-Reply-To`` / ``References`` to the
original, ``Auto-Submitted: auto-replied``, sent with the null reverse path so that it
never causes a bounce loop. It goes through the pipeline like any submission, with a
``submitted`` proof naming the user (``via: vacation``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr

from config import Settings
from mail.compose import named, one_line
from mail.headers import new_message_id
from mail.pipeline import Delivery, LocalTarget, Pipeline, ProofSpec, RemoteTarget, Stored
from storage import accounts as account_rows
from storage import folders as folder_rows
from storage import vacations
from storage.database import Database
from storage.types import utcnow
from trustspace.refresh import TrustSpaceManager

log = logging.getLogger("mssante.vacation")

DAEMON_LOCALS = ("mailer-daemon", "listserv", "majordomo", "postmaster")
MAX_HEADER = 64 * 1024
"""Only the header section is read to decide (a 40 MB message is not parsed again)."""


def _header(raw: bytes) -> EmailMessage:
    end = raw.find(b"\r\n\r\n", 0, MAX_HEADER)
    head = raw[: end + 4] if end >= 0 else raw[:MAX_HEADER]
    msg = message_from_bytes(head, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def reason_not_to_reply(sender: str, head: EmailMessage, user_addresses: Sequence[str],
                        in_trust_space: bool) -> str | None:
    """Why this message gets no absence reply, or None when it gets one."""
    if not sender:
        return "null sender"
    local = sender.rpartition("@")[0].lower()
    if local in DAEMON_LOCALS or local.startswith("owner-") or local.endswith("-request"):
        return "daemon or list sender"
    auto = str(head.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if auto and auto != "no":
        return "auto-submitted"
    if str(head.get("Precedence", "")).strip().lower() in ("bulk", "list", "junk"):
        return "bulk or list precedence"
    if any(name in head for name in ("List-Id", "List-Unsubscribe", "List-Post",
                                     "List-Help")):
        return "list message"
    content = head.get_content_type()
    if content == "multipart/report" or head.get("Original-Message-ID"):
        return "delivery or read report"
    shown = {a.lower() for _n, a in getaddresses(
        [str(v) for f in ("To", "Cc") for v in head.get_all(f, [])])}
    if not shown & {a.lower() for a in user_addresses}:
        return "not addressed to the user in To or Cc"
    if not in_trust_space:
        return "sender outside the trust space"
    return None


def build_reply(vacation: vacations.Vacation, user: str, user_name: str, sender: str,
                head: EmailMessage, hostname: str, now: datetime) -> bytes:
    """The RFC 3834 automatic reply to the message whose header is ``head``."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["Date"] = format_datetime(now)
    msg["From"] = named(user_name, user)
    msg["To"] = sender
    original_subject = str(head.get("Subject", "")).strip()
    msg["Subject"] = one_line(vacation.subject) or one_line(f"Absent : {original_subject}")
    msg["Message-ID"] = new_message_id(hostname)
    original_id = str(head.get("Message-ID", "")).strip()
    if original_id and original_id.isascii():
        msg["In-Reply-To"] = original_id
        refs = [r for r in str(head.get("References", "")).split() if r.isascii()]
        msg["References"] = " ".join([*refs, original_id])
    msg["Auto-Submitted"] = "auto-replied (vacation)"
    body = vacation.body.strip()
    if vacation.contact.strip():
        body += f"\n\nEn mon absence, vous pouvez contacter : {vacation.contact.strip()}"
    msg.set_content(body + "\n", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


class VacationResponder:
    """Answers deliveries to accounts whose absence message is on (called after commit)."""

    def __init__(self, db: Database, settings: Settings, pipeline: Pipeline,
                 trust: TrustSpaceManager) -> None:
        self._db = db
        self._settings = settings
        self._pipeline = pipeline
        self._trust = trust
        self._tasks: set[asyncio.Task[list[str]]] = set()

    def on_delivered(self, delivery: Delivery, stored: Stored) -> None:
        """The pipeline's after-commit hook: never delays the delivery's answer."""
        if not delivery.record_delivery or not delivery.local or delivery.report is not None:
            return
        task = asyncio.create_task(self.answer(delivery), name="vacation")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Waits for the answers under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def answer(self, delivery: Delivery) -> list[str]:
        """Sends the absence replies ``delivery`` calls for; the addresses answered."""
        try:
            return await self._answer(delivery)
        except Exception:  # noqa: BLE001 - the message is delivered; the reply is best effort
            log.exception("event=vacation_failed")
            return []

    async def _answer(self, delivery: Delivery) -> list[str]:
        targets = {t.account_id: t for t in delivery.local}
        async with self._db.read() as conn:
            settings = await vacations.enabled_for(conn, list(targets))
        now = utcnow()
        settings = [v for v in settings if v.active(now)]
        if not settings:
            return []
        sender = parseaddr(delivery.sender)[1] or delivery.sender
        head = _header(delivery.raw)
        domain = sender.rpartition("@")[2]
        space = self._trust.current
        in_space = bool(domain) and space.contains(domain.lower())
        answered = []
        for vacation in settings:
            target = targets[vacation.account_id]
            why = reason_not_to_reply(sender, head, [target.address], in_space)
            if why is not None:
                log.info("event=vacation_skipped reason=%s", why.replace(" ", "_"))
                continue
            async with self._db.begin() as conn:
                if not await vacations.claim_reply(conn, vacation, sender, now):
                    continue
                account = await account_rows.get_by_id(conn, vacation.account_id)
            assert account is not None
            raw = build_reply(vacation, account.address, account.display_name, sender, head,
                              self._settings.hostname, now)
            await self._send(account.address, sender, raw, str(head.get("Message-ID", "")))
            answered.append(sender)
        return answered

    async def _send(self, user: str, sender: str, raw: bytes, original: str) -> None:
        delivery = Delivery(raw=raw, sender="", proofs=[ProofSpec(
            kind="submitted", actor=user, details={
                "login": user, "via": "vacation", "mail_from": "", "recipients": [sender],
                "in_reply_to": original})])
        if self._settings.is_local_domain(sender.rpartition("@")[2]):
            async with self._db.read() as conn:
                account = await account_rows.get_by_address(conn, sender.lower())
                inbox = await folder_rows.get(conn, account.id, "INBOX") if account else None
            if account is None or inbox is None:
                return
            delivery.local.append(LocalTarget(address=account.address, account_id=account.id,
                                              folder_id=int(inbox.id)))
        else:
            delivery.remote.append(RemoteTarget(address=sender, notify="NEVER"))
        await self._pipeline.submit(delivery)
        log.info("event=vacation_sent")
