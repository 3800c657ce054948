"""RFC 3834 / RFC 5230 rules of the absence reply, each one alone, and the once-per-sender
period on both database engines."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mail.vacation import build_reply, reason_not_to_reply
from storage import vacations
from storage.accounts import create as create_account
from storage.database import Database
from storage.types import utcnow

USER = "durand@mssante.test"
SENDER = "martin@ch-exemple.mssante.fr"


def head(**fields: str) -> EmailMessage:
    values = {"From": SENDER, "To": USER, "Subject": "Résultats", "Message-ID": "<m1@x>",
              **fields}
    text = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in values.items() if v)
    msg = message_from_bytes((text + "\r\nbody\r\n").encode(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.mark.parametrize(("sender", "fields", "in_space", "reason"), [
    (SENDER, {}, True, None),
    (SENDER, {"To": "", "Cc": USER}, True, None),
    ("", {}, True, "null sender"),
    ("MAILER-DAEMON@ch-exemple.mssante.fr", {}, True, "daemon or list sender"),
    ("owner-cardio@ch-exemple.mssante.fr", {}, True, "daemon or list sender"),
    ("cardio-request@ch-exemple.mssante.fr", {}, True, "daemon or list sender"),
    (SENDER, {"Auto_Submitted": "auto-replied"}, True, "auto-submitted"),
    (SENDER, {"Auto_Submitted": "auto-generated"}, True, "auto-submitted"),
    (SENDER, {"Auto_Submitted": "no"}, True, None),
    (SENDER, {"Precedence": "bulk"}, True, "bulk or list precedence"),
    (SENDER, {"Precedence": "list"}, True, "bulk or list precedence"),
    (SENDER, {"List_Id": "<cardio.ch-exemple.mssante.fr>"}, True, "list message"),
    (SENDER, {"List_Unsubscribe": "<mailto:x@y>"}, True, "list message"),
    (SENDER, {"Content_Type": 'multipart/report; report-type=delivery-status; boundary="b"'},
     True, "delivery or read report"),
    (SENDER, {"To": "equipe@mssante.test"}, True, "not addressed to the user in To or Cc"),
    (SENDER, {}, False, "sender outside the trust space"),
])
def test_whom_to_answer(sender: str, fields: dict[str, str], in_space: bool,
                        reason: str | None) -> None:
    assert reason_not_to_reply(sender, head(**fields), [USER], in_space) == reason


def test_reply_fields() -> None:
    vacation = vacations.Vacation(1, True, None, None, "", "Je suis absent.",
                                  "remplacant@mssante.test", 7, 1)
    original = head(References="<m0@x>")
    raw = build_reply(vacation, USER, "Dr Durand", SENDER, original, "mx.mssante.test",
                      utcnow())
    reply = message_from_bytes(raw, policy=policy.default)
    assert str(reply["Auto-Submitted"]).startswith("auto-replied")
    assert reply["To"] == SENDER and reply["From"].addresses[0].addr_spec == USER
    assert reply["In-Reply-To"] == "<m1@x>" and reply["References"] == "<m0@x> <m1@x>"
    assert reply["Subject"] == "Absent : Résultats"
    body = reply.get_body(("plain",)).get_content()
    assert "Je suis absent." in body and "remplacant@mssante.test" in body


async def test_once_per_sender_per_period(database: Database) -> None:
    async with database.begin() as conn:
        account = await create_account(conn, address=USER, type="PER", display_name="Dr D")
        vacation = await vacations.save(conn, account.id, enabled=True, starts_at=None,
                                        ends_at=None, subject="", body="absent",
                                        contact="", days=7)
    now = utcnow()
    async with database.begin() as conn:
        assert await vacations.claim_reply(conn, vacation, SENDER, now)
        assert not await vacations.claim_reply(conn, vacation, SENDER.upper(), now)
        assert not await vacations.claim_reply(conn, vacation, SENDER,
                                               now + timedelta(days=6))
        assert await vacations.claim_reply(conn, vacation, "other@ch-exemple.mssante.fr", now)
        assert await vacations.claim_reply(conn, vacation, SENDER, now + timedelta(days=8))
    async with database.begin() as conn:  # a changed message: a new period, answered again
        changed = await vacations.save(conn, account.id, enabled=True, starts_at=None,
                                       ends_at=None, subject="", body="toujours absent",
                                       contact="", days=7)
        assert changed.period == vacation.period + 1
        assert await vacations.claim_reply(conn, changed, SENDER, now + timedelta(days=9))
    assert changed.active(now)
    later = vacations.Vacation(1, True, now + timedelta(days=1), None, "", "", "", 7, 1)
    assert not later.active(now)
    ended = vacations.Vacation(1, True, None, now, "", "", "", 7, 1)
    assert not ended.active(now)
