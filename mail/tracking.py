"""Where each recipient of a sent message stands, from the message's proofs.

The webmail's "suivi" shows, per recipient, the furthest step the proofs establish:
submitted, relayed to the other operator, delivered, read — or failed, with the reason.
The same records tell :mod:`mail.timeline`'s story; here they are folded per recipient.
Reports that came back (a "delivered" or "failed" DSN from the final operator, an MDN)
count as evidence for the recipient they name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.proofs import ProofRecord

STEPS = ("submitted", "deferred", "relayed", "delivered", "read")
"""Order of progress; ``failed`` stands apart (it ends the story)."""


@dataclass
class RecipientStatus:
    """One recipient: the state reached and when each step happened."""

    address: str
    state: str = "submitted"
    times: dict[str, datetime] = field(default_factory=dict)
    operator: str | None = None
    reason: str | None = None

    def _reach(self, step: str, when: datetime) -> None:
        self.times.setdefault(step, when)
        if self.state == "failed":
            return
        if STEPS.index(step) >= STEPS.index(self.state):
            self.state = step


@dataclass
class Tracking:
    """A sent message: its Message-ID, submission time, content hash and recipients."""

    message_ref: str
    submitted_at: datetime
    content_sha256: str | None
    actor: str | None
    recipients: list[RecipientStatus]

    def unread_after(self, now: datetime, days: int) -> bool:
        """Sent more than ``days`` days ago and not read by every recipient."""
        old = (now - self.submitted_at).total_seconds() > days * 86400
        return old and any(r.state != "read" for r in self.recipients)


def _key(address: Any) -> str:
    text = str(address or "")
    kind, sep, rest = text.partition(";")  # rfc822;addr in reports
    if sep and "@" not in kind:
        text = rest
    return text.strip().strip("<>").lower()


def track(records: Sequence[ProofRecord]) -> Tracking | None:
    """The per-recipient state of the message whose proofs are ``records`` (None without
    a ``submitted`` proof: not a message sent from here)."""
    ordered = sorted(records, key=lambda r: r.seq)
    submitted = next((r for r in ordered if r.kind == "submitted"), None)
    if submitted is None:
        return None
    by_key: dict[str, RecipientStatus] = {}
    for address in submitted.details.get("recipients") or []:
        by_key.setdefault(_key(address), RecipientStatus(str(address)))

    def who(address: Any) -> RecipientStatus | None:
        return by_key.get(_key(address))

    for r in ordered:
        d = r.details
        if r.kind == "delivered":
            found = who(d.get("mailbox") or r.actor)
            if found:
                found._reach("delivered", r.created_at)
        elif r.kind in ("relayed", "deferred"):
            found = who(d.get("recipient") or r.actor)
            if found:
                found._reach(r.kind, r.created_at)
                if r.kind == "relayed":
                    found.operator = str(d.get("remote_host") or "") or None
                else:
                    found.reason = str(d.get("reply") or "") or None
        elif r.kind == "bounced":
            found = who(d.get("recipient") or r.actor)
            if found:
                found.state = "failed"
                found.times.setdefault("failed", r.created_at)
                found.reason = str(d.get("reply") or d.get("status") or "")
        elif r.kind == "read":
            found = who(d.get("mailbox") or r.actor)
            if found:
                found._reach("read", r.created_at)
        elif r.kind == "dsn-received":
            for item in d.get("recipients") or []:
                found = who(item.get("final_recipient"))
                if found is None:
                    continue
                action = str(item.get("action") or "")
                if action == "delivered":
                    found._reach("delivered", r.created_at)
                elif action == "failed":
                    found.state = "failed"
                    found.times.setdefault("failed", r.created_at)
                    found.reason = str(item.get("diagnostic") or item.get("status") or "")
        elif r.kind == "mdn-received":
            for item in d.get("recipients") or [{}]:
                found = who(item.get("final_recipient") or r.actor)
                if found is not None and str(item.get("disposition", "")).find(
                        "displayed") >= 0:
                    found._reach("read", r.created_at)
    return Tracking(message_ref=str(submitted.message_ref), submitted_at=submitted.created_at,
                    content_sha256=submitted.content_sha256, actor=submitted.actor,
                    recipients=list(by_key.values()))
