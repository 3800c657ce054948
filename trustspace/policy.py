"""Relay and submission policy as pure functions: inputs in, an accepted value or a Refusal out.

The SMTP front-ends call these at each step (connection, MAIL, RCPT, end of DATA) so that a
refusal comes early and with the right code. Nothing here does I/O: the caller looks up the
mailbox status or the delegations and passes them in, which keeps every decision testable
row by row and identical across the relay and submission servers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cryptography import x509

from config import Settings
from trustspace.certprofiles import Family, PolicyOids, classify
from trustspace.certs import fingerprint_sha256, san_dns_names
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
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)
    """The leaf certificate itself, whose policy, key usages and names the relay judges."""


class SenderBinding(StrEnum):
    """``[smtp] relay_sender_binding``: how far a relaying peer is tied to its senders.

    Whatever the mode, a peer never sends as one of our own domains.
    """

    NONE = "none"
    """Envelope sender in the trust space (the MSSanté rule); From: not checked further."""
    TRUST_SPACE = "trust-space"
    """Envelope sender and every From: domain in the trust space."""
    CERTIFICATE = "certificate"
    """And each of them named by the peer certificate or mapped to it in [relay_peers]."""


@dataclass(frozen=True)
class RelayRules:
    """What the relay needs from the configuration to judge a peer and its senders.

    ``peers`` is the ``[relay_peers]`` table with normalised keys: ``sha256:<hex>`` or a
    DNS name in A-label form, each mapped to sender domains in A-label form.
    """

    policies: PolicyOids = field(default_factory=PolicyOids)
    binding: SenderBinding = SenderBinding.TRUST_SPACE
    peers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> RelayRules:
        peers: dict[str, tuple[str, ...]] = {}
        for key, domains in settings.relay_peers.items():
            peers[_peer_key(key)] = tuple(
                d for d in (_normalised(x) for x in domains) if d is not None
            )
        return cls(
            policies=PolicyOids.from_settings(settings),
            binding=SenderBinding(settings.smtp.relay_sender_binding),
            peers=peers,
        )


@dataclass(frozen=True)
class RelayPeer:
    """A relaying peer the relay accepted, and the sender domains it stands for.

    ``domains`` are the trust-space domains its certificate names (a DNS name counts for
    the trust-space domain it is, or is a host under); ``mapped`` are those ``[relay_peers]``
    adds, ``mapped_by`` the table key that matched.
    """

    identity: PeerIdentity
    family: Family
    dns_names: tuple[str, ...]
    domains: tuple[str, ...]
    mapped: tuple[str, ...] = ()
    mapped_by: str = ""

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def subject(self) -> str:
        return self.identity.subject

    def names_domain(self, domain: str) -> bool:
        return domain in self.domains

    def maps_domain(self, domain: str) -> bool:
        return domain in self.mapped

    def describe_domains(self) -> str:
        return _few(self.domains) if self.domains else "no domain of the trust space"


def _normalised(domain: str) -> str | None:
    try:
        return normalise_domain(domain)
    except InvalidDomain:
        return None


def _peer_key(key: str) -> str:
    text = key.strip().lower()
    if text.startswith("sha256:"):
        return "sha256:" + text[len("sha256:"):].replace(":", "")
    return _normalised(text) or text


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
    tls_active: bool,
    peer: PeerIdentity | None,
    now: datetime,
    trust: TrustSpace,
    rules: RelayRules,
) -> RelayPeer:
    """Decides whether a relaying peer may go on to MAIL FROM; returns what it stands for.

    * no TLS → ``530 5.7.0`` (RFC 3207 §4: must issue STARTTLS first);
    * TLS but no client certificate → ``530 5.7.0``. 530 is RFC 4954 §6's "authentication
      required": between operators the client certificate *is* the authentication, so the
      peer's administrator is told to configure it, not that the message was bad (550 5.7.1
      would read as a content or address refusal);
    * a certificate TLS could not verify, or past its ``not_after`` → ``550 5.7.1`` with
      the reason, since retrying with the same certificate can never succeed;
    * a verified certificate that is not an operator's server certificate (a CPS card, an
      applicative certificate: same anchors, other use) or whose names are outside the
      trust space → ``550 5.7.1``: see :func:`check_operator_certificate`.
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
    return check_operator_certificate(peer, trust, rules)


_ONLY_SERVERS = (
    "only the server certificate of an MSSanté operator may relay mail between operators"
)


def check_operator_certificate(
    peer: PeerIdentity, trust: TrustSpace, rules: RelayRules
) -> RelayPeer:
    """The relay's rule on a verified certificate: an operator's server certificate only.

    Its family is read from its certificate policy and key usages (never its names); its
    DNS names (SAN dNSName) must include a domain of the trust space other than ours, or the
    certificate must be listed in ``[relay_peers]`` (an operator whose MTA host names lie
    outside its mail domains, admitted by configuration).
    """
    cert = peer.certificate
    if cert is None:
        raise Refusal.certificate_refused("it could not be read")
    found = classify(cert, rules.policies)
    if found.family is Family.UNKNOWN:
        raise Refusal.certificate_refused(f"{found.reason}; {_ONLY_SERVERS}")
    if found.family is not Family.SERVER:
        raise Refusal.certificate_refused(f"it is {found.words}; {_ONLY_SERVERS}")
    names = tuple(dict.fromkeys(n.lower().rstrip(".") for n in san_dns_names(cert)))
    domains: list[str] = []
    ours: list[str] = []
    for name in names:
        domain = _trust_space_domain(name, trust)
        if domain is None:
            continue
        target = ours if trust.is_local(domain) else domains
        if domain not in target:
            target.append(domain)
    fingerprint = peer.fingerprint or fingerprint_sha256(cert)
    mapped: list[str] = []
    mapped_by = ""
    for key in (f"sha256:{fingerprint.replace(':', '').lower()}", *names):
        if key in rules.peers:
            mapped_by = mapped_by or key
            mapped += [d for d in rules.peers[key] if d not in mapped]
    if not domains and not mapped_by:
        shown = _few(names)
        if ours:
            raise Refusal.certificate_refused(
                f"its server certificate names only domains of this operator ({shown}), "
                "not another operator of the MSSanté trust space"
            )
        raise Refusal.certificate_refused(
            f"none of the DNS names of its server certificate ({shown}) is a domain of the "
            "MSSanté trust space"
        )
    return RelayPeer(
        identity=peer, family=found.family, dns_names=names, domains=tuple(domains),
        mapped=tuple(mapped), mapped_by=mapped_by,
    )


def _few(values: Sequence[str], limit: int = 4) -> str:
    """Up to ``limit`` values for a reply line (RFC 5321 §4.5.3.1.5: 512 octets at most)."""
    if not values:
        return "none"
    more = len(values) - limit
    return ", ".join(values[:limit]) + (f" and {more} more" if more > 0 else "")


def _trust_space_domain(name: str, trust: TrustSpace) -> str | None:
    """The trust-space domain a certificate DNS name is, or is a host under; else None.

    ``mx.hopital-b.mssante.fr`` counts for ``hopital-b.mssante.fr``; a wildcard stands for
    its parent. Only suffixes of two labels or more are tried, never a bare top-level name.
    """
    text = name[2:] if name.startswith("*.") else name
    labels = text.split(".")
    for start in range(len(labels) - 1):
        candidate = ".".join(labels[start:])
        if trust.contains(candidate):
            return _normalised(candidate)
    return None


def check_relay_sender(
    reverse_path: str,
    trust: TrustSpace,
    peer: RelayPeer | None = None,
    binding: SenderBinding = SenderBinding.TRUST_SPACE,
) -> Address | None:
    """MAIL FROM on the relay: never our domain, always in the trust space, bound to the peer.

    The null reverse-path is accepted: RFC 5321 §4.5.5 requires accepting bounces (DSN,
    MDN) and the peer is already authenticated by its certificate. A sender in one of our
    own domains is refused in every binding mode: mail of our users leaves through our
    submission, so another operator presenting it is forging it. In ``certificate`` mode
    the domain must also be one the peer's certificate names or ``[relay_peers]`` maps.
    """
    sender = parse_reverse_path(reverse_path)
    if sender is None:
        return None
    if trust.is_local(sender.domain):
        raise Refusal.own_domain_sender(sender.domain, "as envelope sender (MAIL FROM)")
    if not trust.contains(sender.domain):
        _, domain = split_address(reverse_path)
        raise Refusal.not_in_trust_space(_shown(domain))
    if binding is SenderBinding.CERTIFICATE:
        _check_bound(sender.domain, peer, "envelope sender (MAIL FROM)")
    return sender


def check_relay_from(
    from_addresses: Sequence[str],
    trust: TrustSpace,
    peer: RelayPeer | None = None,
    binding: SenderBinding = SenderBinding.TRUST_SPACE,
) -> list[str]:
    """End of DATA on the relay: the From: domains, by the same rules as MAIL FROM.

    From is what the recipient's client shows as the author, so a peer may no more write
    one of our domains there than in the envelope (every mode). ``trust-space`` also wants
    each From: domain in the trust space, ``certificate`` bound to the peer; ``none`` stops
    at our domains. Returns the From: domains (A-labels), for the proof.
    """
    domains: list[str] = []
    for value in from_addresses:
        try:
            _, raw_domain = split_address(value)
        except ValueError:
            if binding is SenderBinding.NONE:
                continue
            raise Refusal(
                550, "5.7.1",
                f"the From header address {value[:64]!r} has no domain that can be checked",
            ) from None
        # A host under a domain counts for it: bounces come From MAILER-DAEMON@mx.<domain>.
        name = _normalised(raw_domain)
        domain = _trust_space_domain(name, trust) if name is not None else None
        if domain is not None and trust.is_local(domain):
            raise Refusal.own_domain_sender(domain, "in the From header")
        if binding is SenderBinding.NONE:
            continue
        if domain is None:
            raise Refusal(
                550, "5.7.1",
                f"the From header names {_shown(raw_domain)}, which is not in the MSSanté "
                "trust space",
            )
        if binding is SenderBinding.CERTIFICATE:
            _check_bound(domain, peer, "From header")
        if domain not in domains:
            domains.append(domain)
    return domains


def _check_bound(domain: str, peer: RelayPeer | None, where: str) -> None:
    if peer is not None and (peer.names_domain(domain) or peer.maps_domain(domain)):
        return
    named = peer.describe_domains() if peer is not None else "no certificate"
    raise Refusal(
        550, "5.7.1",
        f"the {where} domain {domain} is not a domain of the relaying operator: its "
        f"certificate names {named} and [relay_peers] maps no more domains to it",
    )


def binding_decision(
    peer: RelayPeer, binding: SenderBinding, sender_domains: Sequence[str]
) -> str:
    """One sentence for the ``received`` proof: why these sender domains were accepted."""
    shown = ", ".join(sender_domains) or "none (null sender, no From domain)"
    if binding is SenderBinding.NONE:
        return (f"accepted: envelope sender in the trust space and no sender domain of this "
                f"operator (From not bound); sender domains {shown}")
    if binding is SenderBinding.TRUST_SPACE:
        return (f"accepted: sender domains {shown} are in the trust space and not domains "
                "of this operator")
    named = [d for d in sender_domains if peer.names_domain(d)]
    mapped = [d for d in sender_domains if d not in named]
    parts = []
    if named:
        parts.append(f"{', '.join(named)} named by the peer certificate")
    if mapped:
        parts.append(f"{', '.join(mapped)} mapped to it by [relay_peers] {peer.mapped_by}")
    return "accepted: " + ("; ".join(parts) if parts else f"sender domains {shown}")


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
