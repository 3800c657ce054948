"""Per-recipient tracking folded from a message's proofs: each kind of evidence moves the
recipient it names, and only that one; failures keep their reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mail.tracking import track
from storage.proofs import ProofRecord

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LOCAL = "bernard@mssante.test"
REMOTE = "martin@ch-exemple.mssante.fr"
GONE = "petit@hopital-b.mssante.test"
SLOW = "roux@hopital-b.mssante.test"


def rec(seq: int, kind: str, actor: str | None, **details: Any) -> ProofRecord:
    return ProofRecord(seq=seq, kind=kind, created_at=T0 + timedelta(minutes=seq),
                       message_ref="<m@x>", content_sha256="ab" * 32, actor=actor,
                       details=details, prev_hash="", hash="")


def test_each_recipient_follows_its_own_evidence() -> None:
    records = [
        rec(1, "submitted", "durand@mssante.test",
            recipients=[LOCAL, REMOTE, GONE, SLOW], mail_from="durand@mssante.test"),
        rec(2, "delivered", LOCAL, mailbox=LOCAL),
        rec(3, "relayed", REMOTE, recipient=REMOTE, remote_host="mx.ch-exemple.mssante.fr"),
        rec(4, "deferred", SLOW, recipient=SLOW, reply="451 4.3.0 try later"),
        rec(5, "bounced", GONE, recipient=GONE, reply="550 5.1.1 no such mailbox"),
        rec(6, "dsn-received", "mx.ch-exemple.mssante.fr", recipients=[
            {"final_recipient": f"rfc822;{REMOTE}", "action": "delivered"}]),
        rec(7, "read", "secretaire@mssante.test", mailbox=LOCAL),
        rec(8, "mdn-received", REMOTE, recipients=[
            {"final_recipient": f"rfc822;{REMOTE}",
             "disposition": "manual-action/MDN-sent-manually; displayed"}]),
    ]
    tracking = track(records)
    assert tracking is not None
    by = {r.address: r for r in tracking.recipients}
    assert by[LOCAL].state == "read" and set(by[LOCAL].times) == {"delivered", "read"}
    assert by[REMOTE].state == "read" and by[REMOTE].operator == "mx.ch-exemple.mssante.fr"
    assert set(by[REMOTE].times) == {"relayed", "delivered", "read"}
    assert by[GONE].state == "failed" and by[GONE].reason == "550 5.1.1 no such mailbox"
    assert by[SLOW].state == "deferred" and "try later" in (by[SLOW].reason or "")
    assert tracking.unread_after(T0 + timedelta(days=3), 2)  # GONE and SLOW never read
    assert not tracking.unread_after(T0 + timedelta(days=1), 2)


def test_failure_reported_by_the_other_operator_and_not_read() -> None:
    records = [
        rec(1, "submitted", "durand@mssante.test", recipients=[REMOTE]),
        rec(2, "relayed", REMOTE, recipient=REMOTE),
        rec(3, "dsn-received", "mx", recipients=[
            {"final_recipient": f"rfc822;{REMOTE}", "action": "failed",
             "diagnostic": "smtp; 550 mailbox disabled"}]),
        rec(4, "mdn-received", REMOTE, recipients=[
            {"final_recipient": f"rfc822;{REMOTE}", "disposition": "automatic-action/"
             "MDN-sent-automatically; deleted"}]),
    ]
    tracking = track(records)
    assert tracking is not None
    (only,) = tracking.recipients
    assert only.state == "failed" and only.reason == "smtp; 550 mailbox disabled"
    assert track([rec(1, "delivered", LOCAL)]) is None, "not a message sent from here"
