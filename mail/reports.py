"""Reading the delivery and disposition reports that come back about a message.

A DSN (RFC 3464) or an MDN (RFC 8098) filed in one of our mailboxes is the other side's
evidence that a message was delivered, delayed, refused or displayed. The pipeline records
it as a ``dsn-received`` / ``mdn-received`` proof *under the original message*, so that
``mssante proofs show <Message-ID>`` lists it beside the submission. The original is named
by, in this order:

- the ``Original-Message-ID`` field of an MDN (RFC 8098 §3.2.5);
- the ``Message-ID`` of the returned header section or message of a DSN (RFC 3462 §3,
  RFC 3464 §2 third part), which every DSN this gateway sends carries;
- a DSN returning nothing names its message only by ``Original-Envelope-Id`` (RFC 3464
  §2.2.1), the sender's own ENVID: the pipeline looks for the message that mailbox sent
  with that ENVID among its outbound queue rows (``matched_by: envid``).

Only the report's fields are kept, never the returned content: the returned header section
may carry a Subject naming a patient.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from typing import Any, Literal

ReportKind = Literal["dsn", "mdn"]
_REPORT_TYPES: dict[str, ReportKind] = {
    "delivery-status": "dsn",
    "disposition-notification": "mdn",
}
_SCAN = 16 * 1024  # a report's own header section is short; anything longer is no report


@dataclass(frozen=True)
class ReceivedReport:
    """The fields of one report that prove something about the original message."""

    kind: ReportKind
    original_message_id: str | None
    envelope_id: str | None
    reporter: str | None  # Reporting-MTA (DSN) or Reporting-UA (MDN)
    report_message_id: str | None
    recipients: list[dict[str, Any]] = field(default_factory=list)
    matched_by: str = "message-id"  # or "envid": how the original message was found

    @property
    def actor(self) -> str | None:
        """Who answers: the reader for an MDN, the reporting MTA for a DSN."""
        if self.kind == "mdn" and self.recipients:
            final = self.recipients[0].get("final_recipient") or ""
            return final.partition(";")[2].strip() or final or self.reporter
        return self.reporter

    @property
    def proof_kind(self) -> str:
        return f"{self.kind}-received"

    def details(self) -> dict[str, Any]:
        """What the proof records (field names of RFC 3464 / RFC 8098, lower-cased)."""
        out: dict[str, Any] = {"report_message_id": self.report_message_id,
                               "reporter": self.reporter, "recipients": self.recipients,
                               "matched_by": self.matched_by}
        if self.envelope_id:
            out["original_envelope_id"] = self.envelope_id
        return out


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:998] or None


def _header_end(raw: bytes) -> bytes:
    head = raw[:_SCAN]
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = head.find(sep)
        if pos >= 0:
            return head[:pos]
    return head


def report_kind(raw: bytes) -> ReportKind | None:
    """``dsn`` or ``mdn`` when ``raw`` is a ``multipart/report`` of that type; cheap enough
    for every accepted message (headers only, and only when the bytes say "report")."""
    head = _header_end(raw)
    if b"multipart/report" not in head.lower():
        return None
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\r\n\r\n")
    if headers.get_content_type() != "multipart/report":
        return None
    return _REPORT_TYPES.get(str(headers.get_param("report-type") or "").lower())


def parse_report(raw: bytes) -> ReceivedReport | None:
    """The report in ``raw``, or None when it is not one (or not readable as one)."""
    kind = report_kind(raw)
    if kind is None:
        return None
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    payload = msg.get_payload()
    if not isinstance(payload, list):
        return None
    parts = [p for p in payload if isinstance(p, Message)]
    wanted = f"message/{'delivery-status' if kind == 'dsn' else 'disposition-notification'}"
    status = next((p for p in parts if p.get_content_type() == wanted), None)
    if status is None:
        return None
    blocks = _blocks(status)
    if not blocks:
        return None
    report_id = _clean(msg.get("Message-ID"))
    if kind == "mdn":
        fields = blocks[0]
        return ReceivedReport(
            kind="mdn",
            original_message_id=_clean(fields.get("Original-Message-ID")),
            envelope_id=None,
            reporter=_clean(fields.get("Reporting-UA")),
            report_message_id=report_id,
            recipients=[{
                "final_recipient": _clean(fields.get("Final-Recipient")),
                "original_recipient": _clean(fields.get("Original-Recipient")),
                "disposition": _clean(fields.get("Disposition")),
            }],
        )
    per_message, per_recipient = blocks[0], blocks[1:]
    return ReceivedReport(
        kind="dsn",
        original_message_id=_returned_message_id(parts),
        envelope_id=_clean(per_message.get("Original-Envelope-Id")),
        reporter=_clean(per_message.get("Reporting-MTA")),
        report_message_id=report_id,
        recipients=[{
            "final_recipient": _clean(b.get("Final-Recipient")),
            "original_recipient": _clean(b.get("Original-Recipient")),
            "action": (_clean(b.get("Action")) or "").lower() or None,
            "status": _clean(b.get("Status")),
            "remote_mta": _clean(b.get("Remote-MTA")),
            "diagnostic": _clean(b.get("Diagnostic-Code")),
        } for b in per_recipient],
    )


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a delivery-status or disposition-notification part (the email
    package gives a list of blocks for the former and one message for the latter)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    if isinstance(payload, str):
        return [HeaderParser().parsestr(chunk.strip() + "\n")
                for chunk in payload.replace("\r\n", "\n").split("\n\n") if chunk.strip()]
    return []


def _returned_message_id(parts: list[Message]) -> str | None:
    """The Message-ID of the returned message or header section (third DSN part)."""
    for part in parts:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return _clean(inner[0].get("Message-ID"))
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                headers = BytesHeaderParser().parsebytes(text)
                return _clean(headers.get("Message-ID"))
    return None
