"""The professionals' portal: sign-up, confirmation, sign-in (password + e-mailed code),
my account with application passwords, and the administrators' review queue.

Server-rendered French pages (Jinja2, autoescaped), usable without JavaScript; the only
style sheet is ``/static/portal.css`` because the Content-Security-Policy forbids inline
style and script. Every form carries the session's CSRF token and every POST is refused
without it (403). Inputs are checked with the same functions as the command line
(:mod:`accounts.signup`, :mod:`accounts.password_policy`, :mod:`accounts.app_passwords`,
:mod:`accounts.registrations`). Sign-up and sign-in answer alike whether an address is
known or not: sign-up always says "if this address can be registered, a link was sent", a
wrong password and an unknown address get the same sentence, through the login limiter
shared with IMAP, SMTP and LDAP (``protocol="web"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from accounts import otp
from accounts.authenticator import Authenticator, shown_login
from accounts.errors import AccountRefused
from accounts.france import DEPARTMENTS, REGIONS
from accounts.notify import Notifier
from accounts.registrations import USUAL_EMAIL, Registrar
from accounts.signup import FIELDS, PROFESSION_TYPES, PROFESSIONS, check_signup
from storage import accounts as account_rows
from storage.accounts import Account
from storage.database import Database
from storage.types import utcnow
from web.pages import Pages
from web.portal_account import AccountPages
from web.portal_admin import AdminAccounts, require_admin
from web.portal_mailboxes import MailboxPages
from web.portal_reset import ResetPages
from web.sessions import Session, SessionStore

HERE = Path(__file__).resolve().parent
MAX_OTP_SENDS = 4
"""Codes one sign-in may cause (the first and three re-sends): each gives 5 tries."""
LOGIN_FAILED = "Adresse ou mot de passe incorrect."


@dataclass
class PortalDeps:
    """What the portal needs from the gateway."""

    db: Database
    authenticator: Authenticator
    registrar: Registrar
    outbox: Notifier
    sessions: SessionStore
    local_domains: tuple[str, ...]
    clock: Callable[[], datetime] = field(default=utcnow)


class Portal(Pages):
    """The portal's routes over :class:`PortalDeps`."""

    def __init__(self, deps: PortalDeps) -> None:
        super().__init__(deps.db, deps.sessions)
        self.deps = deps

    # -- plumbing ------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/", page(self.home), methods=["GET", "HEAD"]),
            Route("/inscription", page(self.signup), methods=["GET", "HEAD", "POST"]),
            Route("/inscription/envoyee", page(self.signup_sent), methods=["GET", "HEAD"]),
            Route("/confirmer", page(self.confirm), methods=["GET", "HEAD", "POST"]),
            Route("/confirmer/renvoyer", page(self.resend_link), methods=["POST"]),
            Route("/connexion", page(self.login), methods=["GET", "HEAD", "POST"]),
            Route("/connexion/code", page(self.login_code), methods=["GET", "HEAD", "POST"]),
            Route("/connexion/code/renvoyer", page(self.resend_code), methods=["POST"]),
            Route("/deconnexion", page(self.logout), methods=["POST"]),
            *AccountPages(self.deps).routes(),
            Route("/admin/demandes", page(self.review_queue), methods=["GET", "HEAD"]),
            Route("/admin/demandes/{reg_id:int}/accepter", page(self.approve),
                  methods=["POST"]),
            Route("/admin/demandes/{reg_id:int}/refuser", page(self.reject), methods=["POST"]),
            *AdminAccounts(self.deps).routes(),
            *MailboxPages(self.deps).routes(),
            *ResetPages(self.deps).routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    # -- public pages --------------------------------------------------------------------
    async def home(self, request: Request, session: Session, _form: FormData | None,
                   ) -> Response:
        return self._render(request, session, "home.html", title="Messagerie sécurisée de santé",
                            user=await self._user(session))

    def _signup_page(self, request: Request, session: Session, values: Mapping[str, str],
                     errors: Mapping[str, str], status: int = 200) -> Response:
        return self._render(
            request, session, "signup.html", status=status, title="Inscription",
            values=values, errors=errors,
            error="Votre demande n'a pas été envoyée : corrigez les champs signalés."
            if errors else None,
            profession_types=[(p, p) for p in PROFESSION_TYPES],
            professions=[(p, p) for p in PROFESSIONS],
            regions=[(r, r) for r in REGIONS],
            departments=[(code, f"{code} — {name}") for code, name in DEPARTMENTS.items()])

    async def signup(self, request: Request, session: Session, form: FormData | None,
                     ) -> Response:
        if form is None:
            return self._signup_page(request, session, {}, {})
        data = {name: str(form.get(name, "")) for name in FIELDS}
        checked = check_signup(data, local_domains=self.deps.local_domains)
        if checked.form is None:
            shown = {k: v for k, v in data.items() if k not in {"password", "password_confirm"}}
            return self._signup_page(request, session, shown, checked.errors, status=400)
        if not self.deps.authenticator.limiter.may_hash(self._client(request)):
            # each sign-up hashes a password (argon2: CPU and 64 MiB): same budget as logins
            return self._render(
                request, session, "message.html", status=429, title="Trop de demandes",
                lines=["Trop de demandes depuis votre adresse réseau : réessayez dans "
                       "quelques minutes."])
        await self.deps.registrar.sign_up(checked.form)
        session.data["signup_warnings"] = checked.warnings
        return self._see_other("/inscription/envoyee")

    async def signup_sent(self, request: Request, session: Session, _form: FormData | None,
                          ) -> Response:
        return self._render(
            request, session, "message.html", title="Demande envoyée",
            warnings=session.data.pop("signup_warnings", {}),
            lines=["Si cette adresse peut être inscrite, un e-mail de confirmation vient d'y "
                   "être envoyé. Ouvrez le lien qu'il contient dans les 48 heures pour "
                   "transmettre votre demande aux administrateurs.",
                   "Votre demande sera ensuite examinée sous 48 heures ouvrées."],
            resend=True)

    async def confirm(self, request: Request, session: Session, form: FormData | None,
                      ) -> Response:
        if form is None:
            token = request.query_params.get("jeton", "")
            return self._render(request, session, "confirm.html",
                                title="Confirmation de votre adresse", token=token[:200])
        try:
            await self.deps.registrar.confirm(str(form.get("jeton", ""))[:200])
        except AccountRefused as exc:
            return self._render(request, session, "message.html", status=400,
                                title="Confirmation impossible", error=str(exc), lines=[],
                                resend=True)
        return self._render(
            request, session, "message.html", title="Adresse confirmée",
            lines=["Merci : votre adresse est confirmée et votre demande transmise aux "
                   "administrateurs. Elle sera examinée sous 48 heures ouvrées ; vous "
                   "recevrez un e-mail dès qu'elle aura été traitée."])

    async def resend_link(self, request: Request, session: Session, form: FormData | None,
                          ) -> Response:
        assert form is not None
        await self.deps.registrar.resend(str(form.get("email", "")).strip()[:320])
        return self._render(
            request, session, "message.html", title="Nouveau lien",
            lines=["Si une demande non confirmée existe pour cette adresse, un nouveau lien "
                   "vient d'y être envoyé (au plus un toutes les 5 minutes)."])

    # -- sign-in -------------------------------------------------------------------------
    async def login(self, request: Request, session: Session, form: FormData | None,
                    ) -> Response:
        if form is None:
            return self._render(request, session, "login.html", title="Connexion", email="")
        email = str(form.get("email", "")).strip()[:320]
        password = str(form.get("password", ""))[:1024]
        ident = await self.deps.authenticator.check_password(
            email, password, "portal-password", client=self._client(request),
            protocol="web", session_id=self._trace_id(session), kind="password")
        if ident is None:
            return self._render(request, session, "login.html", status=400,
                                title="Connexion", email=email, error=LOGIN_FAILED)
        async with self.deps.db.read() as conn:
            account = await account_rows.get_by_id(conn, ident.account_id)
        usual = str((account.settings if account else {}).get(USUAL_EMAIL, ""))
        if account is None or not usual:
            return self._render(
                request, session, "login.html", status=400, title="Connexion", email=email,
                error="Aucune adresse e-mail d'usage n'est enregistrée pour ce compte : le "
                      "code ne peut pas vous être envoyé. Contactez l'administrateur.")
        session.data.clear()
        session.data["otp_sends"] = 0
        session.data["otp_login"] = account.address
        await self._send_code(session, account.id, usual)
        return self._see_other("/connexion/code")

    async def _send_code(self, session: Session, account_id: int, usual: str) -> None:
        challenge, code = otp.new_challenge(account_id, self.deps.clock())
        session.data["otp"] = challenge
        session.data["otp_to"] = usual
        session.data["otp_sends"] = int(session.data.get("otp_sends", 0)) + 1
        await self.deps.outbox.send(
            usual, f"Votre code de connexion : {code}",
            f"Bonjour,\n\nVotre code de connexion à la messagerie sécurisée de santé est :\n\n"
            f"    {code}\n\nIl est valable 10 minutes et ne sert qu'une fois. Si vous n'avez "
            "pas demandé à vous connecter, changez votre mot de passe : quelqu'un le "
            "connaît.\n", kind="login-code")

    async def login_code(self, request: Request, session: Session, form: FormData | None,
                         ) -> Response:
        challenge = session.data.get("otp")
        if not isinstance(challenge, otp.OtpChallenge):
            return self._see_other("/connexion")
        if form is None:
            return self._render(request, session, "otp.html", title="Code de connexion")
        after, outcome = otp.verify(challenge, str(form.get("code", ""))[:32],
                                    self.deps.clock())
        session.data["otp"] = after
        self.deps.authenticator.traces.add(
            session_id=self._trace_id(session), service="web",
            event="auth_success" if outcome == "ok" else "auth_failure",
            detail={"method": "portal-otp", "client": self._client(request) or "",
                    "login": shown_login(str(session.data.get("otp_login", ""))),
                    "result": outcome, "account": challenge.account_id})
        if outcome == "ok":
            fresh = self.deps.sessions.rotate(session)
            fresh.data.clear()
            fresh.data["account_id"] = challenge.account_id
            request.state.session = fresh
            return self._see_other("/compte")
        if outcome == "wrong":
            left = otp.MAX_TRIES - after.tries
            return self._render(request, session, "otp.html", status=400,
                                title="Code de connexion",
                                error=f"Code incorrect. Il vous reste {left} essai(s).")
        session.data.clear()
        return self._render(
            request, session, "login.html", status=400, title="Connexion", email="",
            error="Ce code a expiré, a déjà servi ou a été trop souvent mal saisi : "
                  "reconnectez-vous pour en recevoir un nouveau.")

    async def resend_code(self, request: Request, session: Session, _form: FormData | None,
                          ) -> Response:
        challenge = session.data.get("otp")
        if not isinstance(challenge, otp.OtpChallenge):
            return self._see_other("/connexion")
        now = self.deps.clock()
        if int(session.data.get("otp_sends", 0)) >= MAX_OTP_SENDS:
            error = "Trop de codes demandés : reconnectez-vous."
            session.data.clear()
            return self._render(request, session, "login.html", status=429,
                                title="Connexion", email="", error=error)
        if not otp.may_resend(challenge, now):
            return self._render(request, session, "otp.html", status=429,
                                title="Code de connexion",
                                error="Un code vient d'être envoyé : attendez une minute "
                                      "avant d'en demander un autre.")
        await self._send_code(session, challenge.account_id, str(session.data["otp_to"]))
        return self._render(request, session, "otp.html", title="Code de connexion",
                            notice="Un nouveau code vient d'être envoyé ; l'ancien ne "
                                   "fonctionne plus.")

    async def logout(self, request: Request, session: Session, _form: FormData | None,
                     ) -> Response:
        self.deps.sessions.drop(session)
        request.state.session = None
        return self._see_other("/")

    # -- administrators ------------------------------------------------------------------
    async def _admin(self, session: Session) -> Account:
        return await require_admin(self, session)

    async def _queue_page(self, request: Request, session: Session, user: Account, *,
                          status: int = 200, **context: Any) -> Response:
        entries = await self.deps.registrar.queue()
        return self._render(request, session, "admin_queue.html", status=status,
                            title="Demandes à examiner", user=user, entries=entries, **context)

    async def review_queue(self, request: Request, session: Session, _form: FormData | None,
                           ) -> Response:
        if await self._user(session) is None:
            return self._see_other("/connexion")
        return await self._queue_page(request, session, await self._admin(session))

    async def approve(self, request: Request, session: Session, form: FormData | None,
                      ) -> Response:
        admin = await self._admin(session)
        assert form is not None
        reg_id = int(request.path_params["reg_id"])
        try:
            account = await self.deps.registrar.approve(
                reg_id, admin=admin.address, address=str(form.get("address", ""))[:320])
        except AccountRefused as exc:
            return await self._queue_page(request, session, admin, status=400, error=str(exc))
        return await self._queue_page(
            request, session, admin,
            notice=f"Demande n° {reg_id} acceptée : la boîte {account.address} est créée et "
                   "le demandeur prévenu.")

    async def reject(self, request: Request, session: Session, form: FormData | None,
                     ) -> Response:
        admin = await self._admin(session)
        assert form is not None
        reg_id = int(request.path_params["reg_id"])
        try:
            await self.deps.registrar.reject(reg_id, admin=admin.address,
                                             reason=str(form.get("reason", "")))
        except AccountRefused as exc:
            return await self._queue_page(request, session, admin, status=400, error=str(exc))
        return await self._queue_page(
            request, session, admin,
            notice=f"Demande n° {reg_id} refusée : le demandeur a reçu le motif.")
