"""Relay and submission policy as pure functions: inputs in, an accepted value or a Refusal out.

The SMTP front-ends call these at each step (connection, MAIL, RCPT, end of DATA) so that a
refusal comes early and with the right code. Nothing here does I/O: the caller looks up the
mailbox status or the delegations and passes them in, which keeps every decision testable
row by row and identical across the relay and submission servers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from trustspace.refusal import Refusal
from trustspace.whitelist import InvalidDomain, TrustSpace, normalise_domain, to_unicode

POSTMASTER = "postmaster"

# RFC 5322 §3.2.3 atext, plus any non-ASCII character for SMTPUTF8 (RFC 6531 §3.3).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
_DOT_STRING = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
# RFC 5321 §4.1.2 Quoted-string with qtextSMTP / quoted-pairSMTP (+ UTF-8 per RFC 6531 §3.3).
_QUOTED_STRING = re.compile(r'^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"$')
# RFC 5321 §4.1.2 A-d-l: an obsolete source route, accepted and ignored (§C, §4.1.1.3).
_SOURCE_ROUTE = re.compile(r"^@[^:,]+(?:,@[^:,]+)*:")


class MailboxStatus(StrEnum):
    """What the caller found for a local recipient."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Address:
    """A mailbox address: local part as given, domain normalised to lower-case A-labels.

    ``domain`` is empty only for the bare ``<postmaster>`` recipient (RFC 5321 §4.1.1.3).
    """

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local

    @property
    def unicode_domain(self) -> str:
        """The domain in Unicode, for people."""
        return to_unicode(self.domain) if self.domain else ""

    @property
    def needs_smtputf8(self) -> bool:
        """True when the local part is not ASCII (RFC 6531 §3.3: needs SMTPUTF8)."""
        return not self.local.isascii()

    @property
    def is_postmaster(self) -> bool:
        # RFC 5321 §4.5.1: "postmaster" is case-insensitive.
        return self.local.lower() == POSTMASTER

    def key(self) -> str:
        """A comparison key: local part folded to lower case, domain normalised.

        RFC 5321 §2.4 lets the receiving host decide local-part case; mailboxes of this
        operator are case-insensitive, so ``Dr.Martin`` and ``dr.martin`` are one mailbox.
        """
        return f"{self.local.lower()}@{self.domain}"


@dataclass(frozen=True)
class PeerIdentity:
    """What TLS learned of a relaying peer's client certificate, for the policy to judge.

    ``verified`` is the TLS verdict (chain to a configured anchor, validity, CRLs);
    ``error`` says why it failed, so the refusal can tell the peer's administrator.
    """

    verified: bool
    subject: str = ""
    fingerprint: str = ""
    not_after: datetime | None = None
    error: str = ""


# -- address parsing -------------------------------------------------------------------------


def _shown(domain: str) -> str:
    """A domain as it may appear in a reply: as given when ASCII, else its A-label form.

    SMTP replies are ASCII unless SMTPUTF8 was negotiated (RFC 6531 §3.7.4), so a Unicode
    name the client sent is echoed as its A-label, which is the same name.
    """
    text = domain.strip().rstrip(".")
    if text.isascii():
        return text.lower()
    try:
        return normalise_domain(text)
    except InvalidDomain:
        return text.encode("ascii", "backslashreplace").decode("ascii")


def split_address(value: str) -> tuple[str, str]:
    """Splits ``local@domain`` at the last ``@`` (a quoted local part may contain one).

    Angle brackets and an obsolete source route are removed first. Raises ValueError with
    the reason when there is no ``@`` or a side is empty.
    """
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    text = _SOURCE_ROUTE.sub("", text)
    local, at, domain = text.rpartition("@")
    if not at:
        raise ValueError("it has no @domain part")
    if not local:
        raise ValueError("the local part before @ is empty")
    if not domain:
        raise ValueError("the domain after @ is empty")
    return local, domain


def _check_local_part(local: str) -> None:
    if len(local.encode("utf-8")) > 64:  # RFC 5321 §4.5.3.1.1
        raise ValueError("the local part is longer than 64 octets")
    if not (_DOT_STRING.match(local) or _QUOTED_STRING.match(local)):
        raise ValueError("the local part contains characters not allowed in an address")


def parse_address(value: str, *, role: str = "recipient") -> Address:
    """Parses a mailbox (``<a@b>`` or ``a@b``) into an :class:`Address`, or refuses it.

    Non-ASCII local parts are allowed (SMTPUTF8, RFC 6531 §3.3); the domain may be given in
    Unicode or as A-labels and is normalised. Address literals (``[192.0.2.1]``) are refused:
    the trust space is a list of domain names, so a literal can never be in it.
    ``role`` ("sender" or "recipient") picks the enhanced code (RFC 3463 X.1.7 / X.1.3).
    """
    bad = Refusal.bad_sender_syntax if role == "sender" else Refusal.bad_recipient_syntax
    if len(value.encode("utf-8")) > 256:  # RFC 5321 §4.5.3.1.3: path ≤ 256 octets
        raise bad(value[:64] + "…", "it is longer than 256 octets")
    try:
        local, domain = split_address(value)
        _check_local_part(local)
    except ValueError as exc:
        raise bad(value, str(exc)) from None
    if domain.startswith("["):
        raise bad(value, "address literals are not accepted, use a domain name")
    try:
        name = normalise_domain(domain)
    except InvalidDomain:
        raise bad(value, f"{domain!r} is not a valid domain name") from None
    return Address(local=local, domain=name)


def parse_reverse_path(value: str) -> Address | None:
    """MAIL FROM: None for the null reverse-path ``<>`` (RFC 5321 §4.5.5), else the sender."""
    if value.strip() in ("", "<>"):
        return None
    return parse_address(value, role="sender")


def parse_forward_path(value: str, default_domain: str) -> Address:
    """RCPT TO: the recipient; a bare ``<postmaster>`` is our postmaster (RFC 5321 §4.1.1.3)."""
    text = value.strip()
    bare = text[1:-1].strip() if text.startswith("<") and text.endswith(">") else text
    if bare.lower() == POSTMASTER:
        return Address(local=POSTMASTER, domain=normalise_domain(default_domain))
    return parse_address(value, role="recipient")


# -- relay: another MSSanté operator hands us mail ---------------------------------------------


def check_relay_peer(
    tls_active: bool, peer: PeerIdentity | None, now: datetime
) -> PeerIdentity:
    """Decides whether a relaying peer may go on to MAIL FROM; returns its identity.

    * no TLS → ``530 5.7.0`` (RFC 3207 §4: must issue STARTTLS first);
    * TLS but no client certificate → ``530 5.7.0``. 530 is RFC 4954 §6's "authentication
      required": between operators the client certificate *is* the authentication, so the
      peer's administrator is told to configure it, not that the message was bad (550 5.7.1
      would read as a content or address refusal);
    * a certificate TLS could not verify, or past its ``not_after`` → ``550 5.7.1`` with
      the reason, since retrying with the same certificate can never succeed.
    """
    if not tls_active:
        raise Refusal.starttls_required()
    if peer is None:
        raise Refusal.certificate_required()
    if not peer.verified:
        raise Refusal.certificate_refused(
            peer.error or "it does not chain to a trust anchor of the health PKI"
        )
    if peer.not_after is not None and peer.not_after <= now:
        raise Refusal.certificate_refused(
            f"it expired on {peer.not_after.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}"
        )
    return peer


def check_relay_sender(reverse_path: str, trust: TrustSpace) -> Address | None:
    """MAIL FROM on the relay: the sender's domain must be in the trust space.

    The null reverse-path is accepted: RFC 5321 §4.5.5 requires accepting bounces (DSN,
    MDN) and the peer is already authenticated by its certificate.
    """
    sender = parse_reverse_path(reverse_path)
    if sender is not None and not trust.contains(sender.domain):
        _, domain = split_address(reverse_path)
        raise Refusal.not_in_trust_space(_shown(domain))
    return sender


def check_relay_recipient(forward_path: str, trust: TrustSpace, default_domain: str) -> Address:
    """RCPT TO on the relay: only our own domains, never an open relay (RFC 5321 §3.6.2)."""
    rcpt = parse_forward_path(forward_path, default_domain)
    if not trust.is_local(rcpt.domain):
        raise Refusal.relay_denied(rcpt.domain)
    return rcpt


def check_mailbox(rcpt: Address, status: MailboxStatus) -> Address:
    """A local recipient once its mailbox was looked up: unknown → 5.1.1, suspended → 5.2.1.

    The postmaster is always accepted (RFC 5321 §4.5.1: it MUST be), the caller routes it
    to the administrators.
    """
    if rcpt.is_postmaster:
        return rcpt
    if status is MailboxStatus.UNKNOWN:
        raise Refusal.unknown_mailbox(str(rcpt))
    if status is MailboxStatus.SUSPENDED:
        raise Refusal.mailbox_disabled(str(rcpt))
    return rcpt


# -- submission: an authenticated user sends ---------------------------------------------------


def _allowed_keys(authenticated: str, may_send_as: Iterable[str]) -> set[str]:
    keys = {parse_address(authenticated, role="sender").key()}
    for other in may_send_as:
        keys.add(parse_address(other, role="sender").key())
    return keys


def check_submission_sender(
    reverse_path: str, authenticated: str, may_send_as: Iterable[str] = ()
) -> Address | None:
    """MAIL FROM on submission: the user's own mailbox, or one it may send as (ORG).

    The null reverse-path is allowed because RFC 8098 §3 and RFC 3464 §2 want MDNs and DSNs
    sent with it; the From header is still checked at the end of DATA, so ``<>`` cannot be
    used to send mail under someone else's name. Anything else → ``553 5.7.1``.
    """
    sender = parse_reverse_path(reverse_path)
    if sender is None:
        return None
    if sender.key() not in _allowed_keys(authenticated, may_send_as):
        raise Refusal.sender_not_allowed(str(sender), authenticated)
    return sender


def check_from_header(
    from_addresses: Sequence[str], authenticated: str, may_send_as: Iterable[str] = ()
) -> list[Address]:
    """End of DATA on submission: every From mailbox must be one the user may send as.

    RFC 5322 §3.6.2 allows several From mailboxes; each of them would be shown to the
    recipient as an author, so each one is checked. A message without From is refused
    (RFC 5322 §3.6: From is mandatory).
    """
    if not from_addresses:
        raise Refusal(550, "5.6.0", "the message has no From header, which RFC 5322 requires")
    allowed = _allowed_keys(authenticated, may_send_as)
    parsed = [parse_address(a, role="sender") for a in from_addresses]
    for address in parsed:
        if address.key() not in allowed:
            raise Refusal.sender_not_allowed(str(address), authenticated)
    return parsed


def check_submission_recipient(
    forward_path: str, trust: TrustSpace, default_domain: str
) -> Address:
    """RCPT TO on submission: any mailbox whose domain is in the trust space (or ours)."""
    rcpt = parse_forward_path(forward_path, default_domain)
    if not trust.contains(rcpt.domain):
        _, domain = split_address(forward_path)
        raise Refusal.not_in_trust_space(_shown(domain))
    return rcpt
