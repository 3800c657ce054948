"""The folder sidebar's pages: the message list of a folder in date order, paged, and the
folder management page (create, rename, delete through the store, with the IMAP server's
rules).

The list is in the order of RFC 5256 SORT DATE (the Date field's instant, else the arrival
time), newest first unless ``ordre=ancien`` asks otherwise. The order comes from the
folder's in-memory index (:meth:`mailstore.folderindex.FolderIndexes.date_order`), which
keeps it up to date as messages come and go, from the sent instant stored at accept time:
a page costs a bisection in that list and one query of the 50 rows shown, whatever the
folder's size, so a 100,000-message folder opens as fast as a 100-message one. Pages are
named by the (sent instant, UID) of the message they follow, so paging is stable while
messages arrive.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailstore.store import DELIMITER, AlreadyExists, MessageRow
from storage.accounts import Account
from web.sessions import Session
from web.webmail.base import Mailbox, NotFound, Webmail

PAGE_SIZE = 50
"""Messages per list page."""
OLDEST_FIRST = "ancien"
"""``ordre`` of a list shown oldest first (newest first without it)."""
MAX_FOLDER_NAME = 200
BAD_NAME_CHARS = set("%*\"\\") | {chr(c) for c in range(32)} | {"\x7f"}


@dataclass(frozen=True, slots=True)
class ListedMessage:
    """One line of the message list."""

    uid: int
    sender: str
    subject: str
    date: datetime | None
    size: int
    attachments: int
    seen: bool
    flagged: bool
    answered: bool


def human_size(size: int) -> str:
    """``812 o``, ``14 Ko``, ``3,2 Mo`` (French units and decimal comma)."""
    if size < 1024:
        return f"{size} o"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} Ko"
    return f"{size / (1024 * 1024):.1f} Mo".replace(".", ",")


def listed(row: MessageRow) -> ListedMessage:
    search = row.view.search if row.view is not None else None
    # The date the list is ordered by: the Date field's, else the arrival (RFC 5256 §2.2).
    date = row.internal_date
    if search is not None and search.date is not None:
        try:
            sent = datetime.fromtimestamp(search.date, UTC)
        except (OverflowError, OSError, ValueError):
            sent = None
        if sent is not None and 1 < sent.year < 9999:  # shown in Paris time: room for it
            date = sent
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return ListedMessage(
        uid=row.uid,
        sender=(search.from_ if search else None) or "(expéditeur inconnu)",
        subject=(search.subject if search else None) or "(sans objet)",
        date=date, size=row.size,
        attachments=len(search.attachments) if search else 0,
        seen="\\Seen" in row.flags, flagged="\\Flagged" in row.flags,
        answered="\\Answered" in row.flags)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list in date order, with the cursors of the pages around."""

    messages: list[ListedMessage]
    total: int
    first: int  # 1-based position of the first message shown in the list's order
    older: str | None  # ``avant`` of the next page (None: this is the last one)
    newer: str | None  # ``avant`` of the previous page ("": the first page; None: none)
    newest_first: bool = True


Key = tuple[int, int]
"""A message's place in date order: (sent instant in epoch seconds, UID)."""

_CURSOR = re.compile(r"(-?[0-9]{1,12})_([0-9]{1,10})")


def cursor_text(key: Key) -> str:
    return f"{key[0]}_{key[1]}"


def parse_cursor(text: str) -> Key | None:
    """The key a page starts after, None for a missing or malformed ``avant``."""
    m = _CURSOR.fullmatch(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def date_page(uids: Sequence[int], key: Callable[[int], Key], after: Key | None,
              newest_first: bool, size: int = PAGE_SIZE,
              ) -> tuple[list[int], int, str | None, str | None]:
    """The UIDs of the page coming after the message ``after`` (None: the first page), in
    the shown order, from ``uids`` ascending by ``key``; with the 1-based position of the
    first shown, and the next and previous pages' cursors. Pages are named by the key of a
    message, not by a position, so arrivals and removals elsewhere shift no page."""
    total = len(uids)
    if newest_first:
        end = total if after is None else bisect_left(uids, after, key=key)
        start = max(0, end - size)
        shown = list(reversed(uids[start:end]))
        older = cursor_text(key(uids[start])) if start > 0 else None
        newer: str | None = None
        if end < total:
            newer = cursor_text(key(uids[end + size])) if end + size < total else ""
        return shown, total - end + 1, older, newer
    start = 0 if after is None else bisect_right(uids, after, key=key)
    end = min(total, start + size)
    older = cursor_text(key(uids[end - 1])) if end < total else None
    newer = None
    if start > 0:
        newer = cursor_text(key(uids[start - size - 1])) if start - size > 0 else ""
    return list(uids[start:end]), start + 1, older, newer


async def listed_page(webmail: Webmail, box: Mailbox, uids: Sequence[int],
                      key: Callable[[int], Key], after: Key | None,
                      newest_first: bool) -> Page:
    """The page of ``uids`` (ascending by ``key``) after ``after``, with its rows."""
    shown, first, older, newer = date_page(uids, key, after, newest_first)
    rows: list[MessageRow] = []
    if shown:
        rows = await webmail.store.fetch_rows(box.id, uid_runs(shown), full=True)
    place = {uid: i for i, uid in enumerate(shown)}
    rows.sort(key=lambda r: place[r.uid])
    return Page([listed(r) for r in rows], len(uids), first, older, newer, newest_first)


async def folder_page(webmail: Webmail, box: Mailbox, after: Key | None,
                      newest_first: bool = True) -> Page:
    order = await webmail.store.date_order(box.id)
    return await listed_page(webmail, box, order.uids, order.key, after, newest_first)


def uid_runs(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending ``(first, last)`` ranges covering ``uids``."""
    runs: list[tuple[int, int]] = []
    for u in sorted(uids):
        if runs and runs[-1][1] + 1 == u:
            runs[-1] = (runs[-1][0], u)
        else:
            runs.append((u, u))
    return runs


def check_folder_name(name: str) -> str | None:
    """The French refusal of a folder name, or None when it is acceptable."""
    if not name or len(name) > MAX_FOLDER_NAME:
        return f"Le nom d'un dossier fait de 1 à {MAX_FOLDER_NAME} caractères."
    if set(name) & BAD_NAME_CHARS:
        return "Un nom de dossier ne peut contenir ni % ni * ni \" ni \\ ni caractère de contrôle."
    parts = name.split(DELIMITER)
    if any(not p.strip() for p in parts):
        return "Un nom de dossier ne peut avoir de niveau vide (« / » en trop)."
    if parts[0].upper() == "INBOX" and name != "INBOX" or name.upper() == "INBOX":
        return "Les noms commençant par INBOX sont réservés à la boîte de réception."
    if parts[0] == "Shared":
        return "« Shared » est réservé aux boîtes partagées."
    return None


def routes(webmail: Webmail) -> list[BaseRoute]:
    page = webmail.page

    async def home(request: Request, session: Session, _form: FormData | None,
                   user: Account) -> Response:
        own = await webmail.own_mailboxes(user, counts=False)
        inbox = next((b for b in own if b.folder.name == "INBOX"), None)
        if inbox is None:
            raise NotFound
        return webmail._see_other(webmail.url("dossier", inbox.id))

    async def folder(request: Request, session: Session, _form: FormData | None,
                     user: Account) -> Response:
        box, own, shared = await webmail.locate(user, int(request.path_params["folder_id"]))
        after = parse_cursor(request.query_params.get("avant", ""))
        newest_first = request.query_params.get("ordre", "") != OLDEST_FIRST
        # The page first: it loads the folder's index, from which the sidebar then counts
        # the unread messages (a first open would otherwise count them in SQL as well).
        listing = await folder_page(webmail, box, after, newest_first)
        own, shared = await webmail.with_unread(own), await webmail.with_unread(shared)
        return webmail.render(request, session, user, "webmail/list.html", own=own,
                              shared=shared, current=box, title=box.label, page=listing,
                              size=human_size,
                              notice=session.data.pop("wm_notice", None))

    async def manage(request: Request, session: Session, _form: FormData | None,
                     user: Account) -> Response:
        own, shared = await webmail.mailboxes(user)
        return _manage_page(webmail, request, session, user, own, shared)

    async def create(request: Request, session: Session, form: FormData | None,
                     user: Account) -> Response:
        assert form is not None
        parent = str(form.get("parent", "")).strip()
        name = str(form.get("name", "")).strip()
        full = f"{parent}{DELIMITER}{name}" if parent else name
        own, shared = await webmail.mailboxes(user)
        if parent and not any(b.folder.name == parent for b in own):
            raise NotFound
        error = (check_folder_name(name.replace(DELIMITER, "-") if name else "")
                 or check_folder_name(full))
        if error is None:
            try:
                await webmail.store.create_folder(user.id, full)
            except AlreadyExists:
                error = f"Le dossier « {full} » existe déjà."
        if error is not None:
            return _manage_page(webmail, request, session, user, own, shared, error=error,
                                status=400)
        session.data["wm_notice"] = f"Dossier « {full} » créé."
        return webmail._see_other(webmail.url("dossiers"))

    async def rename(request: Request, session: Session, form: FormData | None,
                     user: Account) -> Response:
        assert form is not None
        own, shared = await webmail.mailboxes(user)
        box = _own(own, int(request.path_params["folder_id"]))
        new = str(form.get("name", "")).strip()
        error = _refuse_change(box, "renommer") or check_folder_name(new)
        if error is None and any(b.folder.name == new for b in own):
            error = f"Le dossier « {new} » existe déjà."
        if error is None:
            try:
                await webmail.store.rename_folder(box.id, new)
            except AlreadyExists:
                error = f"Le dossier « {new} » existe déjà."
        if error is not None:
            return _manage_page(webmail, request, session, user, own, shared, error=error,
                                status=400)
        session.data["wm_notice"] = f"Dossier « {box.folder.name} » renommé en « {new} »."
        return webmail._see_other(webmail.url("dossiers"))

    async def delete(request: Request, session: Session, form: FormData | None,
                     user: Account) -> Response:
        own, shared = await webmail.mailboxes(user)
        box = _own(own, int(request.path_params["folder_id"]))
        error = _refuse_change(box, "supprimer")
        if error is None and any(b.folder.name.startswith(box.folder.name + DELIMITER)
                                 for b in own):
            error = (f"Le dossier « {box.folder.name} » contient des sous-dossiers : "
                     "supprimez-les d'abord.")
        if error is not None:
            return _manage_page(webmail, request, session, user, own, shared, error=error,
                                status=400)
        await webmail.store.delete_folder(box.id)
        session.data["wm_notice"] = f"Dossier « {box.folder.name} » supprimé avec ses messages."
        return webmail._see_other(webmail.url("dossiers"))

    return [
        Route(webmail.url(""), page(home), methods=["GET", "HEAD"]),
        Route(webmail.url("dossier", "{folder_id:int}"), page(folder), methods=["GET", "HEAD"]),
        Route(webmail.url("dossiers"), page(manage), methods=["GET", "HEAD"]),
        Route(webmail.url("dossiers", "creer"), page(create), methods=["POST"]),
        Route(webmail.url("dossiers", "{folder_id:int}", "renommer"), page(rename),
              methods=["POST"]),
        Route(webmail.url("dossiers", "{folder_id:int}", "supprimer"), page(delete),
              methods=["POST"]),
    ]


def _own(own: list[Mailbox], folder_id: int) -> Mailbox:
    for box in own:
        if box.id == folder_id:
            return box
    raise NotFound


def _refuse_change(box: Mailbox, verb: str) -> str | None:
    """INBOX and the special folders stay (RFC 3501 §6.3.4: INBOX cannot be deleted; the
    special folders are where sending and deleting put messages)."""
    if box.folder.name == "INBOX" or box.folder.special_use:
        return f"On ne peut pas {verb} le dossier « {box.label} »."
    return None


def _manage_page(webmail: Webmail, request: Request, session: Session, user: Account,
                 own: list[Mailbox], shared: list[Mailbox], *, error: str | None = None,
                 status: int = 200) -> Response:
    return webmail.render(request, session, user, "webmail/folders.html", own=own,
                          shared=shared, title="Gérer les dossiers", error=error,
                          status=status, notice=session.data.pop("wm_notice", None),
                          fixed=lambda b: b.folder.name == "INBOX" or bool(b.folder.special_use))
