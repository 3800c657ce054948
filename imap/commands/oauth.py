"""SASL OAUTHBEARER (RFC 7628) and XOAUTH2 on IMAP: Pro Santé Connect access tokens.

Offered (``AUTH=OAUTHBEARER AUTH=XOAUTH2``) only when ``[psc]`` is configured. A refused
token is answered as RFC 7628 §3.2.2 says: a ``+`` challenge carrying the JSON error, the
client's dummy answer, then the tagged failure — ``NO [EXPIRED]`` (RFC 5530) for an expired
token, so that the client knows to fetch a new one, ``NO [AUTHENTICATIONFAILED]`` otherwise,
``NO [UNAVAILABLE]`` when PSC could not be asked.

A login by token holds until the token expires: then the session ends with
``* BYE [EXPIRED]`` (see :func:`imap.commands.auth._logged_in` and docs/rfc-status.md: IMAP
has no re-authentication in the authenticated state, so the client reconnects with a fresh
token and resynchronises with CONDSTORE/QRESYNC).
"""

from __future__ import annotations

import logging

from accounts.authenticator import Identity
from accounts.sasl_oauth import PARSERS, BadOAuthMessage
from imap.commands.auth import Challenge, _attempt, register_mechanism
from imap.protocol import ImapRefusal
from imap.session import Session

log = logging.getLogger("mssante.imap")
TOKEN_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")


class OAuthMechanism:
    """One of the two token mechanisms; both end in :meth:`accounts.psc_login.PscLogin.check`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._parse = PARSERS[name]

    async def authenticate(
        self, session: Session, initial: bytes | None, challenge: Challenge
    ) -> Identity | None:
        psc = session.ctx.psc
        if psc is None:
            raise ImapRefusal("NO", "CANNOT", f"{self.name} is not offered: Pro Santé Connect "
                              "is not configured here")
        data = initial if initial is not None else await challenge(b"")
        try:
            message = self._parse(data)
        except BadOAuthMessage as exc:
            raise ImapRefusal("BAD", None, f"{self.name}: {exc}") from None
        verdict = await psc.check(message.login, message.token, self.name,
                                  **_attempt(session))
        if verdict.identity is not None:
            return verdict.identity
        # RFC 7628 §3.2.2: the error travels as a challenge; the client's answer (%x01
        # for OAUTHBEARER, empty for XOAUTH2) carries nothing and is not looked at.
        await challenge(psc.error_challenge(verdict.status))
        if verdict.status == "temporarily_unavailable":
            raise ImapRefusal("NO", "UNAVAILABLE",
                              "Pro Santé Connect cannot be reached; try again later")
        if verdict.reason == "expired":
            session.auth_failures += 1
            raise ImapRefusal("NO", "EXPIRED",
                              "The access token has expired: get a new one and log in again")
        return None


for _name in TOKEN_MECHANISMS:
    register_mechanism(OAuthMechanism(_name))
