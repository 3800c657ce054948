"""« Mot de passe oublié » : a code to the usual address, then a new portal password.

The request page answers the same for every address (:mod:`accounts.password_reset`); the
code page takes the code and the new password together: the code is checked first (5
tries), then the password against the policy — a refused password does not cost the code,
the page asks again for the password only. Success ends every session of the account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from accounts import otp, password_reset
from accounts.authenticator import shown_login
from accounts.errors import AccountRefused
from web.pages import Pages
from web.sessions import Session

if TYPE_CHECKING:
    from web.portal import PortalDeps

SENT = ("Si un compte actif correspond à cette adresse, un code à usage unique vient "
        "d'être envoyé à son adresse e-mail d'usage. Il est valable 10 minutes.")
THROTTLED = ("Trop de demandes : attendez quelques minutes avant de demander un nouveau "
             "code.")
SPENT = ("Ce code a expiré, a déjà servi ou a été trop souvent mal saisi : demandez-en un "
         "nouveau.")
DONE = ("Votre mot de passe est changé et toutes vos sessions sont fermées : connectez-vous "
        "avec le nouveau mot de passe.")


class ResetPages(Pages):
    def __init__(self, deps: PortalDeps) -> None:
        super().__init__(deps.db, deps.sessions)
        self.deps = deps
        self.throttle = password_reset.ResetThrottle()

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/mot-de-passe-oublie", page(self.ask), methods=["GET", "HEAD", "POST"]),
            Route("/mot-de-passe-oublie/code", page(self.answer),
                  methods=["GET", "HEAD", "POST"]),
        ]

    async def ask(self, request: Request, session: Session, form: FormData | None,
                  ) -> Response:
        if form is None:
            return self._render(request, session, "reset_ask.html",
                                title="Mot de passe oublié")
        login = str(form.get("email", "")).strip()[:320]
        if not self.throttle.allow(login, self._client(request)):
            return self._render(request, session, "reset_ask.html", status=429,
                                title="Mot de passe oublié", error=THROTTLED)
        started = await password_reset.start(self.db, login, self.deps.clock())
        session.data.pop("reset_ok", None)
        session.data["reset"] = started.challenge
        session.data["reset_login"] = login
        if started.code is not None and started.to is not None:
            await self.deps.outbox.send(
                started.to, f"Votre code de réinitialisation : {started.code}",
                "Bonjour,\n\nQuelqu'un (vous, sans doute) a demandé à changer le mot de passe "
                f"de votre compte de messagerie sécurisée de santé. Le code est :\n\n"
                f"    {started.code}\n\nIl est valable 10 minutes et ne sert qu'une fois. Si "
                "vous n'avez rien demandé, ignorez ce message : votre mot de passe reste "
                "le même.\n", kind="reset-code")
        return self._see_other("/mot-de-passe-oublie/code")

    def _code_page(self, request: Request, session: Session, *, status: int = 200,
              error: str | None = None) -> Response:
        return self._render(request, session, "reset_code.html", status=status,
                            title="Nouveau mot de passe", notice=SENT if not error else None,
                            error=error, verified="reset_ok" in session.data)

    async def answer(self, request: Request, session: Session, form: FormData | None,
                     ) -> Response:
        challenge = session.data.get("reset")
        if not isinstance(challenge, otp.OtpChallenge):
            return self._see_other("/mot-de-passe-oublie")
        if form is None:
            return self._code_page(request, session)
        account_id = session.data.get("reset_ok")
        if account_id is None:
            after, outcome = otp.verify(challenge, str(form.get("code", ""))[:32],
                                        self.deps.clock())
            if outcome == "ok" and challenge.account_id == 0:
                outcome = "wrong"  # no code was sent: nothing can match (1 in a million)
            session.data["reset"] = after
            self.deps.authenticator.traces.add(
                session_id=self._trace_id(session), service="web",
                event="auth_success" if outcome == "ok" else "auth_failure",
                detail={"method": "reset-otp", "client": self._client(request) or "",
                        "login": shown_login(str(session.data.get("reset_login", ""))),
                        "result": outcome})
            if outcome == "wrong":
                left = otp.MAX_TRIES - after.tries
                return self._code_page(request, session, status=400,
                                  error=f"Code incorrect. Il vous reste {left} essai(s).")
            if outcome != "ok":
                session.data.pop("reset", None)
                return self._render(request, session, "reset_ask.html", status=400,
                                    title="Mot de passe oublié", error=SPENT)
            account_id = challenge.account_id
            session.data["reset_ok"] = account_id
        if self.deps.clock() >= challenge.expires_at:
            session.data.clear()
            return self._render(request, session, "reset_ask.html", status=400,
                                title="Mot de passe oublié", error=SPENT)
        try:
            await password_reset.set_new_password(
                self.db, int(account_id), str(form.get("password", ""))[:1024],
                str(form.get("password_confirm", ""))[:1024])
        except AccountRefused as exc:
            return self._code_page(request, session, status=400, error=str(exc))
        self.deps.sessions.drop_account(int(account_id))
        self.deps.authenticator.forget(int(account_id))
        self.deps.sessions.drop(session)
        request.state.session = None
        return self._render(request, session, "message.html", title="Mot de passe changé",
                            lines=[DONE], link=("/connexion", "Se connecter"))
