"""STARTTLS, LOGIN and AUTHENTICATE (RFC 9051 §6.2, RFC 4959 SASL-IR, RFC 4422 EXTERNAL).

SASL mechanisms are objects in :data:`MECHANISMS`; XOAUTH2 and OAUTHBEARER plug in with
:func:`register_mechanism` without touching the session. Every failure answers
``NO [AUTHENTICATIONFAILED]`` with the same text, so that a client learns nothing about
which part was wrong; the log says which.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from accounts.authenticator import Identity, shown_login
from config.metrics import AUTHENTICATIONS
from imap.commands import ANY, NOT_AUTHENTICATED, register
from imap.protocol import ImapRefusal, continuation, tagged
from imap.protocol import commands as c
from imap.session import Done, Session
from trustspace.crl import require_not_revoked
from trustspace.refusal import Refusal

log = logging.getLogger("mssante.imap")

Challenge = Callable[[bytes], Awaitable[bytes]]
"""Sends a server challenge and returns the client's decoded answer."""

_FAILED = "Authentication failed: check the address and the application password"
MAX_AUTH_FAILURES = 3


def _attempt(session: Session) -> dict[str, str]:
    """Who is trying, for the guessing limits and the trace (accounts/limiter.py)."""
    peer = session.writer.get_extra_info("peername")
    client = str(peer[0]) if isinstance(peer, tuple) and peer else session.peer
    return {"client": client, "protocol": "imap", "session_id": session.id}


class SaslMechanism(Protocol):
    """A SASL mechanism as the IMAP server runs it."""

    name: str

    async def authenticate(
        self, session: Session, initial: bytes | None, challenge: Challenge
    ) -> Identity | None: ...


class PlainMechanism:
    """RFC 4616 PLAIN: ``authzid NUL authcid NUL passwd``."""

    name = "PLAIN"

    async def authenticate(
        self, session: Session, initial: bytes | None, challenge: Challenge
    ) -> Identity | None:
        data = initial if initial is not None else await challenge(b"")
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise ImapRefusal("BAD", None, "PLAIN expects authzid NUL authcid NUL password")
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
        if authzid and not hmac.compare_digest(authzid.lower().encode(),
                                               authcid.lower().encode()):
            log.info("imap_auth_refused", extra=session.log_fields(
                reason="authzid differs from authcid", method="PLAIN"))
            return None
        return await session.ctx.authenticator.check_password(
            authcid, password, "PLAIN", **_attempt(session))


class ExternalMechanism:
    """RFC 4422 App. A EXTERNAL: the TLS client certificate, verified by the handshake."""

    name = "EXTERNAL"

    async def authenticate(
        self, session: Session, initial: bytes | None, challenge: Challenge
    ) -> Identity | None:
        ssl_object = session.ssl_object()
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise ImapRefusal("NO", "AUTHENTICATIONFAILED",
                              "EXTERNAL needs a client certificate presented during TLS")
        try:
            require_not_revoked(session.ctx.revocation, der, "auth")
        except Refusal as refusal:
            raise ImapRefusal("NO", "AUTHENTICATIONFAILED", refusal.text) from None
        data = initial if initial is not None else await challenge(b"")
        authzid = data.decode("utf-8", "replace") or None
        return await session.ctx.authenticator.check_certificate(
            der, authzid, "EXTERNAL", **_attempt(session))


MECHANISMS: dict[str, SaslMechanism] = {}


def register_mechanism(mechanism: SaslMechanism) -> None:
    """Adds a SASL mechanism (e.g. XOAUTH2, OAUTHBEARER) to AUTHENTICATE and CAPABILITY."""
    MECHANISMS[mechanism.name.upper()] = mechanism


def mechanism_names() -> list[str]:
    return list(MECHANISMS)


register_mechanism(PlainMechanism())
register_mechanism(ExternalMechanism())


def _logged_in(session: Session, identity: Identity) -> Done:
    session.identity = identity
    if identity.expires_at is not None:
        _end_at_expiry(session, identity)
    session.access_version = session.ctx.authenticator.access.version
    session.auth_failures = 0
    AUTHENTICATIONS.labels("imap", identity.method, "success").inc()
    log.info("imap_login", extra=session.log_fields(method=identity.method))
    caps = " ".join(session.capabilities())
    return Done("Logged in", f"CAPABILITY {caps}")


def _end_at_expiry(session: Session, identity: Identity) -> None:
    """A login by Pro Santé Connect token holds as long as the token: at its expiry the
    session ends with ``* BYE [EXPIRED]`` (RFC 5530), whatever it is doing (IDLE too).
    IMAP has no re-authentication once authenticated (RFC 9051 §6.2.2), so the client
    logs in again on a new connection with a fresh token; CONDSTORE/QRESYNC (RFC 7162)
    let it resynchronise without reloading its mailboxes."""
    loop = asyncio.get_running_loop()
    assert identity.expires_at is not None

    def expire() -> None:
        if session.identity is identity and not session.closing:
            log.info("imap_token_expired", extra=session.log_fields(method=identity.method))
            session.shutdown("The access token has expired: log in again with a new token",
                             "EXPIRED")

    loop.call_later(max(0.0, identity.expires_at - time.time()), expire)


def _failed(session: Session, method: str, who: str | None) -> ImapRefusal:
    session.auth_failures += 1
    AUTHENTICATIONS.labels("imap", method, "failure").inc()
    log.info("imap_auth_failed", extra=session.log_fields(
        method=method, login=shown_login(who or ""), failures=session.auth_failures))
    if session.auth_failures >= MAX_AUTH_FAILURES:
        return ImapRefusal("BYE", "AUTHENTICATIONFAILED",
                           "Too many failed logins, closing the connection")
    return ImapRefusal("NO", "AUTHENTICATIONFAILED", _FAILED)


@register(c.StartTLS, ANY)
async def starttls(session: Session, cmd: c.StartTLS) -> Done | None:
    """RFC 9051 §6.2.1; RFC 2595 §3.1: nothing sent before the handshake may be kept."""
    if session.tls:
        raise ImapRefusal("BAD", None, "TLS is already active")
    if session.authenticated:
        raise ImapRefusal("BAD", None, "STARTTLS is only allowed before authentication")
    # Pipelined data after STARTTLS would be read as if protected (CVE-2011-0411 class).
    if getattr(session.reader, "_buffer", b""):
        raise ImapRefusal("BYE", None, "Data after STARTTLS before the TLS handshake")
    session.write(tagged(cmd.tag, "OK", "Begin TLS negotiation now"))
    await session.flush()
    await session.writer.start_tls(
        session.ctx.tls_context,
        ssl_handshake_timeout=session.ctx.settings.tls.handshake_timeout)
    session.tls = True
    session.enabled.clear()
    log.info("imap_starttls", extra=session.log_fields())
    return Done(silent=True)


@register(c.Login, NOT_AUTHENTICATED, needs_tls=True)
async def login(session: Session, cmd: c.Login) -> Done | None:
    identity = await session.ctx.authenticator.check_password(
        cmd.username, cmd.password, "LOGIN", **_attempt(session))
    if identity is None:
        raise _failed(session, "LOGIN", cmd.username)
    return _logged_in(session, identity)


@register(c.Authenticate, NOT_AUTHENTICATED, needs_tls=True)
async def authenticate(session: Session, cmd: c.Authenticate) -> Done | None:
    mech = MECHANISMS.get(cmd.mechanism.upper())
    if mech is None:
        raise ImapRefusal("NO", "CANNOT",
                          f"SASL mechanism {cmd.mechanism[:40]} is not supported; use one of "
                          + " ".join(MECHANISMS))
    initial: bytes | None = None
    if cmd.initial_response is not None:
        initial = _b64(cmd.initial_response)

    async def challenge(data: bytes) -> bytes:
        session.write(continuation(base64.b64encode(data).decode("ascii")))
        await session.flush()
        line = await session.read_line()
        if line is None:
            raise ImapRefusal("BYE", None, "Connection closed during authentication")
        if line.strip() == b"*":
            # RFC 9051 §6.2.2: the client cancels with "*".
            raise ImapRefusal("BAD", None, "Authentication cancelled")
        return _b64(line.strip().decode("ascii", "replace"))

    identity = await mech.authenticate(session, initial, challenge)
    if identity is None:
        raise _failed(session, mech.name, None)
    return _logged_in(session, identity)


def _b64(text: str) -> bytes:
    if text in ("", "="):
        return b""  # RFC 4959 §3: "=" is an empty initial response
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImapRefusal("BAD", None, "Invalid base64 in SASL response") from None


__all__ = ["MECHANISMS", "SaslMechanism", "mechanism_names", "register_mechanism"]
