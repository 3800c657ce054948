"""CPS card login: the portal's second HTTPS listener, ``[web] cps_port``, whose TLS
handshake REQUIRES a client certificate chaining to the trust anchors.

A certificate that is expired, of an unknown authority, or absent ends the handshake (the
browser shows its own error). After it, ``/connexion/cps`` checks revocation against the
CRLs in force (:mod:`trustspace.crl`), then maps the certificate to a mailbox exactly as SASL
EXTERNAL does (:meth:`accounts.authenticator.Authenticator.identify_certificate`): the
idNatPS of a personal certificate names the professional's nominative mailbox. Only
personal certificates open the portal: an applicative (organisation) certificate opens its
APP mailbox for a mail system, never a person's portal session. Refusals are French pages.
No e-mailed code follows a CPS login (the card and its PIN are two factors already); the
session identifier is replaced, and the browser goes on to the portal's ``/compte`` on the
main port (same host, so the same ``__Host-`` cookie).

The main portal's ``/connexion/cps`` only sends the browser to this listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cryptography import x509
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from accounts.authenticator import Authenticator, CertificateNotAccepted
from storage.database import Database
from trustspace.certprofiles import Family, PolicyOids, classify
from trustspace.certs import fingerprint_sha256
from web.headers import SecurityHeaders
from web.pages import Pages
from web.sessions import Session, SessionStore

log = logging.getLogger("mssante.web")
PATH = "/connexion/cps"


def cps_link_route(cps_port: Callable[[], int], public_url: str = "") -> Route:
    """``/connexion/cps`` on the main portal: on to the CPS listener of the same host."""

    async def to_cps(request: Request) -> Response:
        host = request.url.hostname or "localhost"
        if public_url:
            from urllib.parse import urlsplit
            host = urlsplit(public_url).hostname or host
        if ":" in host:
            host = f"[{host}]"
        return RedirectResponse(f"https://{host}:{cps_port()}{PATH}", status_code=303)

    return Route(PATH, to_cps, methods=["GET"])


class CpsPages(Pages):
    """The CPS listener's pages, on the portal's own session store."""

    def __init__(self, db: Database, sessions: SessionStore, authenticator: Authenticator,
                 revocation: Any, portal_port: Callable[[], int], public_url: str = "") -> None:
        super().__init__(db, sessions)
        self.authenticator = authenticator
        self.revocation = revocation
        self.policies = PolicyOids.from_settings(db.settings)
        self.portal_port = portal_port
        self.public_url = public_url.rstrip("/")

    def app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/", lambda _r: RedirectResponse(PATH, status_code=303), methods=["GET"]),
            Route(PATH, self._page(self.login), methods=["GET"]),
        ]
        return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])

    def _portal(self, request: Request, path: str) -> str:
        if self.public_url:
            return self.public_url + path
        host = request.url.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.portal_port()}{path}"

    def _refused(self, request: Request, session: Session, why: str) -> Response:
        return self._render(request, session, "message.html", status=403,
                            title="Connexion par carte CPS impossible", error=why, lines=[],
                            link=(self._portal(request, "/connexion"), "Page de connexion"))

    async def login(self, request: Request, session: Session, _form: FormData | None,
                    ) -> Response:
        der = getattr(request.state, "client_certificate", None)
        if not der:  # the handshake requires one; kept for a misconfigured context
            return self._refused(request, session, "aucun certificat client n'a été présenté. "
                                 "Insérez votre carte CPS et recommencez.")
        cert = x509.load_der_x509_certificate(der)
        client = self._client(request)
        if self.revocation is not None:
            verdict = self.revocation.check(der)
            if not verdict.ok:
                log.info("certificate_refused", extra={"fields": {
                    "use": "portal", "reason": verdict.reason,
                    "fingerprint": fingerprint_sha256(cert)}})
                self._trace(session, client, None, "revoked")
                return self._refused(request, session, "ce certificat a été révoqué par son "
                                     "autorité (ou sa liste de révocation n'est plus à jour) : "
                                     "il ne permet plus de se connecter. Demandez une nouvelle "
                                     "carte ou réessayez plus tard.")
        family = classify(cert, self.policies).family
        if family is not Family.PERSONAL:
            self._trace(session, client, None, f"family {family}")
            what = {Family.APPLICATION: "un certificat d'organisation (applicatif)",
                    Family.SERVER: "un certificat de serveur"}.get(
                        family, "un certificat d'un type non reconnu")
            return self._refused(request, session, f"ce certificat est {what} : il ne permet "
                                 "pas de se connecter au portail en tant que personne. "
                                 "Utilisez votre carte CPS personnelle.")
        try:
            identity = await self.authenticator.identify_certificate(
                cert, None, "CPS", client=client, protocol="web",
                session_id=self._trace_id(session))
        except CertificateNotAccepted as exc:
            log.info("cps_login_refused", extra={"fields": {"reason": str(exc)[:200]}})
            identity = None
        if identity is None or identity.type != "PER":
            return self._refused(request, session, "aucune boîte nominative active ne "
                                 "correspond à l'identifiant national (idNatPS) de cette "
                                 "carte. Inscrivez-vous ou contactez l'administrateur.")
        fresh = self.sessions.rotate(session)  # no session fixation
        fresh.data.clear()
        fresh.data["account_id"] = identity.account_id
        fresh.data["login_method"] = "cps"
        request.state.session = fresh
        return RedirectResponse(self._portal(request, "/compte"), status_code=303)

    def _trace(self, session: Session, client: str | None, account_id: int | None,
               result: str) -> None:
        self.authenticator.traces.add(
            session_id=self._trace_id(session), service="web",
            event="auth_success" if account_id is not None else "auth_failure",
            detail={"method": "CPS", "client": client or "", "result": result,
                    "account": account_id})
