"""The RFC 8098 builder and the automatic-receipt rules of ``mail/mdn.py``."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from mail.mdn import DISPOSITION, build_mdn, decide, parse_headers

SENDER = "dr.bob@ch-exemple.mssante.fr"


def _headers(extra: str = "", sender: str = SENDER) -> bytes:
    return (f"From: Dr Bob <{sender}>\r\nTo: alice@mssante.test\r\nSubject: CR\r\n"
            f"Message-ID: <cr1@ch-exemple.mssante.fr>\r\n{extra}\r\n").encode()


def _decide(raw: bytes, policy: str = "always", special_use: str | None = None) -> str | None:
    return decide(parse_headers(raw), policy=policy, special_use=special_use,
                  is_local=lambda d: d == "mssante.test",
                  is_trusted=lambda d: d in ("mssante.test", "ch-exemple.mssante.fr")).to


def test_report_structure() -> None:
    raw = build_mdn(reporting_host="mail.mssante.test", final_recipient="alice@mssante.test",
                    to=SENDER, original_message_id="<cr1@ch-exemple.mssante.fr>",
                    original_subject="Compte rendu \u00e9chographie",
                    now=datetime(2025, 1, 6, 9, 0, tzinfo=UTC))
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "disposition-notification"  # RFC 8098 §3
    assert msg["To"] == SENDER and msg["From"] == "alice@mssante.test"
    assert msg["Subject"] == "Read: Compte rendu \u00e9chographie"
    assert msg["Auto-Submitted"] == "auto-replied"
    human, machine = msg.iter_parts()
    assert human.get_content_type() == "text/plain" and "displayed" in human.get_content()
    assert machine.get_content_type() == "message/disposition-notification"
    fields = machine.get_payload()[0]
    assert fields["Reporting-UA"] == "mail.mssante.test; mssante-gateway"
    assert fields["Final-Recipient"] == "rfc822;alice@mssante.test"
    assert fields["Original-Message-ID"] == "<cr1@ch-exemple.mssante.fr>"
    assert fields["Disposition"] == DISPOSITION
    assert fields["Disposition"] == "automatic-action/MDN-sent-automatically; displayed"


def test_sent_when_everything_allows_it() -> None:
    assert _decide(_headers(f"Disposition-Notification-To: <{SENDER}>\r\n")) == SENDER
    # A Return-Path equal to the request wins over a different From (RFC 8098 §2.1).
    raw = _headers(f"Return-Path: <{SENDER}>\r\nDisposition-Notification-To: {SENDER}\r\n",
                   sender="secretariat@ch-exemple.mssante.fr")
    assert _decide(raw) == SENDER


@pytest.mark.parametrize(("raw", "policy", "special_use", "reason"), [
    (_headers(f"Disposition-Notification-To: {SENDER}\r\n"), "ask", None, "policy ask"),
    (_headers(f"Disposition-Notification-To: {SENDER}\r\n"), "never", None, "policy never"),
    (_headers(), "always", None, "no receipt requested"),
    (_headers(f"Disposition-Notification-To: {SENDER}\r\n"), "always", "\\Sent", "\\Sent"),
    (_headers(f"Disposition-Notification-To: {SENDER}\r\n"), "always", "\\Drafts", "\\Drafts"),
    (_headers("Disposition-Notification-To: spy@ch-exemple.mssante.fr\r\n"), "always", None,
     "differs from the sender"),
    (_headers("Disposition-Notification-To: a@x.fr, b@y.fr\r\n"), "always", None,
     "no single address"),
    (_headers("Disposition-Notification-To: x@gmail.example\r\n", sender="x@gmail.example"),
     "always", None, "outside the trust space"),
    (_headers(f"Disposition-Notification-To: {SENDER}\r\nContent-Type: multipart/report; "
              "report-type=disposition-notification\r\n"), "always", None,
     "itself a disposition notification"),
])
def test_not_sent(raw: bytes, policy: str, special_use: str | None, reason: str) -> None:
    decision = decide(parse_headers(raw), policy=policy, special_use=special_use,
                      is_local=lambda d: False,
                      is_trusted=lambda d: d == "ch-exemple.mssante.fr")
    assert decision.to is None
    assert reason in decision.reason
