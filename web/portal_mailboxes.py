"""Mailbox pages of the portal: an organisational mailbox's members (for administrators,
its responsible and members holding the administer right), an applicative mailbox's
certificate binding and send mode (administrators), and the creation of an organisational
mailbox by an administrator. Rules in :mod:`accounts.sharing`, the same as
``mssante accounts org …``; every change is a POST with the CSRF token and is proved with
the signed-in account as actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from accounts import sharing
from accounts.errors import AccountRefused
from storage import accounts as account_rows
from storage import delegations as delegation_rows
from storage.accounts import Account
from web.pages import Forbidden, Pages
from web.portal_admin import require_admin
from web.sessions import Session

if TYPE_CHECKING:
    from web.portal import PortalDeps

NOT_YOURS = "Vous ne pouvez pas gérer cette boîte."


class MailboxPages(Pages):
    """``/boites/{address}`` and ``/admin/boites-org``."""

    def __init__(self, deps: PortalDeps) -> None:
        super().__init__(deps.db, deps.sessions)
        self.deps = deps

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/boites/{address}", page(self.mailbox), methods=["GET", "HEAD"]),
            Route("/boites/{address}/membres", page(self.set_member), methods=["POST"]),
            Route("/boites/{address}/membres/retirer", page(self.remove_member),
                  methods=["POST"]),
            Route("/boites/{address}/mode", page(self.set_mode), methods=["POST"]),
            Route("/admin/boites-org", page(self.create_org), methods=["POST"]),
        ]

    async def _target(self, request: Request, user: Account) -> Account:
        """The mailbox of the path, when ``user`` may manage it (else Forbidden)."""
        address = str(request.path_params["address"])[:320].strip().lower()
        async with self.db.read() as conn:
            found = await account_rows.get_by_address(conn, address)
        if found is None or found.type == "PER" or found.status == "closed" or not (
                await sharing.may_manage(self.db, found, user)):
            raise Forbidden(NOT_YOURS)
        return found

    async def _page_of(self, request: Request, session: Session, user: Account,
                       box: Account, *, status: int = 200, **context: Any) -> Response:
        if box.type == "APP":
            binding = await sharing.app_binding(self.db, box)
            return self._render(request, session, "mailbox_app.html", status=status,
                                title=f"Boîte applicative {box.address}", user=user, box=box,
                                binding=binding, modes=sharing.APP_MODES, **context)
        async with self.db.read() as conn:
            members = await delegation_rows.of_owner(conn, box.id)
        return self._render(
            request, session, "mailbox_org.html", status=status,
            title=f"Boîte organisationnelle {box.address}", user=user, box=box,
            members=[(m, sharing.level_of(m.rights)) for m in members],
            responsible=box.settings.get(sharing.RESPONSIBLE), levels=sharing.LEVEL_WORDS,
            **context)

    async def mailbox(self, request: Request, session: Session, _form: FormData | None,
                      ) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        return await self._page_of(request, session, user, await self._target(request, user))

    async def _signed(self, session: Session) -> Account:
        user = await self._user(session)
        if user is None:
            raise Forbidden("Votre session a expiré : reconnectez-vous.")
        return user

    async def set_member(self, request: Request, session: Session, form: FormData | None,
                         ) -> Response:
        user = await self._signed(session)
        box = await self._target(request, user)
        assert form is not None
        member = str(form.get("membre", "")).strip()[:320]
        try:
            rights = sharing.rights_for(str(form.get("niveau", "")))
            done = await sharing.set_member(self.db, box.address, member, rights,
                                            send_as=form.get("envoi") == "oui", by=user,
                                            actor=user.address)
        except AccountRefused as exc:
            return await self._page_of(request, session, user, box, status=400,
                                       error=str(exc))
        self.deps.authenticator.forget(done.delegate_id)
        return await self._page_of(
            request, session, user, box,
            notice=f"{done.delegate} : {sharing.LEVEL_WORDS[sharing.level_of(done.rights)]}"
                   + (", peut envoyer au nom de la boîte." if done.can_send_as else "."))

    async def remove_member(self, request: Request, session: Session,
                            form: FormData | None) -> Response:
        user = await self._signed(session)
        box = await self._target(request, user)
        assert form is not None
        member = str(form.get("membre", "")).strip()[:320]
        try:
            await sharing.remove_member(self.db, box.address, member, by=user,
                                        actor=user.address)
        except AccountRefused as exc:
            return await self._page_of(request, session, user, box, status=400,
                                       error=str(exc))
        self.deps.authenticator.forget()
        if not await sharing.may_manage(self.db, box, user):
            return self._see_other("/compte")  # a manager who removed themselves
        return await self._page_of(request, session, user, box,
                                   notice=f"{member.lower()} n'est plus membre.")

    async def set_mode(self, request: Request, session: Session, form: FormData | None,
                       ) -> Response:
        admin = await require_admin(self, session)
        box = await self._target(request, admin)
        assert form is not None
        try:
            box = await sharing.set_app_mode(self.db, box.address, str(form.get("mode", "")),
                                             actor=admin.address)
        except AccountRefused as exc:
            return await self._page_of(request, session, admin, box, status=400,
                                       error=str(exc))
        return await self._page_of(request, session, admin, box,
                                   notice="Le mode de la boîte est enregistré.")

    async def create_org(self, request: Request, session: Session, form: FormData | None,
                         ) -> Response:
        admin = await require_admin(self, session)
        assert form is not None
        try:
            box = await sharing.create_org(
                self.db, str(form.get("adresse", ""))[:320],
                name=str(form.get("nom", ""))[:200],
                responsible=str(form.get("responsable", ""))[:320],
                structure_id=str(form.get("structure", "")).strip()[:20] or None,
                actor=admin.address)
        except AccountRefused as exc:
            return self._render(request, session, "message.html", status=400,
                                title="Création impossible", user=admin, error=str(exc),
                                lines=[], link=("/admin/comptes", "Retour aux comptes"))
        return await self._page_of(request, session, admin, box,
                                   notice=f"La boîte {box.address} est créée.")
