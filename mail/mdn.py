"""Message disposition notifications (RFC 8098): when one is sent, and how it is built.

A recipient's first reading may send a read receipt back to the address in
``Disposition-Notification-To``. Sent without asking the user (the account's policy is
``always``), it is an ``automatic-action/MDN-sent-automatically; displayed`` report, and
RFC 8098 §2.1 asks for care, so :func:`decide` refuses when:

- the account's policy is not ``always`` (``never``; ``ask`` leaves it to the user's client);
- the message sits in a \\Sent or \\Drafts folder (one's own message is not "displayed" to a
  recipient);
- the message is itself a disposition notification (RFC 8098 §2.1: never an MDN on an MDN);
- the request names no single valid address;
- the address differs from the message's Return-Path (RFC 8098 §2.1 — the receiving MTA
  records it), or, as no Return-Path header is stored here, from its From address: a third
  party must not learn who read what;
- the address's domain is neither local nor in the MSSanté trust space.

The report carries no part of the original message (no third ``text/rfc822-headers`` part):
headers such as ``X-MSS-INS`` may identify a patient, and the Original-Message-ID is enough
for the sender to match it (RFC 8098 §3.2.9 allows leaving it out).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses
from typing import Any

from sqlalchemy import select

from storage.engine import insert_or_ignore
from storage.schema import meta
from storage.types import utcnow

POLICIES = ("always", "never", "ask")
DEFAULT_POLICY = "always"  # the seed promises a notification "à l'ouverture"
MDN_SENT_FLAG = "$MDNSent"  # RFC 3503 §3.1
DISPOSITION = "automatic-action/MDN-sent-automatically; displayed"
NO_MDN_FOLDERS = frozenset({"\\Sent", "\\Drafts"})


@dataclass(frozen=True, slots=True)
class MdnDecision:
    """Where to send a read receipt (``to`` is None when none is sent) and why."""

    to: str | None
    reason: str
    original_message_id: str | None = None
    subject: str = ""


def parse_headers(raw_header: bytes) -> Message:
    """The header block of a stored message, parsed leniently."""
    return BytesHeaderParser().parsebytes(raw_header)


def _single_address(value: str | None) -> str | None:
    if not value:
        return None
    found = [a for _, a in getaddresses([value]) if a and "@" in a]
    return found[0].strip().lower() if len(found) == 1 else None


def decide(headers: Message, *, policy: str, special_use: str | None,
           is_local: Callable[[str], bool], is_trusted: Callable[[str], bool]) -> MdnDecision:
    """Whether an automatic MDN goes out for a message just read (see the module text)."""
    if policy != "always":
        return MdnDecision(None, f"policy {policy}: no automatic receipt")
    requested = headers.get("Disposition-Notification-To")
    if requested is None:
        return MdnDecision(None, "no receipt requested")
    if special_use in NO_MDN_FOLDERS:
        return MdnDecision(None, f"message in a {special_use} folder")
    content_type = (headers.get("Content-Type") or "").lower()
    if "disposition-notification" in content_type:
        return MdnDecision(None, "the message is itself a disposition notification")
    to = _single_address(str(requested))
    if to is None:
        return MdnDecision(None, "Disposition-Notification-To holds no single address")
    origin = _single_address(headers.get("Return-Path")) or _single_address(headers.get("From"))
    if origin != to:
        return MdnDecision(None, "Disposition-Notification-To differs from the sender")
    domain = to.rpartition("@")[2]
    if not is_local(domain) and not is_trusted(domain):
        return MdnDecision(None, f"domain {domain} is outside the trust space")
    message_id = headers.get("Message-ID")
    return MdnDecision(to, "sent", str(message_id).strip() if message_id else None,
                       str(headers.get("Subject") or ""))


def _clean(value: str) -> str:
    """One header line: folded whitespace and control characters removed."""
    return " ".join("".join(ch if ch >= " " else " " for ch in value).split())


def build_mdn(*, reporting_host: str, final_recipient: str, to: str,
              original_message_id: str | None, original_subject: str = "",
              now: datetime | None = None) -> bytes:
    """A ``multipart/report; report-type=disposition-notification`` message (RFC 8098 §3),
    with CRLF line ends: a human-readable part and the machine-readable one."""
    now = now or datetime.now(UTC)
    boundary = "mdn-" + secrets.token_hex(12)
    message_id = f"<mdn.{secrets.token_hex(12)}@{reporting_host}>"
    subject = _clean(original_subject)[:200]
    subject_header = Message(policy=SMTP_POLICY)
    subject_header["Subject"] = f"Read: {subject}" if subject else "Read receipt"
    recipient = str(Address(addr_spec=final_recipient))
    human = (f"The message sent to {final_recipient} on this MSSante mailbox has been "
             "displayed.\r\nThis is a receipt of display only: it does not say that the "
             "message was read, understood or agreed with.\r\n")
    report = [
        f"Reporting-UA: {reporting_host}; mssante-gateway",  # RFC 8098 §3.2.1
        f"Final-Recipient: rfc822;{final_recipient}",  # RFC 8098 §3.2.4
    ]
    if original_message_id:
        report.append(f"Original-Message-ID: {_clean(original_message_id)}")  # §3.2.5
    report.append(f"Disposition: {DISPOSITION}")  # RFC 8098 §3.2.6
    lines = [
        f"From: {recipient}",
        f"To: {to}",
        subject_header.as_string().rstrip("\r\n"),
        f"Date: {format_datetime(now)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=disposition-notification;",
        f' boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        human.rstrip("\r\n"),
        f"--{boundary}",
        "Content-Type: message/disposition-notification",
        "",
        *report,
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def mdn_message_id(raw: bytes) -> str | None:
    """The Message-ID :func:`build_mdn` gave its report (for the ``mdn-sent`` proof)."""
    value = parse_headers(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n").get("Message-ID")
    return str(value).strip() if value else None


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_ASKS = re.compile(rb"^disposition-notification-to[ \t]*:", re.IGNORECASE | re.MULTILINE)
_IS_MDN = re.compile(rb"^content-type[ \t]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*"
                     rb"disposition-notification", re.IGNORECASE | re.MULTILINE)


def asks_for_receipt(raw: bytes) -> bool:
    """Whether a message asks for a read receipt: a ``Disposition-Notification-To`` field
    in its header section, and it is not itself a disposition notification (RFC 8098 §2.1).

    Read at delivery so that, under the recipient's ``always`` policy, its copy is filed
    with ``$MDNSent`` (RFC 3503 §3.1): a client decides whether to ask its user when it
    displays the message, before any STORE reaches the gateway, so only a flag already
    there stops it from asking (and sending a second receipt).
    """
    end = _HEADER_END.search(raw)
    header = raw[:end.start() + 1] if end else raw
    return bool(_ASKS.search(header)) and not _IS_MDN.search(header)


def _client_mdn_key(account_id: int, message_id: str) -> str:
    # meta keys are short: the Message-ID (up to 998 characters) is named by its hash.
    digest = hashlib.sha256(message_id.strip().encode("utf-8", "replace")).hexdigest()
    return f"cmdn:{account_id}:{digest[:40]}"


async def record_client_mdn(conn: Any, account_ids: Iterable[int], message_id: str) -> None:
    """Notes that the user of each of ``account_ids`` (the mailbox owner, or the delegate
    writing for it) submitted their own disposition notification for ``message_id``,
    in the transaction that stores it; :func:`client_mdn_already_sent` reads it."""
    rows = [{"key": _client_mdn_key(int(a), message_id), "value": utcnow().isoformat()}
            for a in sorted(set(account_ids))]
    if rows:
        await conn.execute(insert_or_ignore(conn, meta, ["key"]).values(rows))


async def client_mdn_already_sent(conn: Any, account_id: int, message_id: str | None) -> bool:
    """Whether the mailbox ``account_id``'s own client already sent a disposition
    notification for ``message_id`` (submitted through the gateway by its user or a
    delegate writing for it). The read-proof code calls this before sending the gateway's
    automatic receipt: one receipt per reading, the client's if it came first."""
    if not message_id:
        return False
    found = (await conn.execute(select(meta.c.key).where(
        meta.c.key == _client_mdn_key(account_id, message_id)))).scalar()
    return found is not None
