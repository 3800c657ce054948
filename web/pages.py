"""What every page of the portal and the webmail shares: the session found from its cookie,
the CSRF check of every POST, bounded form reading, French templates, the signed-in account.

A page handler is ``async (request, session, form) -> Response``; :meth:`Pages.page` wraps it
so that no handler can forget a check. Sessions live in :class:`web.sessions.SessionStore`
(server side; the cookie carries a random identifier only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from storage import accounts as account_rows
from storage.accounts import Account
from storage.database import Database
from web.sessions import COOKIE, Session, SessionStore
from web.working_dates import french_date

HERE = Path(__file__).resolve().parent
MAX_FORM = 64 * 1024
"""Largest url-encoded form a page reads (file uploads have their own, streamed path)."""

CSRF_REFUSED = ("Ce formulaire a expiré ou ne vient pas de ce site : rechargez la page et "
                "recommencez.")

Handler = Callable[[Request, Session, FormData | None], Awaitable[Response]]


class Forbidden(Exception):
    """A POST without the session's CSRF token, or a page the user may not see; the
    message says which, in French."""

    def __init__(self, message: str = CSRF_REFUSED) -> None:
        super().__init__(message)


def environment() -> Environment:
    """The Jinja2 environment of ``web/templates`` (HTML autoescaped). Templates are
    compiled once: they ship with the code, so no page looks at their files again."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]), enable_async=False,
                      auto_reload=False)
    env.filters["date"] = french_date
    return env


class Pages:
    """The plumbing of server-rendered pages over a database and a session store."""

    def __init__(self, db: Database, sessions: SessionStore) -> None:
        self.db = db
        self.sessions = sessions
        self.env = environment()

    def _page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wraps a handler: finds or opens the session, reads and checks a POSTed form
        (size, CSRF), and sets the session cookie when the identifier changed."""
        async def endpoint(request: Request) -> Response:
            sessions = self.sessions
            session = sessions.get(request.cookies.get(COOKIE))
            fresh = session is None
            form: FormData | None = None
            try:
                if request.method == "POST":
                    if session is None:
                        raise Forbidden
                    form = await self._form(request)
                    if form is None:
                        return self._render(request, session, "message.html", status=413,
                                            title="Formulaire trop volumineux", lines=[])
                    if not session.csrf_ok(str(form.get("csrf", ""))):
                        raise Forbidden
                if session is None:
                    session = sessions.new()
                request.state.session_id = session.id
                response = await handler(request, session, form)
            except Forbidden as exc:
                if session is None:
                    session = sessions.new()
                    fresh = True
                response = self._render(request, session, "message.html", status=403,
                                        title="Accès refusé", lines=[str(exc)])
            current = getattr(request.state, "session", session)
            if current is None:
                response.headers.append("set-cookie", sessions.clear_cookie_header())
            elif fresh or current.id != request.cookies.get(COOKIE):
                response.headers.append("set-cookie", sessions.cookie_header(current))
            return response

        return endpoint

    @staticmethod
    async def _form(request: Request) -> FormData | None:
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_FORM:
            return None
        return await request.form(max_files=0, max_fields=64, max_part_size=MAX_FORM)

    def _render(self, request: Request, session: Session, template: str, *,
                status: int = 200, user: Account | None = None, **context: Any) -> Response:
        context.setdefault("error", None)
        context.setdefault("notice", None)
        context.setdefault("warnings", {})
        html = self.env.get_template(template).render(
            csrf=session.csrf, user=user, domain=self.db.settings.primary_domain,
            **context)
        return HTMLResponse(html, status_code=status)

    async def _user(self, session: Session) -> Account | None:
        """The signed-in account, or None (and the session forgets a closed one)."""
        account_id = session.data.get("account_id")
        if account_id is None:
            return None
        async with self.db.read() as conn:
            account = await account_rows.get_by_id(conn, int(account_id))
        if account is None or account.status != "active":
            session.data.clear()
            return None
        return account

    @staticmethod
    def _client(request: Request) -> str | None:
        return request.client.host if request.client else None

    @staticmethod
    def _trace_id(session: Session) -> str:
        """Names the session in traces without giving its cookie value away."""
        return hashlib.sha256(session.id.encode()).hexdigest()[:16]

    @staticmethod
    def _see_other(path: str) -> Response:
        return RedirectResponse(path, status_code=303)
