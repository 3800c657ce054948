"""Delivery Status Notifications: the RFC 3464 report a sender gets about its message.

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC 6522) with three
parts: a short text for a person (English, then French), the machine-readable
``message/delivery-status`` part (RFC 3464 §2) and the returned content: the whole message
when the sender asked ``RET=FULL``, only its header section otherwise (RFC 3461 §4.3).

The message is composed byte by byte rather than with :mod:`email`'s generator, so the
delivery-status fields come out exactly as RFC 3464 spells them and the returned message
is carried unchanged.

Which events produce a DSN is decided by :func:`wants_dsn` from the recipient's NOTIFY
(RFC 3461 §4.1). When NOTIFY was not given, this gateway behaves as ``FAILURE,DELAY``:
RFC 3461 §4.1 lets the MTA choose between ``FAILURE`` and ``FAILURE,DELAY``, and a
clinician waiting for a result is better told that a message is late.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from typing import Literal

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

DEFAULT_NOTIFY = frozenset({"FAILURE", "DELAY"})
"""What an absent NOTIFY means here (RFC 3461 §4.1 allows FAILURE or FAILURE,DELAY)."""

_EVENT_FOR_ACTION: dict[str, str] = {
    "failed": "FAILURE",
    "delayed": "DELAY",
    "delivered": "SUCCESS",
    "relayed": "SUCCESS",
    "expanded": "SUCCESS",
}


def parse_notify(value: str | None) -> frozenset[str]:
    """The NOTIFY keywords of a stored value (``"SUCCESS,FAILURE"``, ``"NEVER"`` or None)."""
    if value is None or not value.strip():
        return DEFAULT_NOTIFY
    items = {v.strip().upper() for v in value.replace(" ", ",").split(",") if v.strip()}
    return frozenset(items) or DEFAULT_NOTIFY


def wants_dsn(sender: str, notify: str | None, action: Action) -> bool:
    """Whether a DSN with ``action`` goes to ``sender`` for a recipient with ``notify``.

    Never for a null reverse path: a DSN about a DSN would loop (RFC 3461 §6.2,
    RFC 5321 §4.5.5). ``NEVER`` silences everything (RFC 3461 §4.1).
    """
    if not sender or sender == "<>":
        return False
    keywords = parse_notify(notify)
    if "NEVER" in keywords:
        return False
    return _EVENT_FOR_ACTION[action] in keywords


@dataclass(frozen=True)
class RecipientReport:
    """One per-recipient block of the delivery-status part (RFC 3464 §2.3)."""

    final_recipient: str
    action: Action
    status: str  # RFC 3463 enhanced code, e.g. "5.1.1"
    original_recipient: str | None = None  # stored ORCPT: "rfc822;addr" or a bare address
    remote_mta: str | None = None
    diagnostic: str | None = None  # the remote SMTP reply, e.g. "550 5.1.1 unknown user"
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None


@dataclass(frozen=True)
class DsnMessage:
    """A built DSN: the raw message and its Message-ID (for the dsn-sent proof)."""

    raw: bytes
    message_id: str
    recipient: str


_SUBJECTS: dict[str, str] = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report (relayed)",
    "expanded": "Successful Mail Delivery Report",
}

_TEXT_EN: dict[str, str] = {
    "failed": "Your message could not be delivered to the recipients below. It will not be "
    "retried.",
    "delayed": "Your message has not been delivered yet to the recipients below. Delivery is "
    "still being retried; you will be told if it finally fails.",
    "delivered": "Your message was delivered to the recipients below.",
    "relayed": "Your message was handed to the next mail operator for the recipients below, "
    "which does not send delivery notifications itself.",
    "expanded": "Your message was delivered to the recipients below.",
}

_TEXT_FR: dict[str, str] = {
    "failed": "Votre message n'a pas pu être remis aux destinataires ci-dessous ; il ne sera "
    "pas renvoyé.",
    "delayed": "Votre message n'a pas encore été remis aux destinataires ci-dessous ; de "
    "nouvelles tentatives sont en cours.",
    "delivered": "Votre message a été remis aux destinataires ci-dessous.",
    "relayed": "Votre message a été transmis à l'opérateur suivant pour les destinataires "
    "ci-dessous.",
    "expanded": "Votre message a été remis aux destinataires ci-dessous.",
}


def _date(value: datetime) -> str:
    """RFC 5322 §3.3 date-time (RFC 3464 §2.1.5 uses the same syntax)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value.astimezone(UTC))


def _oneline(text: str) -> str:
    """A header field value on one line (remote replies may span several lines)."""
    return " ".join(text.split())


def _address_type(value: str) -> str:
    """``rfc822;addr`` as RFC 3464 §2.3.1 writes it; a bare address gets the rfc822 type."""
    kind, sep, address = value.partition(";")
    if sep and kind and "@" not in kind:
        return f"{kind.strip().lower()};{address.strip()}"
    return f"rfc822;{value.strip()}"


def header_section(message: bytes) -> bytes:
    """The header section of a message, up to and including the empty line."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = message.find(sep)
        if pos >= 0:
            return message[: pos + len(sep)]
    return message


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _delivery_status(
    reporting_mta: str,
    envid: str | None,
    arrival: datetime | None,
    recipients: Sequence[RecipientReport],
) -> str:
    # RFC 3464 §2.2: per-message fields, then one block per recipient (§2.3), blank-separated.
    lines = [f"Reporting-MTA: dns;{reporting_mta}"]
    if envid:
        lines.append(f"Original-Envelope-Id: {envid}")  # RFC 3464 §2.2.1
    if arrival is not None:
        lines.append(f"Arrival-Date: {_date(arrival)}")  # RFC 3464 §2.2.5
    blocks = ["\r\n".join(lines)]
    for r in recipients:
        block: list[str] = []
        if r.original_recipient:
            block.append(f"Original-Recipient: {_address_type(r.original_recipient)}")
        block.append(f"Final-Recipient: rfc822;{r.final_recipient}")  # RFC 3464 §2.3.2
        block.append(f"Action: {r.action}")  # RFC 3464 §2.3.3
        block.append(f"Status: {r.status}")  # RFC 3464 §2.3.4
        if r.remote_mta:
            block.append(f"Remote-MTA: dns;{r.remote_mta}")  # RFC 3464 §2.3.5
        if r.diagnostic:
            block.append(f"Diagnostic-Code: smtp;{_oneline(r.diagnostic)}")  # §2.3.6
        if r.last_attempt is not None:
            block.append(f"Last-Attempt-Date: {_date(r.last_attempt)}")  # §2.3.7
        if r.will_retry_until is not None and r.action == "delayed":
            block.append(f"Will-Retry-Until: {_date(r.will_retry_until)}")  # §2.3.9
        blocks.append("\r\n".join(block))
    return "\r\n\r\n".join(blocks) + "\r\n"


def build_dsn(
    *,
    reporting_mta: str,
    postmaster: str,
    to: str,
    recipients: Sequence[RecipientReport],
    original: bytes,
    ret: str | None = None,
    envid: str | None = None,
    arrival: datetime | None = None,
    now: datetime | None = None,
) -> DsnMessage:
    """Builds the DSN sent to ``to`` (the original envelope sender) about ``recipients``.

    All recipients of one DSN share one action (the subject says which). ``ret`` is the
    sender's RET: ``FULL`` returns the whole message as ``message/rfc822``; ``HDRS`` or
    nothing returns its header section as ``text/rfc822-headers`` (RFC 3462 §3), which keeps
    patient data out of the report unless the sender asked for it.
    """
    if not recipients:
        raise ValueError("a DSN needs at least one recipient report")
    actions = {r.action for r in recipients}
    if len(actions) != 1:
        raise ValueError(f"one DSN reports one action, got {sorted(actions)}")
    action = recipients[0].action
    now = now or datetime.now(UTC)
    domain = reporting_mta
    message_id = make_msgid(idstring="dsn", domain=domain)
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    listed = "\r\n".join(
        f"  <{r.final_recipient}>: {_oneline(r.diagnostic or r.status)}" for r in recipients
    )
    human = (
        f"This is the mail system at {reporting_mta}.\r\n\r\n"
        f"{_TEXT_EN[action]}\r\n\r\n{listed}\r\n\r\n"
        f"{_TEXT_FR[action]}\r\n"
    )
    status = _delivery_status(reporting_mta, envid, arrival, recipients)
    full = (ret or "").upper() == "FULL"
    returned = _crlf(original if full else header_section(original))
    if not returned.endswith(b"\r\n"):
        returned += b"\r\n"
    eight_bit = any(b > 127 for b in returned)
    headers = [
        f"From: Mail Delivery System <{postmaster}>",
        f"To: <{to}>",
        f"Subject: {_SUBJECTS[action]}",
        f"Date: {_date(now)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5: never auto-answer this message
        "MIME-Version: 1.0",
        # RFC 6522 §3: multipart/report with the report-type parameter
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    parts: list[bytes] = [
        "\r\n".join(headers).encode() + b"\r\n\r\n",
        b"This is a MIME-encapsulated delivery status notification.\r\n",
        f"\r\n--{boundary}\r\n".encode(),
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
        human.encode("utf-8"),
        f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: message/delivery-status\r\n\r\n",  # RFC 3464 §2
        status.encode("utf-8"),
        f"\r\n--{boundary}\r\n".encode(),
        (b"Content-Type: message/rfc822\r\n" if full
         else b"Content-Type: text/rfc822-headers\r\n"),
        b"Content-Transfer-Encoding: 8bit\r\n" if eight_bit else b"",
        b"\r\n",
        returned,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return DsnMessage(raw=b"".join(parts), message_id=message_id, recipient=to)


def summary_status(reports: Iterable[RecipientReport]) -> str:
    """The statuses of several reports, for logs and proofs (``5.1.1,4.4.7``)."""
    return ",".join(sorted({r.status for r in reports}))
