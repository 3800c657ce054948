"""The relay and submission policy, one decision per test, and the Refusal type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import DEV_SERVER_POLICY
from tests.fixtures.pki import DevPkiBundle
from tests.fixtures.whitelist import SAMPLE_WHITELIST
from trustspace.certprofiles import Family, PolicyOids
from trustspace.certs import fingerprint_sha256
from trustspace.pki import issue_certificate
from trustspace.policy import (
    Address,
    MailboxStatus,
    PeerIdentity,
    RelayRules,
    SenderBinding,
    check_from_header,
    check_mailbox,
    check_relay_from,
    check_relay_peer,
    check_relay_recipient,
    check_relay_sender,
    check_submission_recipient,
    check_submission_sender,
    parse_address,
    parse_forward_path,
    parse_reverse_path,
    split_address,
)
from trustspace.refusal import Refusal
from trustspace.whitelist import TrustSpace, parse_whitelist

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LOCAL = "mssante.test"
USER = "dr.martin@mssante.test"
ORG = "secretariat.cardio@mssante.test"


@pytest.fixture(scope="module")
def trust() -> TrustSpace:
    return parse_whitelist(SAMPLE_WHITELIST, source="sample", local_domains=[LOCAL])


def refusal(fn, *args) -> Refusal:  # type: ignore[no-untyped-def]
    with pytest.raises(Refusal) as err:
        fn(*args)
    return err.value


# -- Refusal ------------------------------------------------------------------------------------


def test_refusal_knows_its_reply() -> None:
    r = Refusal(550, "5.7.1", "example.org is not in the MSSanté trust space")
    assert r.smtp_reply(utf8=True) == "550 5.7.1 example.org is not in the MSSanté trust space"
    assert not r.temporary
    assert Refusal(451, "4.3.0", "try later").temporary


def test_refusal_reply_is_ascii_unless_smtputf8() -> None:
    r = Refusal.not_in_trust_space("example.org")
    assert r.smtp_reply() == "550 5.7.1 example.org is not in the MSSante trust space"
    assert r.smtp_reply(utf8=True).endswith("MSSanté trust space")


def test_refusal_keeps_an_imap_code() -> None:
    assert Refusal(535, "5.7.8", "bad credentials", imap_code="AUTHENTICATIONFAILED").imap_code \
        == "AUTHENTICATIONFAILED"


def test_refusal_text_cannot_inject_a_line() -> None:
    r = Refusal(550, "5.7.1", "bad\r\n250 OK")
    assert "\r" not in r.smtp_reply() and "\n" not in r.smtp_reply()


@pytest.mark.parametrize(
    ("code", "enhanced", "text"),
    [(250, "2.0.0", "ok"), (550, "4.7.1", "x"), (450, "5.7.1", "x"), (550, "5.7", "x"),
     (550, "5.7.1", "  ")],
)
def test_refusal_rejects_inconsistent_codes(code: int, enhanced: str, text: str) -> None:
    with pytest.raises(ValueError):
        Refusal(code, enhanced, text)


# -- address parsing ----------------------------------------------------------------------------


def test_split_address_uses_last_at_and_strips_brackets() -> None:
    assert split_address('<"a@b"@mssante.test>') == ('"a@b"', "mssante.test")
    assert split_address("<@relay.example:u@mssante.test>") == ("u", "mssante.test")


def test_parse_address_normalises_a_unicode_domain() -> None:
    assert parse_address("Patient@Hôpital-É.mssante.fr") == Address(
        "Patient", "xn--hpital--hya6g.mssante.fr"
    )


def test_parse_address_accepts_smtputf8_local_part() -> None:
    addr = parse_address("élodie.müller@mssante.test")
    assert addr.local == "élodie.müller"
    assert addr.needs_smtputf8


def test_parse_address_accepts_quoted_local_part() -> None:
    assert parse_address('"dr martin"@mssante.test').local == '"dr martin"'


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("nodomain", "no @domain"),
        ("@mssante.test", "local part before @ is empty"),
        ("user@", "domain after @ is empty"),
        ("a b@mssante.test", "characters not allowed"),
        ("a..b@mssante.test", "characters not allowed"),
        ("x" * 65 + "@mssante.test", "longer than 64 octets"),
        ("user@[192.0.2.1]", "address literals"),
        ("user@bad_domain.fr", "not a valid domain"),
    ],
)
def test_parse_address_refuses_bad_syntax_naming_the_value(value: str, why: str) -> None:
    r = refusal(parse_address, value)
    assert (r.smtp_code, r.enhanced) == (553, "5.1.3")
    assert why in r.text


def test_bad_sender_syntax_uses_sender_code() -> None:
    r = refusal(parse_reverse_path, "not-an-address")
    assert (r.smtp_code, r.enhanced) == (553, "5.1.7")


def test_null_reverse_path() -> None:
    assert parse_reverse_path("<>") is None
    assert parse_reverse_path("") is None


def test_bare_postmaster_is_ours() -> None:
    # RFC 5321 §4.1.1.3
    assert parse_forward_path("<Postmaster>", LOCAL) == Address("postmaster", LOCAL)


# -- relay: peer --------------------------------------------------------------------------------

RULES = RelayRules()


@pytest.fixture(scope="module")
def operator_cert(tmp_path_factory: pytest.TempPathFactory, dev_pki: DevPkiBundle) -> Any:
    """A dev-PKI server certificate of ch-exemple.mssante.fr (in the sample trust space)."""
    return issue_certificate(dev_pki.pki, "server", domain="ch-exemple.mssante.fr",
                             out_dir=tmp_path_factory.mktemp("operator")).certificate


def _peer(cert: Any, **kwargs: Any) -> PeerIdentity:
    return PeerIdentity(verified=True, subject="CN=x", fingerprint=fingerprint_sha256(cert),
                        not_after=NOW + timedelta(days=30), certificate=cert, **kwargs)


def test_relay_peer_without_tls_must_starttls(trust: TrustSpace) -> None:
    r = refusal(check_relay_peer, False, None, NOW, trust, RULES)
    assert r.smtp_reply() == "530 5.7.0 must issue a STARTTLS command first"


def test_relay_peer_without_certificate(trust: TrustSpace) -> None:
    r = refusal(check_relay_peer, True, None, NOW, trust, RULES)
    assert (r.smtp_code, r.enhanced) == (530, "5.7.0")
    assert "client certificate" in r.text


def test_relay_peer_with_unverified_certificate_says_why(trust: TrustSpace) -> None:
    peer = PeerIdentity(verified=False, subject="CN=x", error="unable to get local issuer")
    r = refusal(check_relay_peer, True, peer, NOW, trust, RULES)
    assert (r.smtp_code, r.enhanced) == (550, "5.7.1")
    assert "unable to get local issuer" in r.text


def test_relay_peer_with_expired_certificate(trust: TrustSpace) -> None:
    peer = PeerIdentity(verified=True, subject="CN=x", not_after=NOW - timedelta(days=1))
    r = refusal(check_relay_peer, True, peer, NOW, trust, RULES)
    assert (r.smtp_code, r.enhanced) == (550, "5.7.1")
    assert "expired on 2024-05-31" in r.text


def test_relay_peer_operator_server_certificate_is_accepted(
    trust: TrustSpace, operator_cert: Any
) -> None:
    peer = check_relay_peer(True, _peer(operator_cert), NOW, trust, RULES)
    assert peer.family is Family.SERVER
    assert peer.domains == ("ch-exemple.mssante.fr",)  # mx.ch-exemple… counts for it


@pytest.mark.parametrize(("which", "phrase"), [
    ("cps", "it is a personal certificate"),
    ("app", "it is an applicative (organisation) certificate"),
    # hopital-b.mssante.test is not in the sample list: only a host under our mssante.test.
    ("peer_server", "not another operator of the MSSanté trust space"),
])
def test_relay_peer_other_certificates_are_refused(
    trust: TrustSpace, dev_pki: DevPkiBundle, which: str, phrase: str
) -> None:
    cert = getattr(dev_pki, which).certificate
    r = refusal(check_relay_peer, True, _peer(cert), NOW, trust, RULES)
    assert (r.smtp_code, r.enhanced) == (550, "5.7.1")
    assert phrase in r.text


def test_relay_peer_without_known_policy_is_refused(trust: TrustSpace, operator_cert: Any) -> None:
    rules = RelayRules(policies=PolicyOids(server=frozenset({"1.2.3.4"})))
    r = refusal(check_relay_peer, True, _peer(operator_cert), NOW, trust, rules)
    assert "no certificate policy" in r.text and DEV_SERVER_POLICY in r.text


def test_relay_peers_table_admits_and_maps(trust: TrustSpace, dev_pki: DevPkiBundle) -> None:
    cert = dev_pki.peer_server.certificate
    key = f"sha256:{fingerprint_sha256(cert)}"
    rules = RelayRules(peers={key: ("medecin.mssante.fr",)})
    peer = check_relay_peer(True, _peer(cert), NOW, trust, rules)
    assert peer.domains == () and peer.mapped == ("medecin.mssante.fr",)
    assert check_relay_sender("<a@medecin.mssante.fr>", trust, peer, SenderBinding.CERTIFICATE)
    r = refusal(check_relay_sender, "<a@ght-sud.mssante.fr>", trust, peer,
                SenderBinding.CERTIFICATE)
    assert "not a domain of the relaying operator" in r.text


@pytest.mark.parametrize("binding", list(SenderBinding))
def test_relay_sender_never_our_domain(trust: TrustSpace, binding: SenderBinding) -> None:
    r = refusal(check_relay_sender, f"<{USER}>", trust, None, binding)
    assert (r.smtp_code, r.enhanced) == (550, "5.7.1")
    assert "mssante.test is a domain of this operator" in r.text
    r = refusal(check_relay_from, [f"a@mx.{LOCAL}"], trust, None, binding)
    assert "From header" in r.text


def test_relay_from_modes(trust: TrustSpace, operator_cert: Any) -> None:
    peer = check_relay_peer(True, _peer(operator_cert), NOW, trust, RULES)
    outside = ["x@example.org"]
    assert check_relay_from(outside, trust, peer, SenderBinding.NONE) == []
    r = refusal(check_relay_from, outside, trust, peer, SenderBinding.TRUST_SPACE)
    assert "example.org, which is not in the MSSanté trust space" in r.text
    other = ["dr@medecin.mssante.fr"]
    assert check_relay_from(other, trust, peer, SenderBinding.TRUST_SPACE) == [
        "medecin.mssante.fr"]
    refusal(check_relay_from, other, trust, peer, SenderBinding.CERTIFICATE)
    bounce = ["MAILER-DAEMON@mx.ch-exemple.mssante.fr"]
    assert check_relay_from(bounce, trust, peer, SenderBinding.CERTIFICATE) == [
        "ch-exemple.mssante.fr"]


# -- relay: MAIL FROM ---------------------------------------------------------------------------


def test_relay_sender_in_trust_space(trust: TrustSpace) -> None:
    assert check_relay_sender("<a@ch-exemple.mssante.fr>", trust) == Address(
        "a", "ch-exemple.mssante.fr"
    )


def test_relay_sender_outside_trust_space(trust: TrustSpace) -> None:
    r = refusal(check_relay_sender, "<spam@example.org>", trust)
    assert r.text == "example.org is not in the MSSanté trust space"
    assert r.smtp_reply(utf8=True) == "550 5.7.1 example.org is not in the MSSanté trust space"


def test_relay_sender_unicode_in_list_arriving_as_a_label(trust: TrustSpace) -> None:
    assert check_relay_sender("x@xn--hpital--hya6g.mssante.fr", trust) is not None


def test_relay_sender_unicode_outside_list_is_named_as_a_label(trust: TrustSpace) -> None:
    r = refusal(check_relay_sender, "x@hôpital-è.mssante.fr", trust)
    assert r.smtp_code == 550 and r.enhanced == "5.7.1"
    assert r.text.startswith("xn--")
    assert r.smtp_reply().isascii()


def test_relay_null_sender_is_accepted(trust: TrustSpace) -> None:
    assert check_relay_sender("<>", trust) is None


# -- relay: RCPT TO -----------------------------------------------------------------------------


def test_relay_recipient_local(trust: TrustSpace) -> None:
    assert check_relay_recipient("<dr.martin@MSSANTE.test>", trust, LOCAL).domain == LOCAL


def test_relay_recipient_not_local_is_never_relayed(trust: TrustSpace) -> None:
    # Even a trusted domain: we are not its operator, so no open relay.
    r = refusal(check_relay_recipient, "<a@ch-exemple.mssante.fr>", trust, LOCAL)
    assert (r.smtp_code, r.enhanced) == (550, "5.7.1")
    assert "relay denied" in r.text


def test_relay_recipient_unknown_mailbox() -> None:
    r = refusal(check_mailbox, Address("nobody", LOCAL), MailboxStatus.UNKNOWN)
    assert (r.smtp_code, r.enhanced) == (550, "5.1.1")
    assert "nobody@mssante.test" in r.text


def test_relay_recipient_suspended_mailbox() -> None:
    r = refusal(check_mailbox, Address("dr.x", LOCAL), MailboxStatus.SUSPENDED)
    assert (r.smtp_code, r.enhanced) == (550, "5.2.1")


def test_relay_recipient_active_mailbox() -> None:
    assert check_mailbox(Address("dr.x", LOCAL), MailboxStatus.ACTIVE) == Address("dr.x", LOCAL)


def test_postmaster_is_always_accepted() -> None:
    # RFC 5321 §4.5.1
    assert check_mailbox(Address("PostMaster", LOCAL), MailboxStatus.UNKNOWN).is_postmaster


# -- submission ---------------------------------------------------------------------------------


def test_submission_sender_is_the_authenticated_mailbox() -> None:
    assert check_submission_sender("<Dr.Martin@mssante.test>", USER) == Address(
        "Dr.Martin", LOCAL
    )


def test_submission_sender_organisational_mailbox_allowed() -> None:
    assert check_submission_sender(f"<{ORG}>", USER, [ORG]) is not None


def test_submission_sender_someone_else_is_refused() -> None:
    r = refusal(check_submission_sender, "<dr.durand@mssante.test>", USER, [ORG])
    assert r.smtp_reply() == (
        "553 5.7.1 dr.martin@mssante.test is not allowed to send as dr.durand@mssante.test"
    )


def test_submission_null_sender_allowed_for_notifications() -> None:
    assert check_submission_sender("<>", USER) is None


def test_from_header_matches() -> None:
    assert check_from_header([USER], USER) == [Address("dr.martin", LOCAL)]


def test_from_header_of_someone_else_is_refused() -> None:
    r = refusal(check_from_header, [USER, "boss@mssante.test"], USER, ())
    assert (r.smtp_code, r.enhanced) == (553, "5.7.1")
    assert "boss@mssante.test" in r.text


def test_from_header_missing_is_refused() -> None:
    r = refusal(check_from_header, [], USER, ())
    assert (r.smtp_code, r.enhanced) == (550, "5.6.0")


def test_submission_recipient_in_trust_space(trust: TrustSpace) -> None:
    assert check_submission_recipient("<x@medecin.mssante.fr>", trust, LOCAL)


def test_submission_recipient_local(trust: TrustSpace) -> None:
    assert check_submission_recipient("<x@mssante.test>", trust, LOCAL)


def test_submission_recipient_outside_trust_space(trust: TrustSpace) -> None:
    r = refusal(check_submission_recipient, "<friend@gmail.com>", trust, LOCAL)
    assert r.smtp_reply(utf8=True) == "550 5.7.1 gmail.com is not in the MSSanté trust space"


def test_submission_recipient_unicode_in_list(trust: TrustSpace) -> None:
    assert check_submission_recipient("<a@HÔPITAL-É.mssante.fr>", trust, LOCAL).domain == (
        "xn--hpital--hya6g.mssante.fr"
    )


def test_submission_recipient_a_label_of_unicode_list_entry(trust: TrustSpace) -> None:
    assert check_submission_recipient("<a@xn--hpital--hya6g.mssante.fr>", trust, LOCAL)


def test_submission_recipient_unicode_outside_list(trust: TrustSpace) -> None:
    r = refusal(check_submission_recipient, "<a@clinique-ü.example>", trust, LOCAL)
    assert r.smtp_code == 550 and "is not in the MSSanté trust space" in r.text


def test_submission_bare_postmaster(trust: TrustSpace) -> None:
    assert check_submission_recipient("<postmaster>", trust, LOCAL) == Address("postmaster", LOCAL)
