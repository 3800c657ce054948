"""The administrators' account list: search, suspend, reactivate, close (after a
confirmation page), with the rules of :mod:`accounts.lifecycle` — the same as
``mssante accounts suspend|reactivate|close``.

Every action is a POST carrying the session's CSRF token; closing asks first on a page that
says what closure means (it is final) and goes through only with ``confirmer=oui``. The
proof of each change names the administrator's address as actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from accounts import lifecycle
from accounts.errors import AccountRefused
from storage import accounts as account_rows
from storage.accounts import Account
from storage.schema import ACCOUNT_STATUSES
from web.pages import Forbidden, Pages
from web.sessions import Session

if TYPE_CHECKING:
    from web.portal import PortalDeps

MAX_LISTED = 200
"""Accounts one page lists; a search narrows it."""
MAX_SEARCH = 100
ADMIN_ONLY = "Cette page est réservée aux administrateurs du service."
ACTION_WORDS = {"suspend": "suspendue", "reactivate": "réactivée", "close": "fermée"}
TYPE_WORDS = {"PER": "nominative", "ORG": "organisationnelle", "APP": "applicative"}


async def require_admin(pages: Pages, session: Session) -> Account:
    """The signed-in administrator, or :class:`Forbidden`."""
    user = await pages._user(session)
    if user is None or not user.is_admin:
        raise Forbidden(ADMIN_ONLY)
    return user


class AdminAccounts(Pages):
    """``/admin/comptes``: the account list and its actions."""

    def __init__(self, deps: PortalDeps) -> None:
        super().__init__(deps.db, deps.sessions)
        self.deps = deps

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/admin/comptes", page(self.accounts), methods=["GET", "HEAD"]),
            Route("/admin/comptes/action", page(self.act), methods=["POST"]),
        ]

    async def _list_page(self, request: Request, session: Session, admin: Account, *,
                         status: int = 200, search: str = "", wanted: str = "",
                         **context: Any) -> Response:
        async with self.db.read() as conn:
            found = await account_rows.list_accounts(
                conn, status=wanted or None, search=search or None, limit=MAX_LISTED + 1)
        return self._render(
            request, session, "admin_accounts.html", status=status, title="Comptes",
            user=admin, accounts=found[:MAX_LISTED], more=len(found) > MAX_LISTED,
            search=search, wanted=wanted, statuses=lifecycle.STATUS_WORDS,
            types=TYPE_WORDS, **context)

    async def accounts(self, request: Request, session: Session, _form: FormData | None,
                       ) -> Response:
        if await self._user(session) is None:
            return self._see_other("/connexion")
        admin = await require_admin(self, session)
        search = request.query_params.get("recherche", "").strip()[:MAX_SEARCH]
        wanted = request.query_params.get("statut", "").strip()
        if wanted and wanted not in ACCOUNT_STATUSES:
            return await self._list_page(
                request, session, admin, status=400, search=search,
                error=f"Statut {wanted[:40]!r} inconnu : choisissez parmi "
                      f"{', '.join(lifecycle.STATUS_WORDS.values())}.")
        return await self._list_page(request, session, admin, search=search, wanted=wanted)

    async def act(self, request: Request, session: Session, form: FormData | None,
                  ) -> Response:
        admin = await require_admin(self, session)
        assert form is not None
        address = str(form.get("adresse", "")).strip()[:320]
        action = str(form.get("action", ""))
        if action not in lifecycle.ACTIONS:
            return await self._list_page(request, session, admin, status=400,
                                         error=f"Action {action[:40]!r} inconnue.")
        if action == "close" and form.get("confirmer") != "oui":
            async with self.db.read() as conn:
                target = await account_rows.get_by_address(conn, address)
            if target is None:
                return await self._list_page(
                    request, session, admin, status=400,
                    error=f"L'adresse {address!r} n'a pas de boîte ici.")
            return self._render(request, session, "admin_close.html",
                                title="Fermer une boîte", user=admin, target=target)
        try:
            changed = await lifecycle.change(self.db, address, action, actor=admin.address)
        except AccountRefused as exc:
            return await self._list_page(request, session, admin, status=400,
                                         error=str(exc))
        self.deps.authenticator.forget(changed.id)
        return await self._list_page(
            request, session, admin,
            notice=f"La boîte {changed.address} est {ACTION_WORDS[action]}.")
