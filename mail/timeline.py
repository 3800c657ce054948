"""The story of one message (or one account) told from its proofs, in ledger order.

``mssante proofs show <Message-ID>`` is what an operator reads out when a professional
asks "was my letter delivered, and read?". Each proof becomes one event with a sentence
saying who did what — submitted by whom and for whom when a delegate wrote for a doctor,
relayed to which operator, received from which one, delivered to which mailbox, the
delivery reports and read receipts sent or received in answer (all filed under the
original message, see :mod:`mail.reports`), read, purged — and, for machines, the same
events as JSON with the full details of each record.

The ledger order (sequence numbers) is the order of the story: each side records an
event when it happens on that side, so a report received can never come before the
submission it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from storage.proofs import ProofRecord


@dataclass(frozen=True)
class Event:
    """One step of the story: the proof it comes from and its sentence."""

    record: ProofRecord
    summary: str

    def as_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "seq": r.seq, "time": _time(r), "kind": r.kind, "actor": r.actor,
            "summary": self.summary, "content_sha256": r.content_sha256,
            "details": r.details, "hash": r.hash,
        }


def _time(r: ProofRecord) -> str:
    return r.created_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _list(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value) if value not in (None, "") else "-"


def _address(value: Any) -> str:
    """``rfc822;addr`` as a bare address (report fields carry the address type)."""
    text = str(value or "")
    kind, sep, rest = text.partition(";")
    return rest.strip() if sep and "@" not in kind else text


def _submitted(r: ProofRecord, d: dict[str, Any]) -> str:
    text = f"submitted by {r.actor or d.get('login', '-')}"
    if d.get("on_behalf_of"):
        text += f" for {_list(d['on_behalf_of'])} (delegated"
        text += ", Sender field added)" if d.get("sender_field_added") else ")"
    if d.get("method"):
        text += f" with {d['method']}"
    if d.get("client_ip"):
        text += f" from {d['client_ip']}"
    return text + f", to {_list(d.get('recipients'))}"


def _received(r: ProofRecord, d: dict[str, Any]) -> str:
    peer = _list(d.get("peer_domains")) if d.get("peer_domains") else r.actor or "-"
    return f"received from operator {peer} for {_list(d.get('recipients'))}"


def _relayed(r: ProofRecord, d: dict[str, Any]) -> str:
    text = f"relayed to {d.get('recipient', r.actor)}"
    if d.get("remote_host"):
        text += f" via {d['remote_host']}"
    if d.get("tls_version"):
        text += f" ({d['tls_version']})"
    return text + f": {d.get('reply', '-')}"


def _arrival(d: dict[str, Any]) -> str:
    """How a received report came: from another operator, or submitted by a local user."""
    for step in d.get("arrived") or []:
        if step.get("kind") == "received":
            return f" (came from operator {step.get('actor') or '-'})"
        if step.get("kind") == "submitted":
            return f" (submitted here by {step.get('actor') or '-'})"
    return ""


def _dsn_received(r: ProofRecord, d: dict[str, Any]) -> str:
    parts = [f"{x.get('action') or '?'} for {_address(x.get('final_recipient'))}"
             + (f" ({x['status']})" if x.get("status") else "")
             for x in d.get("recipients") or []]
    return (f"delivery report received from {d.get('reporter') or r.actor or '-'}: "
            f"{'; '.join(parts) or '-'}{_arrival(d)}")


def _mdn_received(r: ProofRecord, d: dict[str, Any]) -> str:
    first = (d.get("recipients") or [{}])[0]
    return (f"read receipt received from {r.actor or '-'}: "
            f"{first.get('disposition') or '-'}{_arrival(d)}")


_SENTENCES: dict[str, Callable[[ProofRecord, dict[str, Any]], str]] = {
    "submitted": _submitted,
    "received": _received,
    "delivered": lambda r, d: f"delivered to {d.get('mailbox', r.actor)}",
    "relayed": _relayed,
    "deferred": lambda r, d: (f"delivery to {d.get('recipient', r.actor)} deferred: "
                              f"{d.get('reply', '-')}; next attempt "
                              f"{d.get('next_attempt_at', '-')}"),
    "bounced": lambda r, d: (f"delivery to {d.get('recipient', r.actor)} failed: "
                             f"{d.get('reply', '-')}"),
    "dsn-sent": lambda r, d: (f"delivery report sent to {d.get('to', r.actor)}: "
                              f"{d.get('action', '?')} for {_list(d.get('recipients'))}"),
    "dsn-received": _dsn_received,
    "read": lambda r, d: (f"read by {d.get('reader', r.actor)}"
                          + (f" in {d['mailbox']}" if d.get("mailbox")
                             and d.get("mailbox") != d.get("reader") else "")
                          + (f" ({d['via']})" if d.get("via") else "")),
    "mdn-sent": lambda r, d: (f"read receipt sent to {_list(d.get('to'))} "
                              + ("by the mail client of " if d.get("sent_by") == "client"
                                 else "for ")
                              + f"{d.get('reader') or r.actor or '-'}: "
                              f"{d.get('disposition', '-')}"),
    "mdn-received": _mdn_received,
    "purged": lambda r, d: f"body purged ({d.get('reason', 'retention period ended')})",
    "account-created": lambda r, d: (f"account {d.get('account')} created "
                                     f"({d.get('type', '-')}) by {r.actor or '-'}"),
    "account-approved": lambda r, d: f"account approved by {r.actor or '-'}",
    "account-suspended": lambda r, d: f"account suspended by {r.actor or '-'}",
    "account-reactivated": lambda r, d: f"account reactivated by {r.actor or '-'}",
    "account-closed": lambda r, d: f"account closed by {r.actor or '-'}",
    "account-changed": lambda r, d: (f"{d.get('setting', 'setting')} changed"
                                     + (f" from {d.get('from')} to {d.get('to')}"
                                        if "to" in d else "")
                                     + f" by {r.actor or '-'}"),
    "credential-added": lambda r, d: (f"{d.get('kind', 'credential')} {d.get('credential_id')}"
                                      f" ({d.get('label', '')}) added by {r.actor or '-'}"),
    "credential-revoked": lambda r, d: (f"{d.get('kind', 'credential')} "
                                        f"{d.get('credential_id')} ({d.get('label', '')}) "
                                        f"revoked by {r.actor or '-'}"),
    "delegation-granted": lambda r, d: (f"delegation granted to {d.get('delegate')}: "
                                        f"{d.get('rights')}"
                                        + (" and send-as" if d.get("send_as") else "")
                                        + f", by {r.actor or '-'}"),
    "delegation-changed": lambda r, d: (f"delegation of {d.get('delegate')} changed from "
                                        f"{(d.get('before') or {}).get('rights')} to "
                                        f"{d.get('rights')}"
                                        + (" and send-as" if d.get("send_as") else "")
                                        + f", by {r.actor or '-'}"),
    "delegation-revoked": lambda r, d: (f"delegation revoked from {d.get('delegate')} "
                                        f"by {r.actor or '-'}"),
}


def describe(record: ProofRecord) -> str:
    """The sentence of one proof (kinds without their own sentence: kind and actor)."""
    sentence = _SENTENCES.get(record.kind)
    if sentence is None:
        return f"{record.kind.replace('-', ' ')} by {record.actor or '-'}"
    return sentence(record, record.details)


def timeline(records: Sequence[ProofRecord]) -> list[Event]:
    """The events of ``records`` in ledger order."""
    return [Event(r, describe(r)) for r in sorted(records, key=lambda r: r.seq)]


def story_json(ref: str, records: Sequence[ProofRecord]) -> dict[str, Any]:
    """The whole story as one JSON document (``proofs show --json``)."""
    hashes = sorted({r.content_sha256 for r in records if r.content_sha256})
    return {"message_id": ref, "content_sha256": hashes,
            "events": [e.as_json() for e in timeline(records)]}


def story_text(ref: str, records: Sequence[ProofRecord]) -> list[str]:
    """The whole story as lines: a heading, then ``#seq time kind sentence`` per event."""
    hashes = sorted({r.content_sha256 for r in records if r.content_sha256})
    heading = f"{ref}: {len(records)} proof(s)"
    if hashes:
        heading += f", content SHA-256 {', '.join(hashes)}"
    return [heading, *(f"#{e.record.seq} {_time(e.record)} {e.record.kind:<19} {e.summary}"
                       for e in timeline(records))]
