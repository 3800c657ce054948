"""SASL mechanisms of the submission servers and the place to register more.

Each mechanism only turns the client's SASL exchange into typed credentials; deciding whether
they are valid is the policy's job (``SmtpPolicy.authenticate``), so the protocol code never
sees a password database. XOAUTH2 and OAUTHBEARER (Pro Santé Connect tokens) plug in with
:func:`register_mechanism` without touching the session code.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from aiosmtpd.smtp import MISSING

from smtp.policy import Credentials, ExternalCredentials, PasswordCredentials

if TYPE_CHECKING:
    from smtp.session import GatewaySMTP


class SaslMechanism(Protocol):
    """One SASL mechanism: when it is offered and how its exchange yields credentials."""

    name: str

    def available(self, session: GatewaySMTP) -> bool:
        """Whether EHLO advertises it in this session (TLS is always required before)."""
        ...

    async def credentials(
        self, session: GatewaySMTP, initial: bytes | None
    ) -> Credentials | None:
        """Runs the exchange; None when it failed and the reply was already sent."""
        ...


async def _response(session: GatewaySMTP, initial: bytes | None, prompt: str) -> bytes | None:
    """The initial response, or the answer to a ``334`` challenge (RFC 4954 §4)."""
    if initial is not None:
        return initial
    answer = await session.challenge_auth(prompt)
    return None if answer is MISSING else answer  # type: ignore[return-value]


def _text(session_value: bytes) -> str:
    return session_value.decode("utf-8")


class PlainMechanism:
    """RFC 4616: ``[authzid] NUL authcid NUL passwd`` in one message."""

    name = "PLAIN"

    def available(self, session: GatewaySMTP) -> bool:
        return True

    async def credentials(
        self, session: GatewaySMTP, initial: bytes | None
    ) -> Credentials | None:
        message = await _response(session, initial, "")
        if message is None:
            return None
        parts = message.split(b"\x00")
        if len(parts) != 3 or not parts[1]:
            await session.push("501 5.5.2 PLAIN expects authzid NUL login NUL password")
            return None
        try:
            authzid, login, password = (_text(p) for p in parts)
        except UnicodeDecodeError:
            await session.push("501 5.5.2 PLAIN credentials must be UTF-8 (RFC 4616)")
            return None
        return PasswordCredentials(authzid=authzid, login=login, password=password)


class LoginMechanism:
    """The non-standard LOGIN exchange Outlook still uses: user name, then password."""

    name = "LOGIN"

    def available(self, session: GatewaySMTP) -> bool:
        return True

    async def credentials(
        self, session: GatewaySMTP, initial: bytes | None
    ) -> Credentials | None:
        login = await _response(session, initial, "Username:")
        if login is None:
            return None
        password = await _response(session, None, "Password:")
        if password is None:
            return None
        try:
            return PasswordCredentials(authzid="", login=_text(login), password=_text(password))
        except UnicodeDecodeError:
            await session.push("501 5.5.2 LOGIN credentials must be UTF-8")
            return None


class ExternalMechanism:
    """RFC 4422 appendix A: the identity is the verified TLS client certificate."""

    name = "EXTERNAL"

    def available(self, session: GatewaySMTP) -> bool:
        # Offered only when the handshake verified a client certificate against the anchors.
        return session.peer_certificate_verified

    async def credentials(
        self, session: GatewaySMTP, initial: bytes | None
    ) -> Credentials | None:
        message = await _response(session, initial, "")
        if message is None:
            return None
        cert = session.peer_certificate_der
        if cert is None:
            await session.push("535 5.7.8 no verified client certificate for EXTERNAL")
            return None
        try:
            authzid = _text(message)
        except UnicodeDecodeError:
            await session.push("501 5.5.2 EXTERNAL authorization identity must be UTF-8")
            return None
        return ExternalCredentials(authzid=authzid, certificate_der=cert)


_REGISTRY: dict[str, Callable[[], SaslMechanism]] = {
    "PLAIN": PlainMechanism,
    "LOGIN": LoginMechanism,
    "EXTERNAL": ExternalMechanism,
}


def register_mechanism(name: str, factory: Callable[[], SaslMechanism]) -> None:
    """Adds a mechanism (e.g. XOAUTH2, OAUTHBEARER) offered by servers created afterwards."""
    _REGISTRY[name.upper()] = factory


def default_mechanisms(names: Iterable[str] | None = None) -> dict[str, SaslMechanism]:
    """Fresh instances of the registered mechanisms (all, or those named), in order."""
    wanted = [n.upper() for n in names] if names is not None else list(_REGISTRY)
    return {n: _REGISTRY[n]() for n in wanted if n in _REGISTRY}


def decode_initial_response(value: str) -> bytes | None:
    """RFC 4954 §4: ``=`` is an empty initial response; otherwise base64. None if invalid."""
    if value == "=":
        return b""
    try:
        return b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
