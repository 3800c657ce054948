"""The absence message settings page ("répondeur d'absence"): on or off, from which day to
which day (Paris time, both included), subject, text, and whom to contact instead.

Saving starts a new period, so every sender is answered once again with the new text
(RFC 5230 §4.2). The replies themselves are sent at local delivery by
:mod:`mail.vacation`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from accounts.working_hours import PARIS
from storage import vacations
from storage.accounts import Account
from trustspace.policy import parse_address
from trustspace.refusal import Refusal
from web.sessions import Session
from web.webmail.base import Webmail
from web.webmail.compose import write_deps

MAX_TEXT = 4000
MAX_DAYS = 30


def routes(webmail: Webmail) -> list[BaseRoute]:
    if write_deps(webmail) is None:
        return []
    page = AbsencePage(webmail.deps)
    return [Route("/courrier/absence", page.page(page.absence),
                  methods=["GET", "HEAD", "POST"])]


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise ValueError(f"« {text} » n'est pas une date (AAAA-MM-JJ).") from None


def _paris(day: date | None, *, after: bool = False) -> datetime | None:
    if day is None:
        return None
    if after:
        day = day + timedelta(days=1)
    return datetime.combine(day, time(0, 0), tzinfo=PARIS)


class AbsencePage(Webmail):
    async def absence(self, request: Request, session: Session, form: FormData | None,
                      user: Account) -> Response:
        async with self.db.read() as conn:
            current = await vacations.get(conn, user.id)
        values = {
            "actif": bool(current and current.enabled),
            "du": current.starts_at.astimezone(PARIS).date().isoformat()
            if current and current.starts_at else "",
            "au": (current.ends_at.astimezone(PARIS).date() - timedelta(days=1)).isoformat()
            if current and current.ends_at else "",
            "objet": current.subject if current else "",
            "message": current.body if current else "",
            "contact": current.contact if current else "",
            "jours": str(current.days) if current else "7",
        }
        errors: dict[str, str] = {}
        notice = None
        status = 200
        if form is not None:
            values = {k: str(form.get(k, ""))[:MAX_TEXT].strip() for k in values}
            values["actif"] = form.get("actif") == "1"
            try:
                start, end = _day(str(values["du"])), _day(str(values["au"]))
            except ValueError as exc:
                errors["dates"] = str(exc)
                start = end = None
            if start and end and end < start:
                errors["dates"] = "La date de fin précède la date de début."
            days = str(values["jours"])
            if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
                errors["jours"] = f"Un nombre de jours entre 1 et {MAX_DAYS}."
            contact = str(values["contact"])
            if contact and "@" in contact:
                try:
                    parse_address(contact, role="recipient")
                except Refusal:
                    errors["contact"] = f"« {contact} » n'est pas une adresse valide."
            if values["actif"] and not str(values["message"]):
                errors["message"] = "Écrivez le message d'absence."
            if errors:
                status = 400
            else:
                async with self.db.begin() as conn:
                    await vacations.save(
                        conn, user.id, enabled=bool(values["actif"]),
                        starts_at=_paris(start), ends_at=_paris(end, after=True),
                        subject=str(values["objet"]), body=str(values["message"]),
                        contact=contact, days=int(days))
                notice = ("Répondeur d'absence activé." if values["actif"]
                          else "Répondeur d'absence désactivé.")
        own, shared = await self.mailboxes(user)
        return self.render(request, session, user, "webmail/absence.html", own=own,
                           shared=shared, title="Répondeur d'absence", values=values,
                           errors=errors, notice=notice, status=status,
                           error="Rien n'a été enregistré : corrigez les champs signalés."
                           if errors else None)
