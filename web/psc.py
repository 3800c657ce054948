"""« Se connecter avec Pro Santé Connect »: OpenID Connect authorization code flow with PKCE.

``GET /connexion/psc`` starts a login: a random ``state`` (names the login), ``nonce``
(binds the ID token to it) and PKCE verifier (RFC 7636, S256), remembered here for ten
minutes, and the browser is sent to the issuer's authorization endpoint (from its discovery
document). ``GET /connexion/psc/retour`` is where PSC sends it back: the state must be a
pending one *and* belong to this browser (a ``SameSite=Lax`` cookie holding a random
binding, so that nobody can make someone else's browser finish a login they started —
login CSRF), the code is exchanged at the token endpoint with the client secret and the
verifier, the ID token is checked by :meth:`accounts.psc_tokens.TokenValidator.id_token`
(signature, issuer, audience = client_id, expiry, nonce) and its idNatPS opens the
professional's nominative mailbox. No e-mailed code follows: the CPS card or the e-CPS app
was PSC's second factor. The session identifier is replaced, as after password + code.

The portal's session cookie is ``SameSite=Strict``, so the browser does not send it on the
way back from PSC (a cross-site navigation): the signed-in session is given a new cookie
here, and the page then moves on to ``/compte`` by a same-site refresh, on which the
browser does send it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from accounts.psc_http import PscUnavailable
from accounts.psc_login import PscLogin, mailbox_for_idnat
from accounts.psc_tokens import TokenClaims, TokenRefused
from web.pages import Pages
from web.sessions import Session

log = logging.getLogger("mssante.web")

PENDING_TTL = 600.0
"""Seconds a started PSC login may take to come back."""
MAX_PENDING = 10_000
BINDING_COOKIE = "__Host-mssante-psc"
CALLBACK = "/connexion/psc/retour"
REFUSED = ("La connexion avec Pro Santé Connect n'a pas abouti : {why} Recommencez depuis la "
           "page de connexion.")


@dataclass(frozen=True)
class PendingLogin:
    verifier: str
    nonce: str
    binding: bytes  # SHA-256 of the browser's binding cookie
    redirect_uri: str
    started: float


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class PscPages:
    """The two routes of the PSC login, on the portal's pages and sessions."""

    def __init__(self, pages: Pages, psc: PscLogin, public_url: str = "") -> None:
        self.pages = pages
        self.psc = psc
        self.public_url = public_url.rstrip("/")
        self._pending: OrderedDict[str, PendingLogin] = OrderedDict()
        pages.env.globals["psc_enabled"] = True  # the button on the login page

    def routes(self) -> list[BaseRoute]:
        page = self.pages._page
        return [
            Route("/connexion/psc", page(self.start), methods=["GET"]),
            Route(CALLBACK, page(self.callback), methods=["GET"]),
        ]

    def _refused(self, request: Request, session: Session, why: str,
                 status: int = 400) -> Response:
        response = self.pages._render(
            request, session, "message.html", status=status, title="Connexion impossible",
            error=REFUSED.format(why=why), lines=[], link=("/connexion", "Page de connexion"))
        response.delete_cookie(BINDING_COOKIE, path="/", secure=True, httponly=True,
                               samesite="lax")
        return response

    async def start(self, request: Request, session: Session, _form: FormData | None,
                    ) -> Response:
        try:
            provider = await self.psc.metadata.get()
        except PscUnavailable as exc:
            log.warning("psc_unavailable", extra={"fields": {"error": str(exc)[:300]}})
            return self._refused(request, session, "le service Pro Santé Connect ne répond "
                                 "pas pour le moment.", status=503)
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # RFC 7636 §4.1: 43 to 128 characters
        binding = secrets.token_urlsafe(32)
        base = self.public_url or str(request.base_url).rstrip("/")
        redirect_uri = base + CALLBACK
        self._forget_old()
        self._pending[state] = PendingLogin(
            verifier, nonce, hashlib.sha256(binding.encode()).digest(), redirect_uri,
            time.monotonic())
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        settings = self.psc.validator.settings
        query = urlencode({
            "response_type": "code", "client_id": settings.client_id,
            "redirect_uri": redirect_uri, "scope": settings.scope, "state": state,
            "nonce": nonce, "acr_values": "eidas1",
            "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",  # RFC 7636 §4.2
        })
        response = RedirectResponse(f"{provider.authorization_endpoint}?{query}",
                                    status_code=303)
        # Lax, not Strict: it must come back with PSC's (cross-site, top-level GET) redirect.
        response.set_cookie(BINDING_COOKIE, binding, max_age=int(PENDING_TTL), path="/",
                            secure=True, httponly=True, samesite="lax")
        return response

    def _forget_old(self) -> None:
        limit = time.monotonic() - PENDING_TTL
        while self._pending:
            state, oldest = next(iter(self._pending.items()))
            if oldest.started >= limit:
                break
            del self._pending[state]

    async def callback(self, request: Request, session: Session, _form: FormData | None,
                       ) -> Response:
        q = request.query_params
        state = q.get("state", "")[:200]
        self._forget_old()
        pending = self._pending.pop(state, None)
        if pending is None:
            return self._refused(request, session, "cette demande a expiré ou a déjà servi.")
        binding = request.cookies.get(BINDING_COOKIE, "")
        if not hmac.compare_digest(hashlib.sha256(binding.encode()).digest(), pending.binding):
            return self._refused(request, session, "elle n'a pas été commencée dans ce "
                                 "navigateur.", status=403)
        if "error" in q:
            log.info("psc_login_error", extra={"fields": {"error": q["error"][:60]}})
            return self._refused(request, session, "Pro Santé Connect a refusé ou annulé "
                                 "l'authentification.")
        code = q.get("code", "")[:2000]
        if not code:
            return self._refused(request, session, "aucun code n'a été reçu.")
        try:
            claims = await self._exchange(code, pending)
        except PscUnavailable as exc:
            log.warning("psc_unavailable", extra={"fields": {"error": str(exc)[:300]}})
            return self._refused(request, session, "le service Pro Santé Connect ne répond "
                                 "pas pour le moment.", status=503)
        except TokenRefused as refused:
            log.info("psc_id_token_refused", extra={"fields": {"reason": refused.reason}})
            self._trace(request, session, None, refused.reason)
            return self._refused(request, session, "l'identité transmise n'a pas pu être "
                                 "vérifiée.")
        identity = await mailbox_for_idnat(self.pages.db, claims.idnat, None, "psc")
        if identity is None:
            self._trace(request, session, None, "no active PER mailbox for this idNatPS")
            return self._refused(request, session, "aucune boîte nominative active ne "
                                 "correspond à votre identifiant national (idNatPS). "
                                 "Inscrivez-vous ou contactez l'administrateur.", status=403)
        self._trace(request, session, identity.account_id, "ok")
        fresh = self.pages.sessions.rotate(session)  # no session fixation
        fresh.data.clear()
        fresh.data["account_id"] = identity.account_id
        fresh.data["login_method"] = "psc"
        request.state.session = fresh
        response = self.pages._render(
            request, fresh, "message.html", title="Connexion réussie",
            lines=["Vous êtes connecté avec Pro Santé Connect."],
            link=("/compte", "Continuer vers mon compte"))
        response.headers["refresh"] = "0; url=/compte"
        response.delete_cookie(BINDING_COOKIE, path="/", secure=True, httponly=True,
                               samesite="lax")
        return response

    async def _exchange(self, code: str, pending: PendingLogin) -> TokenClaims:
        settings = self.psc.validator.settings
        provider = await self.psc.metadata.get()
        answer = await self.psc.http.post_form(
            provider.token_endpoint,
            {"grant_type": "authorization_code", "code": code,
             "redirect_uri": pending.redirect_uri, "code_verifier": pending.verifier},
            auth=(settings.client_id, settings.client_secret))
        if "_status" in answer:
            raise TokenRefused(f"token endpoint: {str(answer.get('error'))[:60]}")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise TokenRefused("token endpoint answered without an ID token")
        return await self.psc.validator.id_token(id_token, pending.nonce)

    def _trace(self, request: Request, session: Session, account_id: int | None,
               result: str) -> None:
        self.psc.traces.add(
            session_id=self.pages._trace_id(session), service="web",
            event="auth_success" if account_id is not None else "auth_failure",
            detail={"method": "psc", "client": self.pages._client(request) or "",
                    "result": result[:120], "account": account_id})
