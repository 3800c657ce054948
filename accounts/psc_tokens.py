"""Pro Santé Connect tokens: which professional (idNatPS) a token stands for, if any.

An access token is either a JWT, checked here against the issuer's keys
(:mod:`accounts.psc_keys`) — signature, algorithm, issuer, audience, expiry and not-before
with ``[psc] leeway`` — or an opaque string, asked about at the issuer's RFC 7662
introspection endpoint. ID tokens of the portal's login are checked by the same code, with
the client identifier as audience and the login's nonce (OpenID Connect Core §3.1.3.7).

Signature algorithms are fixed here, not read from the token: RS256, PS256 and ES256.
``alg: none`` and the HMAC family are refused before any key is looked at, so that a
public RSA key can never be used as an HMAC secret (the classic JWT key-confusion attack).

A validated access token is remembered under the SHA-256 of its text until its own expiry
(an introspection answer at most ``introspection_max_age``): the token itself is never
kept, logged or written (MSSanté client requirement CONF.28).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)

from accounts.psc_http import PscHttp, PscUnavailable
from accounts.psc_keys import KeyStore
from config.settings import PscSettings
from trustspace.idnat import is_valid_idnat

ALGORITHMS = ("RS256", "PS256", "ES256")
"""The only JWS algorithms accepted (PSC signs with RS256)."""
MAX_TOKEN = 16 * 1024
"""Longest token looked at; longer ones are refused before being decoded."""
MAX_REMEMBERED = 50_000


class TokenRefused(Exception):
    """A token that names nobody here. ``reason`` is short English for the log (never the
    token); ``status`` the RFC 7628 §3.2.2 status a SASL client is told."""

    def __init__(self, reason: str, status: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: whose it is and until when it holds (Unix time)."""

    idnat: str
    expires_at: float
    subject: str = ""
    source: str = "jwt"  # or "introspection"


def token_digest(token: str) -> bytes:
    """What a token is remembered under: its SHA-256, never the token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


def _b64json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise TokenRefused("malformed JWT header") from None


class TokenValidator:
    """Checks PSC tokens; one per gateway (its caches are shared by IMAP, SMTP, web)."""

    def __init__(self, settings: PscSettings, keys: KeyStore, http: PscHttp,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._keys = keys
        self._http = http
        self._clock = clock
        self._remembered: dict[bytes, TokenClaims] = {}

    # -- access tokens (SASL XOAUTH2 / OAUTHBEARER) ---------------------------------------
    async def access_token(self, token: str) -> TokenClaims:
        """The claims of a valid access token; raises :class:`TokenRefused` otherwise,
        :class:`~accounts.psc_http.PscUnavailable` when PSC could not be asked."""
        if not token or len(token) > MAX_TOKEN:
            raise TokenRefused("empty or overlong token")
        digest = token_digest(token)
        now = self._clock()
        hit = self._remembered.get(digest)
        if hit is not None:
            if hit.expires_at > now:
                return hit
            del self._remembered[digest]
        if token.count(".") == 2:
            claims = await self.jwt_claims(token, self.settings.expected_audience)
            found = self._identify(claims, "jwt")
            keep_until = found.expires_at
        elif self.settings.introspection_url:
            found = await self._introspect(token)
            keep_until = min(found.expires_at, now + self.settings.introspection_max_age)
        else:
            raise TokenRefused("not a JWT, and no introspection endpoint is configured")
        self._remember(digest, TokenClaims(found.idnat, keep_until, found.subject,
                                           found.source))
        return found

    def _remember(self, digest: bytes, claims: TokenClaims) -> None:
        if len(self._remembered) >= MAX_REMEMBERED:
            now = self._clock()
            for key in [k for k, v in self._remembered.items() if v.expires_at <= now]:
                del self._remembered[key]
            if len(self._remembered) >= MAX_REMEMBERED:
                self._remembered.clear()
        self._remembered[digest] = claims

    # -- ID tokens (the portal's login) ---------------------------------------------------
    async def id_token(self, token: str, nonce: str) -> TokenClaims:
        """An OpenID Connect ID token for this client, with the nonce of this login."""
        if not token or len(token) > MAX_TOKEN or token.count(".") != 2:
            raise TokenRefused("the ID token is not a signed JWT")
        claims = await self.jwt_claims(token, self.settings.client_id)
        if not nonce or claims.get("nonce") != nonce:
            raise TokenRefused("the ID token's nonce is not the one of this login")
        return self._identify(claims, "jwt")

    # -- JWT ---------------------------------------------------------------------------
    async def jwt_claims(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of a JWT signed by the issuer for ``audience``, checked in time."""
        header = _b64json(token.split(".", 1)[0])
        if not isinstance(header, dict):
            raise TokenRefused("malformed JWT header")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRefused(f"JWS algorithm {str(alg)[:20]!r} is not accepted "
                               f"(only {', '.join(ALGORITHMS)})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("malformed key id")
        key = await self._keys.find(kid)
        if key is None:
            raise TokenRefused(f"signed with an unknown key (kid {str(kid)[:64]!r})")
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            raise TokenRefused("bad signature") from None
        except JoseError as exc:
            raise TokenRefused(f"invalid JWT: {exc.error}") from None
        claims = decoded.claims
        self._check_time_and_issuer(claims)
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not audience or audience not in audiences:
            raise TokenRefused("wrong audience")
        return claims

    def _check_time_and_issuer(self, claims: Mapping[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()), leeway=int(self.settings.leeway),
            iss={"essential": True, "value": self.settings.issuer},
            exp={"essential": True},
        )
        try:
            registry.validate(dict(claims))
        except ExpiredTokenError:
            raise TokenRefused("expired") from None
        except MissingClaimError as exc:
            raise TokenRefused(f"missing claim {exc.claim}") from None
        except InvalidClaimError as exc:
            name = str(exc.claim)
            if name == "iss":
                raise TokenRefused("wrong issuer") from None
            if name == "nbf":
                raise TokenRefused("not yet valid") from None
            if name == "iat":
                raise TokenRefused("issued in the future") from None
            raise TokenRefused(f"invalid claim {name}") from None

    # -- RFC 7662 introspection ----------------------------------------------------------
    async def _introspect(self, token: str) -> TokenClaims:
        settings = self.settings
        answer = await self._http.post_form(
            settings.introspection_url,
            {"token": token, "token_type_hint": "access_token"},
            auth=(settings.client_id, settings.client_secret),
        )
        if "_status" in answer:
            raise PscUnavailable(
                f"introspection refused this gateway's credentials (HTTP {answer['_status']}, "
                f"{str(answer.get('error'))[:40]})")
        # RFC 7662 §2.2: "active" is the only required member; anything else is optional.
        if answer.get("active") is not True:
            raise TokenRefused("inactive token (introspection)")
        now = self._clock()
        exp = answer.get("exp")
        if exp is not None:
            if not isinstance(exp, (int, float)) or exp <= now - settings.leeway:
                raise TokenRefused("expired")
        nbf = answer.get("nbf")
        if isinstance(nbf, (int, float)) and nbf > now + settings.leeway:
            raise TokenRefused("not yet valid")
        if "iss" in answer and answer["iss"] != settings.issuer:
            raise TokenRefused("wrong issuer")
        if "aud" in answer:
            aud = answer["aud"]
            audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if settings.expected_audience not in audiences:
                raise TokenRefused("wrong audience")
        expires = float(exp) if exp is not None else now + settings.introspection_max_age
        return self._identify({**answer, "exp": expires}, "introspection")

    # -- who ---------------------------------------------------------------------------
    def _identify(self, claims: Mapping[str, Any], source: str) -> TokenClaims:
        for name in self.settings.id_claim:
            value = claims.get(name)
            if isinstance(value, str) and value:
                if not is_valid_idnat(value):
                    raise TokenRefused(f"claim {name} is not an idNatPS")
                return TokenClaims(idnat=value, expires_at=float(claims["exp"]),
                                   subject=str(claims.get("sub", ""))[:200], source=source)
        raise TokenRefused("no idNatPS claim (" + ", ".join(self.settings.id_claim) + ")")
