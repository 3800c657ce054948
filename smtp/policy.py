"""The typed seam between the SMTP protocol layer and the gateway's behaviour.

The protocol code (``smtp/session.py``) owns syntax, sequencing and limits; everything that
is a decision - who may authenticate, which sender and recipients are acceptable, what
happens to an accepted message - goes through :class:`SmtpPolicy`, implemented by the
relay and submission handlers (and by a small recording policy in the tests). A policy
refuses by raising :class:`trustspace.refusal.Refusal`, which already knows its reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from aiosmtpd.smtp import Envelope

from smtp.content import ContentScanner
from smtp.dsn_params import MailParams, RcptParams

if TYPE_CHECKING:
    from smtp.session import GatewaySMTP

ServerKind = Literal["relay", "submission", "submissions"]


@dataclass(frozen=True)
class Identity:
    """Who authenticated: the login the policy recognised and how."""

    login: str
    mechanism: str
    detail: object = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PasswordCredentials:
    """SASL PLAIN (RFC 4616) and LOGIN: never logged, never kept after the check."""

    authzid: str
    login: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ExternalCredentials:
    """SASL EXTERNAL (RFC 4422 appendix A): the verified TLS client certificate."""

    authzid: str
    certificate_der: bytes = field(repr=False)


@dataclass(frozen=True)
class TokenCredentials:
    """SASL XOAUTH2 / OAUTHBEARER (RFC 7628): a bearer token, never logged."""

    login: str
    token: str = field(repr=False)


Credentials = PasswordCredentials | ExternalCredentials | TokenCredentials


@dataclass
class Recipient:
    """One accepted RCPT TO with its DSN parameters (RFC 3461)."""

    address: str
    params: RcptParams


class GatewayEnvelope(Envelope):
    """aiosmtpd's envelope plus the parsed MAIL parameters and per-recipient DSN data."""

    def __init__(self) -> None:
        super().__init__()
        self.mail_params: MailParams = MailParams()
        self.recipients: list[Recipient] = []
        self.chunking: bool = False  # a BDAT was seen in this transaction (RFC 3030 §2)
        self.scanner: ContentScanner | None = None  # the BDAT chunks received so far


class SmtpPolicy(Protocol):
    """What the relay and submission front-ends decide; every method may raise Refusal."""

    async def authenticate(
        self, session: GatewaySMTP, mechanism: str, credentials: Credentials
    ) -> Identity | None:
        """The identity behind valid credentials, or None when they are wrong."""
        ...

    async def check_mail(
        self, session: GatewaySMTP, envelope: GatewayEnvelope, address: str, params: MailParams
    ) -> None:
        """Accepts the sender (returns) or raises Refusal."""
        ...

    async def check_rcpt(
        self, session: GatewaySMTP, envelope: GatewayEnvelope, address: str, params: RcptParams
    ) -> None:
        """Accepts one recipient (returns) or raises Refusal."""
        ...

    async def accept(self, session: GatewaySMTP, envelope: GatewayEnvelope, data: bytes) -> str:
        """Takes responsibility for the message; returns the 250 text (e.g. the queue id)."""
        ...
