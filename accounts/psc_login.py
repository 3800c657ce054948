"""From a Pro Santé Connect token to a mailbox: the idNatPS it carries names the holder of
a nominative (PER) mailbox, as a CPS card's certificate does for SASL EXTERNAL.

Every attempt, accepted or not, is written to the traces (method, login, client, result;
never the token), and failures are counted by the login limiter shared with passwords, so
that a locked address stays locked whichever way it knocks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace

from sqlalchemy import select

from accounts.authenticator import Authenticator, Identity, shown_login
from accounts.psc_http import PscHttp, PscUnavailable
from accounts.psc_keys import DISCOVERY_PATH, KeyStore, ProviderMetadata
from accounts.psc_tokens import TokenRefused, TokenValidator
from config.settings import Settings
from storage.database import Database
from storage.schema import accounts
from storage.traces import TraceBuffer

log = logging.getLogger("mssante.accounts")


@dataclass(frozen=True)
class TokenVerdict:
    """An identity, or why not: ``status`` is RFC 7628's (``invalid_token`` for a token
    that is wrong, ``temporarily_unavailable`` when PSC could not be asked)."""

    identity: Identity | None
    reason: str = ""
    status: str = "invalid_token"


async def mailbox_for_idnat(db: Database, idnat: str, login: str | None,
                            method: str) -> Identity | None:
    """The active PER mailbox of ``idnat`` (the one named ``login`` when it has several)."""
    async with db.read() as conn:
        rows = (await conn.execute(
            select(accounts.c.id, accounts.c.address, accounts.c.type, accounts.c.idnat)
            .where(accounts.c.idnat == idnat, accounts.c.type == "PER",
                   accounts.c.status == "active")
        )).all()
    wanted = (login or "").strip().lower()
    if wanted:
        rows = [r for r in rows if r.address == wanted]
    if len(rows) != 1:
        return None
    row = rows[0]
    return Identity(account_id=row.id, address=row.address, type=row.type, method=method,
                    idnat=row.idnat)


class PscLogin:
    """Checks a token and finds its mailbox; shared by IMAP and SMTP submission."""

    def __init__(self, db: Database, authenticator: Authenticator,
                 validator: TokenValidator, metadata: ProviderMetadata) -> None:
        self._db = db
        self._auth = authenticator
        self.validator = validator
        self.metadata = metadata
        self.http = validator._http

    async def close(self) -> None:
        await self.http.close()

    @property
    def traces(self) -> TraceBuffer:
        """The attempts' trace buffer shared with every other login."""
        return self._auth.traces

    def error_challenge(self, status: str) -> bytes:
        """RFC 7628 §3.2.2: the JSON a failed exchange is answered with before the final
        failure: the status, the scope the client should ask for, and where the issuer's
        discovery document is, so that the client can get a new token."""
        settings = self.validator.settings
        return json.dumps({
            "status": status, "scope": settings.scope,
            "openid-configuration": settings.issuer.rstrip("/") + DISCOVERY_PATH,
        }, separators=(",", ":")).encode()

    async def check(self, login: str, token: str, method: str, *, client: str | None = None,
                    protocol: str = "", session_id: str = "") -> TokenVerdict:
        await self._auth.access.start()
        shown = shown_login(login.strip().lower())
        verdict = self._auth.limiter.before(login.strip().lower(), client)
        if verdict.refused is not None:
            result = TokenVerdict(None, verdict.refused)
        else:
            result = await self._check(login, token, method)
            if result.identity is not None:
                self._auth.limiter.succeeded(login.strip().lower(), client)
            elif result.status == "invalid_token":
                self._auth.limiter.failed(login.strip().lower(), client, name_tried=False)
        self._auth.traces.add(
            session_id=session_id, service=protocol or "unknown",
            event="auth_success" if result.identity is not None else "auth_failure",
            detail={"method": method, "login": shown, "client": client or "",
                    "result": "ok" if result.identity is not None else result.reason[:120]},
        )
        if result.identity is None:
            log.info("psc_token_refused", extra={"fields": {
                "protocol": protocol, "method": method, "login": shown,
                "client": client or "", "reason": result.reason}})
        return result

    async def _check(self, login: str, token: str, method: str) -> TokenVerdict:
        try:
            claims = await self.validator.access_token(token)
        except TokenRefused as refused:
            return TokenVerdict(None, refused.reason, refused.status)
        except PscUnavailable as exc:
            log.warning("psc_unavailable", extra={"fields": {"error": str(exc)[:300]}})
            return TokenVerdict(None, "PSC unavailable", "temporarily_unavailable")
        identity = await mailbox_for_idnat(self._db, claims.idnat, login or None, method)
        if identity is None:
            return TokenVerdict(None, "no active PER mailbox for this idNatPS"
                                + (" and login" if login else ""))
        return TokenVerdict(replace(identity, expires_at=claims.expires_at))


def build_psc_login(settings: Settings, db: Database,
                    authenticator: Authenticator) -> PscLogin | None:
    """The gateway's Pro Santé Connect checker, or None when ``[psc] issuer`` is empty."""
    psc = settings.psc
    if not psc.enabled:
        return None
    http = PscHttp(psc)
    metadata = ProviderMetadata(psc, http)
    keys = KeyStore(psc, http, metadata, settings.data_dir)
    return PscLogin(db, authenticator, TokenValidator(psc, keys, http), metadata)
