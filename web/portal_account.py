"""« Mon compte »: identity, application passwords, delegations given and held (with what
the delegates did), and the recent connections to the account.

A nominative mailbox's holder gives a designated third party (a secretary) read or
read-write access to the mailbox, and if wanted the right to send as the holder; changes
it; revokes it (:mod:`accounts.sharing`, proofs ``delegation-granted|changed|revoked``
naming the holder). Every change is a POST with the session's CSRF token; refusals are
French sentences with status 400.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from accounts import app_passwords, delegation_uses, delegations, sharing
from accounts.authenticator import shown_login
from accounts.errors import AccountRefused
from accounts.registrations import USUAL_EMAIL
from storage import traces as trace_rows
from storage.accounts import Account
from storage.types import utcnow
from web.pages import Pages
from web.sessions import Session

if TYPE_CHECKING:
    from web.portal import PortalDeps

MAILBOX_WORDS = {"PER": "nominative", "ORG": "organisationnelle", "APP": "applicative"}
RECENT_CONNECTIONS = 20
RECENT_WINDOW = timedelta(days=90)
METHOD_WORDS = {
    "portal-password": "mot de passe du portail", "portal-otp": "code à usage unique",
    "PLAIN": "mot de passe d'application", "LOGIN": "mot de passe d'application",
    "EXTERNAL": "certificat", "XOAUTH2": "Pro Santé Connect",
    "OAUTHBEARER": "Pro Santé Connect",
}
PROTOCOL_WORDS = {"web": "portail", "imap": "IMAP", "smtp": "SMTP", "ldap": "annuaire"}
RESULT_WORDS = {"ok": "réussie", "wrong_password": "mot de passe erroné",
                "unknown": "échouée", "wrong": "code erroné", "expired": "code expiré",
                "exhausted": "trop d'essais", "used": "code déjà utilisé",
                "locked": "verrouillée", "over_budget": "trop de tentatives"}


class AccountPages(Pages):
    """``/compte`` and its forms."""

    def __init__(self, deps: PortalDeps) -> None:
        super().__init__(deps.db, deps.sessions)
        self.deps = deps

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/compte", page(self.account), methods=["GET", "HEAD"]),
            Route("/compte/mots-de-passe", page(self.create_app_password), methods=["POST"]),
            Route("/compte/mots-de-passe/{cred_id:int}/revoquer",
                  page(self.revoke_app_password), methods=["POST"]),
            Route("/compte/delegations", page(self.delegate), methods=["POST"]),
            Route("/compte/delegations/retirer", page(self.undelegate), methods=["POST"]),
        ]

    async def _connections(self, user: Account) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            found = await trace_rows.auth_attempts(
                conn, shown_login(user.address), limit=RECENT_CONNECTIONS,
                since=utcnow() - RECENT_WINDOW)
        return [{
            "at": t.created_at, "ok": t.event == "auth_success",
            "protocol": PROTOCOL_WORDS.get(t.service, t.service),
            "method": METHOD_WORDS.get(str(t.detail.get("method")),
                                       str(t.detail.get("method", ""))),
            "client": str(t.detail.get("client", "")) or "—",
            "result": RESULT_WORDS.get(str(t.detail.get("result")),
                                       str(t.detail.get("result", ""))),
        } for t in found]

    async def _account_page(self, request: Request, session: Session, user: Account, *,
                            status: int = 200, **context: Any) -> Response:
        passwords = await app_passwords.list_live(self.db, user.address)
        shared = await delegations.list_for(self.db, user.address)
        uses = await delegation_uses.uses(self.db, user) if shared.given or (
            user.type == "PER") else []
        return self._render(
            request, session, "account.html", status=status, title="Mon compte", user=user,
            account=user, passwords=passwords,
            mailbox_type=MAILBOX_WORDS.get(user.type, user.type),
            usual_email=user.settings.get(USUAL_EMAIL),
            given=[(d, sharing.level_of(d.rights)) for d in shared.given],
            received=[(d, sharing.level_of(d.rights)) for d in shared.received],
            levels=sharing.LEVEL_WORDS, per_levels=sharing.PER_LEVELS, uses=uses,
            connections=await self._connections(user), **context)

    async def account(self, request: Request, session: Session, _form: FormData | None,
                      ) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        return await self._account_page(request, session, user)

    async def create_app_password(self, request: Request, session: Session,
                                  form: FormData | None) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        assert form is not None
        try:
            created = await app_passwords.create(self.db, user.address,
                                                 str(form.get("label", ""))[:200])
        except AccountRefused as exc:
            return await self._account_page(request, session, user, status=400,
                                            error=str(exc))
        # shown in this answer only: never stored, never shown again
        return await self._account_page(request, session, user, new_password=created)

    async def revoke_app_password(self, request: Request, session: Session,
                                  _form: FormData | None) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        try:
            revoked = await app_passwords.revoke(self.db, user.address,
                                                 int(request.path_params["cred_id"]))
        except AccountRefused as exc:
            return await self._account_page(request, session, user, status=400,
                                            error=str(exc))
        self.deps.authenticator.forget(user.id)
        return await self._account_page(
            request, session, user,
            notice=f"Le mot de passe « {revoked.label} » est révoqué : les connexions "
                   "ouvertes avec lui sont fermées.")

    async def delegate(self, request: Request, session: Session, form: FormData | None,
                       ) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        assert form is not None
        try:
            done = await sharing.delegate_per(
                self.db, user, str(form.get("tiers", "")).strip()[:320],
                str(form.get("niveau", "")), send_as=form.get("envoi") == "oui")
        except AccountRefused as exc:
            return await self._account_page(request, session, user, status=400,
                                            error=str(exc))
        self.deps.authenticator.forget(done.delegate_id)
        words = sharing.LEVEL_WORDS[sharing.level_of(done.rights)]
        return await self._account_page(
            request, session, user,
            notice=f"{done.delegate} a accès à votre boîte en {words}"
                   + (" et peut envoyer en votre nom." if done.can_send_as else "."))

    async def undelegate(self, request: Request, session: Session, form: FormData | None,
                         ) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        assert form is not None
        third = str(form.get("tiers", "")).strip()[:320]
        try:
            await sharing.undelegate_per(self.db, user, third)
        except AccountRefused as exc:
            return await self._account_page(request, session, user, status=400,
                                            error=str(exc))
        self.deps.authenticator.forget()
        return await self._account_page(
            request, session, user,
            notice=f"{third.lower()} n'a plus accès à votre boîte : ses connexions ouvertes "
                   "la perdent.")
