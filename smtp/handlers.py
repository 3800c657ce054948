"""The gateway's two SMTP policies: submission (users) and relay (other MSSanté operators).

Each method is one step of the dialogue and one decision, taken with the pure functions of
:mod:`trustspace.policy` plus the look-ups they need (mailbox status, send-as delegations,
the peer certificate). Every refusal is a :class:`~trustspace.refusal.Refusal`, which the
session writes as ASCII (RFC 6531 §3.7.4.2 allows UTF-8 replies only after SMTPUTF8; ASCII
is always valid, so accents are dropped, e.g. "MSSante").

Submission (587 STARTTLS / 465 implicit TLS): AUTH PLAIN/LOGIN with an application password,
EXTERNAL with a verified client certificate; sender, From, Sender and Resent-From/-Sender
must be the user or a mailbox it may send as; every recipient in the trust space; local ones
must exist and be active.

Relay (25): no AUTH; the client certificate is the authentication (mutual TLS) and must be an
operator's server certificate naming a trust-space domain; sender (MAIL FROM and From:) never
one of our domains, bound to the peer as ``[smtp] relay_sender_binding`` says; recipients only
local active mailboxes — never an open relay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from weakref import WeakKeyDictionary

from cryptography import x509

from accounts.authenticator import CertificateNotAccepted
from accounts.authenticator import Identity as AccountIdentity
from mail.headers import (
    ReceivedInfo,
    protocol_name,
    read_header_facts,
    received_field,
    without_bcc,
)
from mail.notices import ALWAYS_NOTIFY, wants_delivery_notice_always
from mail.pipeline import ProofSpec
from mail.sender_fields import check_sender_fields
from mail.submission import Mailboxes, new_smtp_id, submission_fields
from smtp.dsn_params import MailParams, RcptParams
from smtp.handlers_support import (
    ReverseDns,
    TransactionStore,
    local_target,
    remote_target,
    store,
    tls_facts,
)
from smtp.policy import (
    Credentials,
    ExternalCredentials,
    GatewayEnvelope,
    Identity,
    PasswordCredentials,
    TokenCredentials,
)
from trustspace.crl import require_not_revoked
from trustspace.policy import (
    PeerIdentity,
    RelayPeer,
    RelayRules,
    binding_decision,
    check_from_header,
    check_relay_from,
    check_relay_peer,
    check_relay_recipient,
    check_relay_sender,
    check_submission_recipient,
    check_submission_sender,
    parse_reverse_path,
)
from trustspace.refusal import Refusal
from trustspace.tls import peer_info

if TYPE_CHECKING:
    from smtp.deps import SmtpGateway as Gateway
    from smtp.session import GatewaySMTP

log = logging.getLogger("mssante.smtp")

TokenChecker = Callable[[str, str, str, str | None, str], Awaitable[AccountIdentity | None]]
"""(login, token, mechanism, client address, trace id) → identity: the hook XOAUTH2 and
OAUTHBEARER plug into (smtp/oauth.py)."""


class RecipientDirectory(Protocol):
    """The directory look-up behind ``directory.require_in_directory`` (optional service)."""

    async def recipient_known(self, address: str) -> bool: ...


def _account(session: GatewaySMTP) -> AccountIdentity:
    identity = session.identity
    assert identity is not None and isinstance(identity.detail, AccountIdentity)
    return identity.detail


class SubmissionPolicy:
    """Policy of the submission listeners (RFC 6409), shared by 587 and 465."""

    def __init__(self, gateway: Gateway, *, token_checker: TokenChecker | None = None,
                 token_challenge: Callable[[str], bytes] | None = None) -> None:
        self.gateway = gateway
        self.token_checker = token_checker
        # RFC 7628 §3.2.2: the JSON error sent after a refused token (smtp/oauth.py)
        self.token_challenge = token_challenge
        self._mailboxes = Mailboxes(gateway)
        self._transactions = TransactionStore()
        self._rdns = ReverseDns()

    # -- AUTH ----------------------------------------------------------------------------
    async def authenticate(
        self, session: GatewaySMTP, mechanism: str, credentials: Credentials
    ) -> Identity | None:
        authenticator = self.gateway.authenticator
        assert authenticator is not None
        found: AccountIdentity | None = None
        if isinstance(credentials, PasswordCredentials):
            # RFC 4616 §2: acting as another identity (authzid) is not offered; send-as
            # delegations are the MSSanté way to write for an organisational mailbox.
            if credentials.authzid and credentials.authzid.lower() != credentials.login.lower():
                return None
            found = await authenticator.check_password(
                credentials.login, credentials.password, mechanism,
                client=session.peer_ip, protocol="smtp", session_id=session.trace_id,
            )
        elif isinstance(credentials, ExternalCredentials):
            # RFC 4422 appendix A: the TLS layer verified the certificate against the anchors;
            # revocation is checked now, against the CRLs in force (535 5.7.8 if revoked).
            require_not_revoked(self.gateway.revocation, credentials.certificate_der, "auth")
            # A certificate of the wrong family for the mailbox (a CPS card for an applicative
            # mailbox, a server certificate for any) is told why, in 535 5.7.8's sentence.
            try:
                found = await authenticator.identify_certificate(
                    credentials.certificate_der, credentials.authzid or None, mechanism,
                    client=session.peer_ip, protocol="smtp", session_id=session.trace_id,
                )
            except CertificateNotAccepted as refused:
                raise Refusal(535, "5.7.8", str(refused)) from None
        elif isinstance(credentials, TokenCredentials) and self.token_checker is not None:
            found = await self.token_checker(credentials.login, credentials.token, mechanism,
                                             session.peer_ip, session.trace_id)
        if found is None:
            return None
        return Identity(login=found.address, mechanism=mechanism, detail=found)

    # -- MAIL ----------------------------------------------------------------------------
    async def check_mail(
        self, session: GatewaySMTP, envelope: GatewayEnvelope, address: str, params: MailParams
    ) -> None:
        account = _account(session)
        if session.identity is not None and session.identity.mechanism == "EXTERNAL":
            # A certificate revoked after this session logged in sends nothing more.
            require_not_revoked(self.gateway.revocation, session.peer_certificate_der, "send")
        allowed = await self._may_send_as(account)
        check_submission_sender(address, account.address, allowed - {account.address})
        transaction = self._transactions.reset(envelope)
        transaction.may_send_as = allowed
        db = self.gateway.db
        if db is not None and address:
            async with db.read() as conn:
                transaction.notices_always = await wants_delivery_notice_always(conn, address)

    async def _may_send_as(self, account: AccountIdentity) -> frozenset[str]:
        """The addresses the session's user may send as now, or a refusal when its login no
        longer holds. Asked at MAIL and again at the end of DATA: a delegation revoked or an
        account suspended while the session is open takes effect at once (the answers are
        remembered only under the current access version, see :mod:`accounts.access`)."""
        authenticator = self.gateway.authenticator
        assert authenticator is not None
        if account.expires_at is not None and time.time() >= account.expires_at:
            # a Pro Santé Connect token holds until its own expiry, not a second more
            raise Refusal(530, "5.7.0", "the access token this session logged in with has "
                          "expired: connect again and authenticate with a new token")
        reason = await authenticator.still_valid(account)
        if reason == "revoked":
            raise Refusal(550, "5.7.1", "the application password this session logged in "
                          "with was revoked: it may no longer send; log in again")
        if reason is not None:
            raise Refusal(550, "5.7.1", f"the mailbox {account.address} is {reason}: this "
                          "session may no longer send; contact your administrator")
        return frozenset(await authenticator.sender_addresses(account))

    # -- RCPT ----------------------------------------------------------------------------
    async def check_rcpt(
        self, session: GatewaySMTP, envelope: GatewayEnvelope, address: str, params: RcptParams
    ) -> None:
        trust = self.gateway.trust
        assert trust is not None
        space = trust.current  # one snapshot: a refresh never changes a decision half-way
        rcpt = check_submission_recipient(address, space, self.gateway.settings.primary_domain)
        transaction = self._transactions.get(envelope)
        if transaction.notices_always and params.notify is None:
            params = replace(params, notify=ALWAYS_NOTIFY)  # RFC 3461 §4.1, mail.notices
        if space.is_local(rcpt.domain):
            target = local_target(await self._mailboxes.resolve(rcpt), params)
            transaction.local.setdefault(target.account_id, target)
            return
        await self._check_directory(str(rcpt))
        transaction.remote.setdefault(rcpt.key(), remote_target(rcpt, params))

    async def _check_directory(self, address: str) -> None:
        """``directory.require_in_directory``: remote recipients must be published.

        Local recipients are checked against the accounts themselves (the directory copy
        may lag); remote ones against the directory service the gateway attached as
        ``gateway.directory``. Without a directory service the rule cannot apply.
        """
        if not self.gateway.settings.directory.require_in_directory:
            return
        directory: RecipientDirectory | None = getattr(self.gateway, "directory", None)
        if directory is None:
            return
        if not await directory.recipient_known(address):
            raise Refusal(
                550, "5.1.1", f"{address} is not published in the MSSanté directory"
            )

    # -- end of DATA ---------------------------------------------------------------------
    async def accept(self, session: GatewaySMTP, envelope: GatewayEnvelope, data: bytes) -> str:
        account = _account(session)
        transaction = self._transactions.get(envelope)
        data = without_bcc(data)  # RFC 5322 §3.6.3: blind recipients stay blind
        facts = read_header_facts(data)
        # Access may have been withdrawn since MAIL FROM: decide again with today's rights.
        allowed = await self._may_send_as(account)
        check_submission_sender(envelope.mail_from or "", account.address,
                                allowed - {account.address})
        # The From header is what the recipient sees as author: same rule as MAIL FROM.
        check_from_header(facts.from_addresses, account.address, allowed - {account.address})
        check_sender_fields(facts.sender_addresses, account.address, allowed - {account.address})
        smtp_id = new_smtp_id()
        settings = self.gateway.settings
        tls = tls_facts(session)
        recipients = [r.address for r in envelope.recipients]
        info = ReceivedInfo(
            helo=session.helo_name or "",
            client_ip=session.peer_ip,
            client_name=await self._rdns.name(session.peer_ip),
            by_host=settings.hostname,
            protocol=protocol_name(tls=tls.version is not None, authenticated=True,
                                   utf8=envelope.smtp_utf8),
            smtp_id=smtp_id,
            tls_version=tls.version,
            tls_cipher=tls.cipher,
            tls_bits=tls.bits,
            auth_login=account.address,
            auth_method=account.method,
            recipient=recipients[0] if len(recipients) == 1 else None,
        )
        fields, written_for, sender_added = submission_fields(
            facts, info, account.address, settings.hostname)
        proof = ProofSpec(
            kind="submitted",
            actor=account.address,
            details={
                "login": account.address,
                "method": account.method,
                "client_ip": session.peer_ip,
                **tls.as_details(),
                "mail_from": envelope.mail_from or "",
                "recipients": recipients,
                "smtp_id": smtp_id,
                "session": session.trace_id,
                **({"on_behalf_of": written_for, "sender_field_added": sender_added}
                   if written_for else {}),
            },
        )
        return await store(
            self.gateway, session, envelope, transaction, data, fields, proof, smtp_id
        )


class RelayPolicy:
    """Policy of the operator relay (port 25): mutual TLS, trust space, local mailboxes only."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.rules = RelayRules.from_settings(gateway.settings)
        self._mailboxes = Mailboxes(gateway)
        self._transactions = TransactionStore()
        self._rdns = ReverseDns()
        self._peers: WeakKeyDictionary[GatewayEnvelope, RelayPeer] = WeakKeyDictionary()

    async def authenticate(
        self, session: GatewaySMTP, mechanism: str, credentials: Credentials
    ) -> Identity | None:
        # Never reached (the session refuses AUTH on the relay); refuse anyway if it were.
        return None

    def _peer(self, session: GatewaySMTP) -> PeerIdentity | None:
        obj = session.ssl_object
        der = session.peer_certificate_der
        if obj is None or der is None:
            return None
        info = peer_info(obj)
        try:
            certificate: x509.Certificate | None = x509.load_der_x509_certificate(der)
        except ValueError:
            certificate = None  # refused by the policy as unreadable
        return PeerIdentity(
            verified=session.peer_certificate_verified,
            subject=info.subject or "",
            fingerprint=info.fingerprint_sha256 or "",
            not_after=info.not_after,
            certificate=certificate,
        )

    async def check_mail(
        self, session: GatewaySMTP, envelope: GatewayEnvelope, address: str, params: MailParams
    ) -> None:
        # The certificate is judged here rather than in the handshake so that a peer without
        # one is told, in SMTP, what to configure (530 5.7.0) instead of seeing a reset.
        trust = self.gateway.trust
        assert trust is not None
        space = trust.current  # one snapshot for the peer and its sender
        identity = self._peer(session)
        try:
            # revocation first: a revoked certificate is refused as such, whatever its family
            require_not_revoked(self.gateway.revocation, session.peer_certificate_der, "relay")
            peer = check_relay_peer(
                session.tls_active, identity, datetime.now(UTC), space, self.rules
            )
            check_relay_sender(address, space, peer, self.rules.binding)
        except Refusal as refusal:
            # The fingerprint names the certificate for the operator's investigation; the
            # refused address is not logged (it may name a patient's correspondent).
            log.info("event=relay_refused peer=%s fingerprint=%s reply=%s", session.peer_ip,
                     identity.fingerprint if identity else "", refusal.enhanced)
            raise
        transaction = self._transactions.reset(envelope)
        transaction.peer = {"subject": peer.subject, "fingerprint": peer.fingerprint}
        self._peers[envelope] = peer

    async def check_rcpt(
        self, session: GatewaySMTP, envelope: GatewayEnvelope, address: str, params: RcptParams
    ) -> None:
        trust = self.gateway.trust
        assert trust is not None
        rcpt = check_relay_recipient(address, trust.current, self.gateway.settings.primary_domain)
        target = local_target(await self._mailboxes.resolve(rcpt), params)
        self._transactions.get(envelope).local.setdefault(target.account_id, target)

    async def accept(self, session: GatewaySMTP, envelope: GatewayEnvelope, data: bytes) -> str:
        transaction = self._transactions.get(envelope)
        relay_peer = self._peers.get(envelope)
        trust = self.gateway.trust
        assert trust is not None
        if relay_peer is None:  # MAIL FROM always records it; never accept without a judged peer
            raise Refusal.temporary_failure("the sending operator of this message is not known")
        binding = self.rules.binding
        # From is what the recipient sees as author: bound to the peer like MAIL FROM.
        from_domains = check_relay_from(
            read_header_facts(data).from_addresses, trust.current, relay_peer, binding
        )
        sender = parse_reverse_path(envelope.mail_from or "<>")  # checked at MAIL FROM
        envelope_domains = [sender.domain] if sender is not None else []
        sender_domains = list(dict.fromkeys([*envelope_domains, *from_domains]))
        smtp_id = new_smtp_id()
        tls = tls_facts(session)
        recipients = [r.address for r in envelope.recipients]
        peer = transaction.peer
        info = ReceivedInfo(
            helo=session.helo_name or "",
            client_ip=session.peer_ip,
            client_name=await self._rdns.name(session.peer_ip),
            by_host=self.gateway.settings.hostname,
            protocol=protocol_name(tls=tls.version is not None, authenticated=False,
                                   utf8=envelope.smtp_utf8),
            smtp_id=smtp_id,
            tls_version=tls.version,
            tls_cipher=tls.cipher,
            tls_bits=tls.bits,
            peer_subject=peer.get("subject", ""),
            peer_fingerprint=peer.get("fingerprint", ""),
            recipient=recipients[0] if len(recipients) == 1 else None,
        )
        proof = ProofSpec(
            kind="received",
            actor=peer.get("subject") or session.peer_ip,
            details={
                "peer_subject": peer.get("subject", ""),
                "peer_fingerprint": peer.get("fingerprint", ""),
                "peer_family": relay_peer.family.value,
                "peer_domains": list(relay_peer.domains),
                "sender_binding": binding.value,
                "sender_domains": sender_domains,
                "binding_decision": binding_decision(relay_peer, binding, sender_domains),
                "client_ip": session.peer_ip,
                **tls.as_details(),
                "mail_from": envelope.mail_from or "",
                "recipients": recipients,
                "smtp_id": smtp_id,
                "session": session.trace_id,
            },
        )
        return await store(
            self.gateway, session, envelope, transaction, data, [received_field(info)], proof,
            smtp_id,
        )
