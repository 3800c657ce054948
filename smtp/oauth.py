"""SASL OAUTHBEARER (RFC 7628) and XOAUTH2 on submission: Pro Santé Connect access tokens.

Registered with :func:`smtp.auth.register_mechanism`; offered after TLS only when the
policy has a token checker (``[psc]`` configured). The mechanism only turns the client's
message into :class:`~smtp.policy.TokenCredentials`; the policy's ``token_checker``
decides. After a refusal, :meth:`OAuthMechanism.after_failure` sends RFC 7628 §3.2.2's JSON
error as a ``334`` challenge and reads the client's dummy answer; the session then answers
``535 5.7.8``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiosmtpd.smtp import MISSING

from accounts.sasl_oauth import PARSERS, BadOAuthMessage
from smtp.auth import _response, register_mechanism
from smtp.policy import Credentials, TokenCredentials

if TYPE_CHECKING:
    from smtp.session import GatewaySMTP

TOKEN_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")


class OAuthMechanism:
    """OAUTHBEARER or XOAUTH2."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._parse = PARSERS[name]

    def available(self, session: GatewaySMTP) -> bool:
        return getattr(session.policy, "token_checker", None) is not None

    async def credentials(
        self, session: GatewaySMTP, initial: bytes | None
    ) -> Credentials | None:
        message = await _response(session, initial, "")
        if message is None:
            return None
        try:
            parsed = self._parse(message)
        except BadOAuthMessage as exc:
            await session.push(f"501 5.5.2 {self.name}: {exc}")
            return None
        return TokenCredentials(login=parsed.login, token=parsed.token)

    async def after_failure(self, session: GatewaySMTP) -> bool:
        """The JSON error challenge and the client's dummy answer; False when the client
        cancelled or the line was refused (the reply is already sent)."""
        make: Callable[[str], bytes] | None = getattr(session.policy, "token_challenge", None)
        body = make("invalid_token") if make is not None else b'{"status":"invalid_token"}'
        answer = await session.challenge_auth(body)
        return answer is not MISSING


def _factory(name: str) -> Callable[[], OAuthMechanism]:
    return lambda: OAuthMechanism(name)


for _name in TOKEN_MECHANISMS:
    register_mechanism(_name, _factory(_name))
