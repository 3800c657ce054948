"""The RFC 3464 DSN builder, NOTIFY decisions, and destination resolution rules."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from config.transport import TransportTarget, parse_transport
from mail.dsn import RecipientReport, build_dsn, parse_notify, wants_dsn
from smtp.mx import MxResolver, ResolutionError, order_mx

ORIGINAL = b"From: a@x.test\r\nSubject: s\r\nMessage-ID: <o@x.test>\r\n\r\nsecret body\r\n"


def test_notify_rules() -> None:
    assert parse_notify(None) == {"FAILURE", "DELAY"}  # our documented default
    assert wants_dsn("a@x.test", None, "failed") and wants_dsn("a@x.test", None, "delayed")
    assert not wants_dsn("a@x.test", None, "relayed")
    assert wants_dsn("a@x.test", "SUCCESS", "relayed")
    assert not wants_dsn("a@x.test", "NEVER", "failed")
    assert not wants_dsn("", "FAILURE", "failed")  # RFC 3461 §6.2: never to <>


def test_delayed_dsn_structure_and_headers_only() -> None:
    dsn = build_dsn(
        reporting_mta="mx.x.test", postmaster="MAILER-DAEMON@x.test", to="a@x.test",
        recipients=[RecipientReport("b@y.test", "delayed", "4.2.1", "rfc822;B@y.test",
                                    "mx.y.test", "451 4.2.1\r\n busy",
                                    datetime(2024, 1, 2, tzinfo=UTC),
                                    datetime(2024, 1, 5, tzinfo=UTC))],
        original=ORIGINAL, envid="E1", arrival=datetime(2024, 1, 1, tzinfo=UTC),
    )
    msg = email.message_from_bytes(dsn.raw, policy=email.policy.default)
    assert msg["Message-ID"] == dsn.message_id and msg["Subject"].startswith("Delayed")
    human, status, returned = msg.iter_parts()
    per_message, per_rcpt = status.get_payload()
    assert per_message["Original-Envelope-Id"] == "E1"
    assert per_rcpt["Diagnostic-Code"] == "smtp;451 4.2.1 busy"  # one line
    assert per_rcpt["Will-Retry-Until"] and per_rcpt["Original-Recipient"] == "rfc822;B@y.test"
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in dsn.raw


def test_dsn_refuses_mixed_actions() -> None:
    with pytest.raises(ValueError, match="one action"):
        build_dsn(reporting_mta="m", postmaster="p@x.test", to="a@x.test", original=ORIGINAL,
                  recipients=[RecipientReport("b@y.test", "failed", "5.1.1"),
                              RecipientReport("c@y.test", "delayed", "4.2.1")])


def test_mx_order_null_mx_and_transport() -> None:
    ordered = order_mx([(20, "b.y.test."), (10, "a.y.test.")], "y.test")
    assert [d.host for d in ordered] == ["a.y.test", "b.y.test"]
    with pytest.raises(ResolutionError) as info:
        order_mx([(0, ".")], "y.test")  # RFC 7505 null MX
    assert info.value.permanent and info.value.enhanced == "5.1.10"
    assert parse_transport("127.0.0.1:2525") == TransportTarget("127.0.0.1", 2525)
    assert parse_transport("[::1]:26") == TransportTarget("::1", 26)
    assert parse_transport("relay.y.test") == TransportTarget("relay.y.test", 25)
    assert parse_transport("10.0.0.1:25 name=MX.Y.test") == TransportTarget(
        "10.0.0.1", 25, "mx.y.test")
    for bad, why in (("h:99999", "port"), ("h:²5", "port"), ("h:25 nom=x", "name="),
                     ("h:25 name=", "name="), ("[::1]x", "address")):
        with pytest.raises(ValueError, match=why):
            parse_transport(bad)


def test_certificate_name_of_a_transport_entry() -> None:
    """An address is not what a certificate names: check the destination domain instead."""
    assert parse_transport("127.0.0.1:2525").certificate_name("b.test") == "b.test"
    assert parse_transport("[::1]:2525").certificate_name("b.test") == "b.test"
    assert parse_transport("mx.b.test:25").certificate_name("b.test") == "mx.b.test"
    assert parse_transport("127.0.0.1:25 name=mx.b.test").certificate_name("b.test") == \
        "mx.b.test"


async def test_transport_override_wins_and_matches_unicode_domains() -> None:
    resolver = MxResolver({"hôpital-é.mssante.fr": "127.0.0.1:2525"}, nameservers=["127.0.0.1"],
                          dns_port=9, timeout=0.5)
    [dest] = await resolver.resolve("HÔPITAL-É.mssante.fr")
    assert (dest.host, dest.port, dest.from_transport) == ("127.0.0.1", 2525, True)
    assert dest.certificate_name == "xn--hpital--hya6g.mssante.fr"
    with pytest.raises(ResolutionError) as info:
        await resolver.resolve("nowhere.invalid-tld-test")  # no DNS answers on port 9
    assert not info.value.permanent and info.value.enhanced == "4.4.3"
