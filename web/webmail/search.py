"""Searching a folder from the webmail, server-side, with the IMAP server's own SEARCH code
(:func:`mailstore.search.search_folder`): the form's fields become the criteria an IMAP
client would send (FROM, TO or CC, SUBJECT, BODY, SINCE/BEFORE, UNSEEN), so both answer
alike, from the folder index where they can.

"Has attachments" has no IMAP criterion: it is checked on the stored view of the messages
that match the rest (their list of attachments), at most :data:`MAX_ATTACHMENT_CHECK` of
the newest, said on the page when the limit is reached. Results are listed in date order and
paged like the folder's list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailstore.search import (
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchOr,
    SearchText,
    search_folder,
)
from storage.accounts import Account
from web.sessions import Session
from web.webmail.base import Webmail
from web.webmail.folders import OLDEST_FIRST, human_size, listed_page, parse_cursor, uid_runs

MAX_TERM = 200
MAX_ATTACHMENT_CHECK = 2000
FIELDS = ("de", "a", "objet", "texte", "du", "au", "pj", "non_lus")


@dataclass(frozen=True, slots=True)
class Criteria:
    key: SearchKey
    attachments: bool
    any: bool


class SearchRefused(ValueError):
    """A search field that cannot be used; the message names it in French."""


def _date(value: str, label: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SearchRefused(f"La date « {label} » doit s'écrire AAAA-MM-JJ "
                            f"(reçu : {value[:20]!r}).") from None


def criteria(values: dict[str, str]) -> Criteria:
    """The SEARCH key of the form's ``values``; :class:`SearchRefused` on a bad field."""
    for name in ("de", "a", "objet", "texte"):
        if len(values.get(name, "")) > MAX_TERM:
            raise SearchRefused(f"Le champ « {name} » fait au plus {MAX_TERM} caractères.")
    keys: list[SearchKey] = []
    if v := values.get("de", "").strip():
        keys.append(SearchHeader("From", v, envelope=True))
    if v := values.get("a", "").strip():
        keys.append(SearchOr(SearchHeader("To", v, envelope=True),
                             SearchHeader("Cc", v, envelope=True)))
    if v := values.get("objet", "").strip():
        keys.append(SearchHeader("Subject", v, envelope=True))
    if v := values.get("texte", "").strip():
        keys.append(SearchText(v, body_only=True))
    since = _date(values.get("du", "").strip(), "du")
    until = _date(values.get("au", "").strip(), "au")
    if since and until and until < since:
        raise SearchRefused("La date « au » précède la date « du ».")
    if since:
        keys.append(SearchDate("since", since, False))
    if until:
        keys.append(SearchDate("before", until + timedelta(days=1), False))
    if values.get("non_lus"):
        keys.append(SearchFlag("\\Seen", False))
    attachments = bool(values.get("pj"))
    key: SearchKey = (SearchAll() if not keys else keys[0] if len(keys) == 1
                      else SearchAnd(tuple(keys)))
    return Criteria(key, attachments, bool(keys) or attachments)


def routes(webmail: Webmail) -> list[BaseRoute]:
    async def search(request: Request, session: Session, _form: FormData | None,
                     user: Account) -> Response:
        box = await webmail.mailbox(user, int(request.path_params["folder_id"]))
        own, shared = await webmail.mailboxes(user)
        values = {name: request.query_params.get(name, "")[:MAX_TERM + 1] for name in FIELDS}
        context: dict[str, Any] = {"values": values, "size": human_size,
                                   "title": f"Rechercher dans {box.label}"}
        try:
            wanted = criteria(values)
        except SearchRefused as exc:
            return webmail.render(request, session, user, "webmail/search.html", status=400,
                                  own=own, shared=shared, current=box, error=str(exc),
                                  page=None, limited=False, **context)
        if not wanted.any:
            return webmail.render(request, session, user, "webmail/search.html", own=own,
                                  shared=shared, current=box, page=None, limited=False,
                                  **context)
        uids = await search_folder(webmail.store, box.id, wanted.key)
        limited = False
        if wanted.attachments:
            limited = len(uids) > MAX_ATTACHMENT_CHECK
            uids = uids[-MAX_ATTACHMENT_CHECK:]
            rows = await webmail.store.fetch_rows(box.id, uid_runs(uids), full=True)
            uids = [r.uid for r in rows if r.view is not None and r.view.search.attachments]
        order = await webmail.store.date_order(box.id)
        found = set(uids)
        matching = [u for u in order.uids if u in found]
        newest_first = request.query_params.get("ordre", "") != OLDEST_FIRST
        page = await listed_page(webmail, box, matching, order.key,
                                 parse_cursor(request.query_params.get("avant", "")),
                                 newest_first)
        query = urlencode({k: v for k, v in values.items() if v})
        return webmail.render(request, session, user, "webmail/search.html", own=own,
                              shared=shared, current=box, page=page, limited=limited,
                              query=query, **context)

    return [Route(webmail.url("dossier", "{folder_id:int}", "recherche"),
                  webmail.page(search), methods=["GET", "HEAD"])]
