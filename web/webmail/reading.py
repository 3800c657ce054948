"""Reading a message: its headers, its text or sanitised HTML body, its attachments one by
one, every header in a details pane; and what one does to it: mark unread, flag, move,
put in the Trash, delete.

Opening a message is a reading as an IMAP ``FETCH BODY[]`` is one: \\Seen is set through the
store (``change_flags``, so IDLE sessions hear of it) when the reader holds the ``s`` right,
and the first reading by each reader is proved (:mod:`mailstore.readproof`, ``via
webmail-display``) even without that right, as for an IMAP EXAMINE.

Every request names the folder and the UID and both are checked against the session's
rights: another account's message answers 404. The images an HTML body shows from its own
parts (``cid:``, RFC 2392) come from the same checked URLs, one per part, as their own
image type with ``nosniff`` (never an SVG, never a part that is not an image). Attachments
are served with ``Content-Disposition: attachment``, as ``application/octet-stream`` with
``nosniff`` and a ``sandbox`` CSP, so that no browser renders one in the webmail's origin.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mail.mimeheader import parse_header
from mail.views import Attachment, MessageView
from mailstore.readproof import WEBMAIL_DISPLAY, Reader
from mailstore.store import MessageRow
from storage.accounts import Account
from web.headers import CONTENT_SECURITY_POLICY
from web.pages import Forbidden
from web.sessions import Session
from web.webmail.base import Mailbox, NotFound, Webmail
from web.webmail.folders import human_size
from web.webmail.html import CleanHtml, sanitise

T = TypeVar("T")
PART = re.compile(r"[1-9][0-9]{0,3}(\.[1-9][0-9]{0,3}){0,15}")
SHOWN_HEADERS = (("From", "De"), ("Sender", "Envoyé par"), ("To", "À"), ("Cc", "Copie"),
                 ("Date", "Date"), ("Subject", "Objet"))
XDM_NAME = "IHE_XDM.ZIP"
MAX_TEXT = 2 * 1024 * 1024
MAX_WHOLE = 1024 * 1024
"""Messages larger than this are not read whole to be shown: only their header and text."""
IMAGES_CSP = CONTENT_SECURITY_POLICY.replace("img-src 'self'", "img-src 'self' https:")
DOWNLOAD_CSP = "default-src 'none'; sandbox"
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Image types an HTML body may show from its own parts (no SVG: it can hold script)."""
MAX_INLINE_PARTS = 200
MAX_HELD_SHOWN = 1024
"""Shown messages kept ready (:class:`Held`)."""
MAX_HELD_TEXT = 64 * 1024
"""Longest shown text kept ready (characters): at most 64 MB in all, mostly far less."""
"""Parts of a message whose header is read to find its inline images."""


@dataclass(frozen=True, slots=True)
class ShownAttachment:
    part: str
    name: str
    content_type: str
    size: str
    xdm: bool


@dataclass(frozen=True, slots=True)
class Body:
    text: str | None = None
    html: CleanHtml | None = None
    problem: str | None = None


def _header(msg: Message, name: str) -> str | None:
    try:
        values = msg.get_all(name)
    except Exception:  # noqa: BLE001 - a malformed header is shown raw below, not fatal
        return None
    if not values:
        return None
    return ", ".join(str(v) for v in values)


def all_headers(msg: Message) -> list[tuple[str, str]]:
    """Every header of the message, decoded where possible (RFC 2047), in order."""
    out = []
    for name, value in msg.raw_items() if isinstance(msg, EmailMessage) else msg.items():
        try:
            shown = str(msg.policy.header_factory(name, value))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            shown = str(value)
        out.append((name, shown))
    return out


def _decoded(part: Message) -> str:
    """The text of a part in its declared charset, leniently (an unknown charset or bad
    bytes are replaced, never an error page)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def message_body(msg: Message, *, images: bool,
                 inline: Mapping[str, str] | None = None) -> Body:
    """The HTML body (sanitised) if there is one, else the plain text one."""
    chosen: Message | None
    try:
        chosen = (msg.get_body(preferencelist=("html", "plain"))
                  if isinstance(msg, EmailMessage) else None)
    except Exception:  # noqa: BLE001 - malformed MIME: fall back to the first text part
        chosen = None
    if chosen is None:
        for part in msg.walk():
            if part.get_content_maintype() == "text" and not part.is_multipart():
                chosen = part
                break
    return body_of(chosen, images=images, inline=inline)


def body_of(chosen: Message | None, *, images: bool,
            inline: Mapping[str, str] | None = None) -> Body:
    """The shown body of the text part ``chosen`` (None: the message has none)."""
    if chosen is None:
        return Body(problem="Ce message n'a pas de texte lisible ; voyez ses pièces jointes.")
    text = _decoded(chosen)
    if chosen.get_content_type() == "text/html":
        return Body(html=sanitise(text, images=images, inline=inline))
    truncated = len(text) > MAX_TEXT
    return Body(text=text[:MAX_TEXT],
                problem="Texte coupé : le message est trop long pour être affiché en entier."
                if truncated else None)


def attachments_of(view: MessageView | None) -> list[ShownAttachment]:
    if view is None:
        return []
    out = []
    for a in view.search.attachments:
        name = a.filename or f"partie-{a.part}"
        out.append(ShownAttachment(a.part, name, a.content_type, human_size(a.decoded_size),
                                   name.upper() == XDM_NAME))
    return out


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name (RFC 8187)."""
    ascii_name = "".join(c if 32 < ord(c) < 127 and c not in '"\\;%' else "_"
                         for c in filename)[:150] or "piece-jointe"
    return (f'attachment; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(filename[:150], safe='')}")


async def _row(webmail: Webmail, box: Mailbox, uid: int) -> MessageRow:
    rows = await webmail.store.fetch_rows(box.id, [(uid, uid)], full=True)
    if not rows or rows[0].blob_id is None:
        raise NotFound
    return rows[0]


async def _raw(webmail: Webmail, row: MessageRow, start: int = 0, end: int | None = None,
               ) -> bytes:
    assert row.blob_id is not None
    stop = row.size if end is None else end
    async with webmail.store.body_reader() as reader:
        return await reader.read(row.blob_id, start, max(0, stop - start))


def _parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _part_order(part: str) -> tuple[int, ...]:
    return tuple(int(n) for n in part.split("."))


async def _header_and_text(webmail: Webmail, row: MessageRow, view: MessageView,
                           ) -> tuple[Message, Message | None]:
    """A large message's header and its HTML (else plain) text part, read alone: the
    attachments' bytes are not read to show a letter that comes with a 9 MB scan."""
    header = _parse(await _raw(webmail, row, 0, view.text_start))
    listed = {a.part for a in view.search.attachments}
    leaves = sorted((p for p in view.parts if p not in listed
                     and not any(q.startswith(p + ".") for q in view.parts)), key=_part_order)
    chosen: Message | None = None
    for name in leaves:
        offsets = view.parts[name]
        if offsets.body_end - offsets.body_start > 4 * MAX_TEXT:
            continue
        part = _parse(await _raw(webmail, row, offsets.header_start, offsets.body_end))
        kind = part.get_content_type()
        if kind == "text/html":
            return header, part
        if kind == "text/plain" and chosen is None:
            chosen = part
    return header, chosen


def _content_type(header: bytes) -> str:
    value = parse_header(header, 0, len(header)).get("content-type") or ""
    return value.split(";", 1)[0].strip().lower()


async def inline_images(webmail: Webmail, row: MessageRow) -> dict[str, str]:
    """Content-ID (without its angle brackets) → part number of the message's images that
    an HTML body may show through ``cid:`` (RFC 2392): leaf parts of a type of
    :data:`INLINE_TYPES` that carry a Content-ID. Only their MIME headers are read."""
    view = row.view
    if view is None or row.blob_id is None:
        return {}
    leaves = [(name, offsets) for name, offsets in view.parts.items()
              if not offsets.is_message and offsets.header_end > offsets.header_start
              and not any(q.startswith(name + ".") for q in view.parts)][:MAX_INLINE_PARTS]
    if not leaves:
        return {}
    found: dict[str, str] = {}
    async with webmail.store.body_reader() as reader:
        await reader.prefetch([(row.blob_id, o.header_start, o.header_end) for _n, o in leaves])
        for name, o in leaves:
            header = await reader.read(row.blob_id, o.header_start, o.header_end - o.header_start)
            fields = parse_header(header, 0, len(header))
            cid = (fields.get("content-id") or "").strip()
            if cid.startswith("<") and cid.endswith(">") and _content_type(header) in INLINE_TYPES:
                found.setdefault(cid[1:-1].strip(), name)
    return found


def _attachment(view: MessageView | None, part: str) -> Attachment:
    if view is None:
        raise NotFound
    for a in view.search.attachments:
        if a.part == part and part in view.parts:
            return a
    raise NotFound


@dataclass(frozen=True, slots=True)
class Shown:
    """What the reading page shows of a stored body, whoever reads it."""

    title: str
    headers: list[tuple[str, str]]
    all_headers: list[tuple[str, str]]
    body: Body


class Held:
    """Stored bodies as the reading page shows them, by blob (a stored body never changes:
    one blob per content), least recently used out beyond ``capacity``.

    Profile: opening a message read and decrypted its whole body, parsed it with the
    ``email`` package and sanitised its HTML on every request, again for a reader who
    reloads it or for the ten people of a shared box. Entries are only ever served after
    the request's rights check found the message (a blob id is never taken from the
    request), and a key names the image URLs of the message it was made for."""

    def __init__(self, capacity: int = MAX_HELD_SHOWN) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[object, ...], Any] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> Any:
        got = self._entries.get(key)
        if got is not None:
            self._entries.move_to_end(key)
        return got

    def put(self, key: tuple[object, ...], value: T) -> T:
        self._entries[key] = value
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return value


def routes(webmail: Webmail) -> list[BaseRoute]:
    page = webmail.page
    held = Held()
    base = webmail.url("dossier", "{folder_id:int}", "message", "{uid:int}")

    async def show(request: Request, session: Session, _form: FormData | None,
                   user: Account) -> Response:
        box, own, shared = await webmail.locate(user, int(request.path_params["folder_id"]))
        uid = int(request.path_params["uid"])
        row = await _row(webmail, box, uid)
        reading = request.method == "GET"  # a HEAD shows nothing: no \\Seen, no proof
        seen_now = reading and "\\Seen" not in row.flags and box.may("s")
        if seen_now:
            await webmail.store.change_flags(
                box.id, [uid], lambda _u, _m, flags: (*flags, "\\Seen")
                if "\\Seen" not in flags else None)
            row.flags = (*row.flags, "\\Seen")
        if reading and webmail.deps.reads is not None:
            reader = Reader(user.id, user.address, webmail._trace_id(session), auth="portal",
                            client="webmail")
            await webmail.deps.reads.record(reader, box.id, [uid], WEBMAIL_DISPLAY)
        if seen_now:
            # The unread count just changed, and the folder's HIGHESTMODSEQ with it: that
            # folder's row is taken again from its index (which the change refreshes, and
            # the next list would refresh anyway), not every folder and delegation.
            own, shared = webmail.replaced(own, shared, await webmail.fresh(box))
        own, shared = await webmail.with_unread(own), await webmail.with_unread(shared)
        images = request.query_params.get("images") == "1"
        assert row.blob_id is not None
        parts = held.get(("inline", row.blob_id))
        if parts is None:
            parts = held.put(("inline", row.blob_id), await inline_images(webmail, row))
        inline = {cid: webmail.url("dossier", box.id, "message", uid, "image", part)
                  for cid, part in parts.items()}
        key = ("shown", row.blob_id, images, tuple(sorted(inline.items())))
        shown = held.get(key)
        if shown is None:
            if row.size <= MAX_WHOLE or row.view is None:
                msg = _parse(await _raw(webmail, row))
                body = message_body(msg, images=images, inline=inline)
            else:
                msg, text_part = await _header_and_text(webmail, row, row.view)
                body = body_of(text_part, images=images, inline=inline)
            shown = Shown(_header(msg, "Subject") or "(sans objet)",
                          [(label, value) for name, label in SHOWN_HEADERS
                           if (value := _header(msg, name))],
                          all_headers(msg), body)
            text = body.text if body.html is None else body.html.html
            if len(text or "") <= MAX_HELD_TEXT:  # bounded memory: long letters are re-read
                held.put(key, shown)
        targets = [b for b in (*own, *shared)
                   if b.owner_id == box.owner_id and b.id != box.id and b.may("i")]
        response = webmail.render(
            request, session, user, "webmail/message.html", own=own, shared=shared,
            current=box, title=shown.title, uid=uid,
            headers=shown.headers, all_headers=shown.all_headers, body=shown.body,
            images=images,
            attachments=attachments_of(row.view), flagged="\\Flagged" in row.flags,
            seen="\\Seen" in row.flags, targets=targets, trash=_trash(own, shared, box),
            size=human_size(row.size), notice=session.data.pop("wm_notice", None))
        if images:
            response.headers["content-security-policy"] = IMAGES_CSP
        return response

    async def download(request: Request, session: Session, _form: FormData | None,
                       user: Account) -> Response:
        box = await webmail.mailbox(user, int(request.path_params["folder_id"]))
        part = str(request.path_params["part"])
        if not PART.fullmatch(part):
            raise NotFound
        row = await _row(webmail, box, int(request.path_params["uid"]))
        found = _attachment(row.view, part)
        assert row.view is not None
        offsets = row.view.parts[part]
        header = await _raw(webmail, row, offsets.header_start, offsets.header_end)
        body = await _raw(webmail, row, offsets.body_start, offsets.body_end)
        data = body
        if not offsets.is_message:
            payload = _parse(header + body).get_payload(decode=True)
            if isinstance(payload, bytes):
                data = payload
        name = found.filename or f"partie-{part}"
        return Response(data, media_type="application/octet-stream", headers={
            "content-disposition": content_disposition(name),
            "x-content-type-options": "nosniff",
            "content-security-policy": DOWNLOAD_CSP,
        })

    async def image(request: Request, session: Session, _form: FormData | None,
                    user: Account) -> Response:
        """An image of the message for its HTML body (``cid:``): only a leaf part of an
        image type of :data:`INLINE_TYPES`, as that type, never sniffed into anything else;
        any other part answers 404 like another account's message."""
        box = await webmail.mailbox(user, int(request.path_params["folder_id"]))
        part = str(request.path_params["part"])
        if not PART.fullmatch(part):
            raise NotFound
        row = await _row(webmail, box, int(request.path_params["uid"]))
        view = row.view
        if view is None or part not in view.parts or view.parts[part].is_message or any(
                q.startswith(part + ".") for q in view.parts):
            raise NotFound
        offsets = view.parts[part]
        header = await _raw(webmail, row, offsets.header_start, offsets.header_end)
        kind = _content_type(header)
        if kind not in INLINE_TYPES:
            raise NotFound
        body = await _raw(webmail, row, offsets.body_start, offsets.body_end)
        payload = _parse(header + body).get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise NotFound
        return Response(payload, media_type=kind, headers={
            "content-disposition": content_disposition(f"image-{part}"),
            "x-content-type-options": "nosniff",
            "content-security-policy": DOWNLOAD_CSP,
            "cache-control": "private, max-age=3600",
        })

    async def act(request: Request, session: Session, form: FormData | None,
                  user: Account) -> Response:
        assert form is not None
        box = await webmail.mailbox(user, int(request.path_params["folder_id"]))
        uid = int(request.path_params["uid"])
        await _row(webmail, box, uid)
        action = str(form.get("action", ""))
        back = webmail.url("dossier", box.id, "message", uid)
        listing = webmail.url("dossier", box.id)
        store = webmail.store
        if action in ("lu", "non-lu"):
            _require(box, "s", "marquer ce message lu ou non lu")
            await _set_flag(webmail, box, uid, "\\Seen", action == "lu")
            session.data["wm_notice"] = ("Message marqué comme lu." if action == "lu"
                                         else "Message marqué comme non lu.")
            return webmail._see_other(listing if action == "non-lu" else back)
        if action in ("suivi", "non-suivi"):
            _require(box, "w", "marquer ce message")
            await _set_flag(webmail, box, uid, "\\Flagged", action == "suivi")
            return webmail._see_other(back)
        if action in ("deplacer", "corbeille"):
            _require(box, "te", "retirer ce message du dossier")
            own, shared = await webmail.mailboxes(user, counts=False)
            if action == "corbeille":
                target = _trash(own, shared, box)
                if target is None:
                    raise Forbidden("Il n'y a pas de corbeille où mettre ce message.")
            else:
                raw = str(form.get("vers", ""))
                wanted = int(raw) if raw.isdigit() else -1
                target = next((b for b in (*own, *shared) if b.id == wanted
                               and b.owner_id == box.owner_id and b.id != box.id), None)
                if target is None:
                    raise NotFound
            _require(target, "i", "déposer un message dans ce dossier")
            await store.copy(box.id, [uid], target.id, move=True)
            session.data["wm_notice"] = f"Message déplacé dans « {target.label} »."
            return webmail._see_other(listing)
        if action == "supprimer":
            _require(box, "te", "supprimer ce message")
            await store.expunge(box.id, [uid])
            session.data["wm_notice"] = "Message supprimé définitivement."
            return webmail._see_other(listing)
        raise NotFound

    return [
        Route(base, page(show), methods=["GET", "HEAD"]),
        Route(base + "/piece/{part}", page(download), methods=["GET", "HEAD"]),
        Route(base + "/image/{part}", page(image), methods=["GET", "HEAD"]),
        Route(base + "/action", page(act), methods=["POST"]),
    ]


def _require(box: Mailbox, rights: str, action: str) -> None:
    if not box.may(rights):
        raise Forbidden(f"Vous ne pouvez pas {action} : ce droit ne vous est pas accordé sur "
                        f"ce dossier (droits accordés : {box.rights_text}).")


def _trash(own: list[Mailbox], shared: list[Mailbox], box: Mailbox) -> Mailbox | None:
    """The Trash of the mailbox's owner, unless the message is in it already (then
    deleting is for good)."""
    for b in (*own, *shared):
        if b.owner_id == box.owner_id and b.folder.special_use == "\\Trash":
            return None if b.id == box.id else b
    return None


async def _set_flag(webmail: Webmail, box: Mailbox, uid: int, flag: str, on: bool) -> None:
    def compute(_uid: int, _modseq: int, flags: tuple[str, ...]) -> tuple[str, ...] | None:
        if (flag in flags) == on:
            return None
        return (*flags, flag) if on else tuple(f for f in flags if f != flag)

    await webmail.store.change_flags(box.id, [uid], compute)
