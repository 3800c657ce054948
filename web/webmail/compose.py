"""Writing in the webmail: compose, reply, reply-all, forward, drafts, directory search.

The form posts multipart/form-data, read by :mod:`web.webmail.upload` as it streams (each
attachment at most ``[smtp] max_attachment_size``, the seed's 10 MB, refused in French as
soon as it is passed). Every address is judged before anything is sent, with the functions
SMTP submission uses (:class:`mail.submission.Submission`), and the reason of a refusal is
told in French. The message then leaves through the submission pipeline — same limits,
same proofs, same "delivered" DSN — and a copy is filed in Sent; "Enregistrer le
brouillon" files it in Drafts instead (``\\Draft``), from where it can be reopened.

A delegate writes in the owner's box only with send-as rights: ``From:`` the owner,
``Sender:`` the delegate (added by the submission path, whose proof names the delegate
as actor). Read-only rights give 403 on this page for that box.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from config import Settings
from mail.compose import Letter, Part, build_message
from mail.headers import with_bcc
from mail.pipeline import Delivery, LocalTarget, Pipeline
from mail.submission import Author, RecipientRefused, Submission
from storage import delegations as delegation_rows
from storage import folders as folder_rows
from storage.accounts import Account
from storage.database import Database
from storage.schema import folder_messages, messages
from storage.types import utcnow
from trustspace.refusal import Refusal
from trustspace.whitelist import TrustSpace
from web.pages import Forbidden
from web.sessions import COOKIE, Session, SessionStore
from web.webmail.base import NotFound, Webmail, WebmailDeps
from web.webmail.upload import Upload, UploadRefused, megabytes, read_upload, remove_stale

log = logging.getLogger("mssante.webmail")

MIN_QUERY = 3
"""Letters the directory needs before it suggests anyone."""
MAX_SUGGESTIONS = 15
WEB_METHOD = "web-password-otp"
UPLOAD_OVERHEAD = 1024 * 1024
"""Room for the text fields and multipart framing besides the attachments."""


class TrustView(Protocol):
    """The trust space in force (:class:`trustspace.refresh.TrustSpaceManager`)."""

    @property
    def current(self) -> TrustSpace: ...


class DirectorySearch(Protocol):
    """The directory's correspondent search (:class:`directory_ldap.Directory`)."""

    async def search(self, text: str, limit: int = 50, *,
                     include_liste_rouge: bool = False) -> Sequence[Any]: ...

    async def recipient_known(self, address: str) -> bool: ...


@dataclass
class WriteDeps:
    """What the writing side of the webmail needs from the gateway."""

    db: Database
    sessions: SessionStore
    settings: Settings
    pipeline: Pipeline
    trust: TrustView
    directory: DirectorySearch | None = None
    clock: Callable[[], datetime] = field(default=utcnow)


def french_refusal(address: str, refusal: Refusal) -> str:
    """The reason a recipient cannot receive, in French, naming the address."""
    code = refusal.enhanced
    text = refusal.text
    if "trust space" in text:
        domain = address.rpartition("@")[2] or address
        return (f"{address} : le domaine {domain} n'appartient pas à l'espace de confiance "
                "MSSanté ; ce message ne peut pas lui être envoyé.")
    if "not published in the MSSanté directory" in text:
        return f"{address} : cette adresse n'est pas publiée dans l'annuaire MSSanté."
    if code == "5.1.1":
        return f"{address} : cette boîte aux lettres n'existe pas chez cet opérateur."
    if code == "5.2.1":
        return f"{address} : cette boîte aux lettres est suspendue et ne reçoit pas de courrier."
    if code in ("5.1.3", "5.1.7"):
        return f"« {address} » n'est pas une adresse électronique valide."
    if refusal.temporary:
        return f"{address} : vérification impossible pour l'instant ; réessayez plus tard."
    return f"{address} : adresse refusée ({code})."


def split_addresses(value: str) -> list[str]:
    """``"Dr A <a@x>, b@y; c@z"`` → the bare addresses, in order, without duplicates."""
    found: list[str] = []
    for _name, address in getaddresses([value.replace(";", ",").replace("\n", ",")]):
        address = address.strip()
        if address and address.lower() not in (a.lower() for a in found):
            found.append(address)
    return found


@dataclass
class FormState:
    """What the compose page shows again (after an error or a directory search)."""

    box: str
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    dsn: bool = False
    mdn: bool = False
    in_reply_to: str = ""
    references: str = ""
    draft_uid: str = ""
    forward: str = ""
    """``folder id:UID`` of a message forwarded: attached as message/rfc822 when sent."""
    origin: str = ""
    """``folder id:UID`` of the message answered or forwarded: flagged ``\\Answered`` or
    ``$Forwarded`` once sent, as mail clients do (RFC 9051 §2.3.2, RFC 5550 §5.9)."""


async def raw_message(db: Database, folder_id: int, uid: int) -> bytes | None:
    """The stored bytes of message ``uid`` of ``folder_id`` (None: no such live message)."""
    async with db.read() as conn:
        row = (await conn.execute(
            select(messages.c.blob_id, messages.c.size)
            .join(folder_messages, folder_messages.c.message_id == messages.c.id)
            .where(folder_messages.c.folder_id == folder_id, folder_messages.c.uid == uid,
                   folder_messages.c.expunged_modseq.is_(None)))).first()
        if row is None or row.blob_id is None:
            return None
        return await db.blobs.read(conn, int(row.blob_id), 0, int(row.size))


def quote(text: str) -> str:
    return "".join(f"> {line}\n" for line in text.splitlines())


def _plain_body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        return ""


def write_deps(webmail: Webmail) -> WriteDeps | None:
    """The writing side's parts, when the gateway gave them (``WebmailDeps.extra``)."""
    found = webmail.deps.extra.get("write")
    return found if isinstance(found, WriteDeps) else None


def routes(webmail: Webmail) -> list[BaseRoute]:
    write = write_deps(webmail)
    return Compose(webmail.deps, write).routes() if write is not None else []


class Compose(Webmail):
    """The compose page and directory suggestions."""

    def __init__(self, deps: WebmailDeps, write: WriteDeps) -> None:
        super().__init__(deps)
        self.write = write
        self.submission = Submission(write, write.settings, write.pipeline, write.directory)
        self.spool_dir = Path(write.settings.data_dir) / "spool" / "web"
        remove_stale(self.spool_dir)

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/courrier/ecrire", self.page(self.compose_page), methods=["GET", "HEAD"]),
            Route("/courrier/ecrire", self.compose_post, methods=["POST"]),
            Route("/courrier/annuaire", page(self.directory_search), methods=["GET"]),
        ]

    # -- who may write for whom -------------------------------------------------------
    async def sending_boxes(self, user: Account) -> list[str]:
        """The user's own address, then each box delegating send-as rights to the user."""
        async with self.db.read() as conn:
            delegated = await delegation_rows.of_delegate(conn, user.id)
        return [user.address, *sorted(d.owner for d in delegated if d.can_send_as)]

    async def _box_for(self, user: Account, wanted: str | None) -> str:
        """The box the page writes for; 403 when the user may not send as it."""
        box = (wanted or user.address).strip().lower()
        if box == user.address.lower():
            return user.address
        boxes = await self.sending_boxes(user)
        for allowed in boxes:
            if allowed.lower() == box:
                return allowed
        raise Forbidden("Vous n'avez pas le droit d'écrire au nom de cette boîte aux lettres "
                        "(délégation en lecture seule ou absente).")

    async def _account_id(self, address: str) -> int:
        from storage import accounts as account_rows

        async with self.db.read() as conn:
            account = await account_rows.get_by_address(conn, address.lower())
        assert account is not None
        return account.id

    async def _folder(self, address: str, name: str) -> int:
        account_id = await self._account_id(address)
        async with self.db.read() as conn:
            folder = await folder_rows.get(conn, account_id, name)
        if folder is None:
            raise Forbidden(f"Le dossier {name} de {address} n'existe pas.")
        return int(folder.id)

    # -- the page ----------------------------------------------------------------------
    async def _compose_render(self, request: Request, session: Session, user: Account,
                              state: FormState, boxes: list[str], *, status: int = 200,
                              error: str | None = None, errors: Sequence[str] = (),
                              notice: str | None = None, suggestions: Sequence[Any] = (),
                              query: str = "") -> Response:
        limit = self.write.settings.smtp.max_attachment_size
        own, shared = await self.mailboxes(user)
        return self.render(
            request, session, user, "webmail/compose.html", own=own, shared=shared,
            status=status, title="Nouveau message", form=state, boxes=boxes, error=error,
            errors=errors,
            notice=notice, max_attachment=limit, max_attachment_text=megabytes(limit),
            suggestions=suggestions, query=query, min_query=MIN_QUERY)

    async def compose_page(self, request: Request, session: Session, _form: FormData | None,
                           user: Account) -> Response:
        params = request.query_params
        box = await self._box_for(user, params.get("boite"))
        state = FormState(box=box)
        for key in ("a", "objet"):
            if params.get(key):
                setattr(state, "to" if key == "a" else "subject", params[key][:1000])
        source = params.get("repondre") or params.get("transferer") or params.get("brouillon")
        if source:
            await self._prefill(state, user, box, params, source)
        return await self._compose_render(request, session, user, state,
                                    await self.sending_boxes(user))

    async def _prefill(self, state: FormState, user: Account, box: str, params: Any,
                       source: str) -> None:
        """Reply, reply-all, forward or draft: ``dossier`` is the folder id, the value the
        UID. The folder must be one the user may read (else 404, as for the reading
        pages)."""
        try:
            folder_id, uid = int(params.get("dossier", "")), int(source)
        except ValueError:
            raise NotFound from None
        folder = await self.mailbox(user, folder_id, "r")
        raw = await raw_message(self.db, folder.id, uid)
        if raw is None:
            raise NotFound
        original = message_from_bytes(raw, policy=policy.default)
        assert isinstance(original, EmailMessage)
        subject = str(original.get("Subject", ""))
        body = _plain_body(original)
        message_id = str(original.get("Message-ID", "")).strip()
        if params.get("brouillon"):
            state.to = str(original.get("To", ""))
            state.cc = str(original.get("Cc", ""))
            state.bcc = str(original.get("Bcc", ""))
            state.subject, state.body = subject, body
            state.mdn = original.get("Disposition-Notification-To") is not None
            state.draft_uid = str(uid)
            return
        sender = str(original.get("Reply-To") or original.get("From") or "")
        when = str(original.get("Date", ""))
        state.origin = f"{folder.id}:{uid}"
        if params.get("transferer"):
            state.forward = f"{folder.id}:{uid}"
            state.subject = subject if subject.lower().startswith(("tr:", "fwd:")) \
                else f"Tr : {subject}"
            state.body = ("\n\n-------- Message transféré --------\n"
                          f"De : {original.get('From', '')}\nDate : {when}\n"
                          f"Objet : {subject}\nÀ : {original.get('To', '')}\n\n{body}")
            return
        state.subject = subject if subject.lower().startswith(("re:", "re :")) \
            else f"Re : {subject}"
        state.to = sender
        if params.get("tous"):
            mine = {box.lower(), user.address.lower()}
            others = [a for _n, a in getaddresses([str(original.get("To", "")),
                                                   str(original.get("Cc", ""))])
                      if a and a.lower() not in mine and a.lower() not in sender.lower()]
            state.cc = ", ".join(others)
        state.body = f"\n\nLe {when}, {sender} a écrit :\n{quote(body)}"
        state.in_reply_to = message_id
        refs = str(original.get("References", "")).split()
        state.references = " ".join([*refs, message_id] if message_id else refs)

    # -- the POST ----------------------------------------------------------------------
    async def compose_post(self, request: Request) -> Response:
        """Multipart POST: the session and CSRF are checked here, after the streamed read,
        since :meth:`Pages._page` reads only small url-encoded forms."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return self._forbidden(request)
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        limit = self.write.settings.smtp.max_attachment_size
        content_type = request.headers.get("content-type", "")
        try:
            if content_type.startswith("application/x-www-form-urlencoded"):
                upload = await self._plain_form(request)
            else:
                upload = await read_upload(
                    request.stream(), content_type, max_file=limit,
                    max_total=self.write.settings.smtp.max_message_size + UPLOAD_OVERHEAD,
                    spool_dir=self.spool_dir)
        except UploadRefused as refused:
            boxes = await self.sending_boxes(user)
            return await self._compose_render(request, session, user, FormState(box=user.address),
                                        boxes, status=refused.status, error=str(refused))
        try:
            if not session.csrf_ok(upload.get("csrf")):
                return self._forbidden(request, session)
            try:
                box = await self._box_for(user, upload.get("boite"))
            except Forbidden as exc:
                return self._render(request, session, "message.html", status=403,
                                    title="Accès refusé", lines=[str(exc)], user=user)
            return await self._act(request, session, user, box, upload)
        finally:
            upload.discard()

    async def _plain_form(self, request: Request) -> Upload:
        """The same form without attachments, url-encoded (what a client without file
        inputs sends), bounded like every page's form."""
        form = await self._form(request)
        if form is None:
            raise UploadRefused("Ce formulaire est trop volumineux.")
        upload = Upload()
        for name, value in form.multi_items():
            upload.fields.setdefault(name, []).append(str(value))
        return upload

    def _forbidden(self, request: Request, session: Session | None = None) -> Response:
        session = session or self.sessions.new()
        response = self._render(request, session, "message.html", status=403,
                                title="Accès refusé", lines=[str(Forbidden())])
        response.headers.append("set-cookie", self.sessions.cookie_header(session))
        return response

    async def _act(self, request: Request, session: Session, user: Account, box: str,
                   upload: Upload) -> Response:
        state = FormState(
            box=box, to=upload.get("a")[:4000], cc=upload.get("cc")[:4000],
            bcc=upload.get("cci")[:4000], subject=upload.get("objet")[:998],
            body=upload.get("corps"), dsn=upload.get("avis_remise") == "1",
            mdn=upload.get("avis_lecture") == "1",
            in_reply_to=upload.get("en_reponse_a")[:998],
            references=upload.get("references")[:4000],
            draft_uid=upload.get("brouillon")[:20], forward=upload.get("transfert")[:40],
            origin=upload.get("origine")[:40])
        boxes = await self.sending_boxes(user)
        action = upload.get("action", "envoyer")
        if action == "rechercher":
            query = upload.get("recherche").strip()
            found = await self._search(query) if len(query) >= MIN_QUERY else []
            notice = (f"Saisissez au moins {MIN_QUERY} lettres." if len(query) < MIN_QUERY
                      else f"{len(found)} correspondant(s) trouvé(s).")
            return await self._compose_render(request, session, user, state, boxes, notice=notice,
                                        suggestions=found, query=query)
        letter = Letter(
            author=box, to=split_addresses(state.to), cc=split_addresses(state.cc),
            subject=state.subject, body=state.body,
            author_name=user.display_name if box == user.address else None,
            read_notification=state.mdn, in_reply_to=state.in_reply_to or None,
            references=state.references.split(),
            attachments=[Part(f.filename, f.content_type, f.spool.chunks)
                         for f in upload.files])
        forwarded = await self._forwarded(user, state.forward)
        if forwarded is not None:
            letter.attachments = [*letter.attachments, forwarded]
        if action == "brouillon":
            letter.draft_bcc = split_addresses(state.bcc)
            raw = await asyncio.to_thread(build_message, letter, self.write.settings.hostname)
            await self._file(box, "Drafts", raw, ("\\Draft", "\\Seen"))
            await self._drop_draft(box, state.draft_uid)
            return await self._compose_render(request, session, user, state, boxes,
                                        notice="Brouillon enregistré dans Brouillons.")
        recipients = [*letter.to, *letter.cc, *split_addresses(state.bcc)]
        if not recipients:
            return await self._compose_render(request, session, user, state, boxes, status=400,
                                        error="Indiquez au moins un destinataire.")
        limit = self.write.settings.smtp.max_recipients
        if len(recipients) > limit:
            return await self._compose_render(
                request, session, user, state, boxes, status=400,
                error=f"Rien n'a été envoyé : au plus {limit} destinataires par message.")
        errors = await self._check_all(recipients, state.dsn)
        if errors:
            return await self._compose_render(
                request, session, user, state, boxes, status=400, errors=errors,
                error="Rien n'a été envoyé : corrigez les adresses signalées.")
        checked = await self.submission.check_recipients(
            recipients, self.write.trust.current,
            notify="FAILURE,SUCCESS" if state.dsn else None)  # RFC 3461 §4.1
        raw = await asyncio.to_thread(build_message, letter, self.write.settings.hostname)
        author = Author(login=user.address, method=WEB_METHOD,
                        may_send_as=frozenset(boxes), client_ip=self._client(request),
                        session=self._trace_id(session))
        try:
            sent = await self.submission.submit(author, box, raw, checked)
        except Refusal as refusal:
            return await self._compose_render(
                request, session, user, state, boxes, status=400,
                error=f"Rien n'a été envoyé : {french_send_refusal(refusal)}")
        # The sender's copy names the blind recipients the transmitted one hides.
        await self._file(box, "Sent", with_bcc(sent.raw, split_addresses(state.bcc)),
                         ("\\Seen",))
        await self._drop_draft(box, state.draft_uid)
        await self._mark_origin(user, state.origin,
                                "$Forwarded" if state.forward else "\\Answered")
        log.info("event=webmail_sent message=%d recipients=%d attachments=%d",
                 sent.stored.message_id, len(recipients), len(upload.files))
        session.data["sent_notice"] = sent.stored.message_id_header
        return self._see_other("/courrier/suivi?envoye=1")

    async def _mark_origin(self, user: Account, ref: str, flag: str) -> None:
        """Flags the message answered or forwarded, where the user may set flags."""
        folder_text, _, uid_text = ref.partition(":")
        if not (folder_text.isdigit() and uid_text.isdigit()):
            return
        try:
            folder = await self.mailbox(user, int(folder_text), "w")
        except (NotFound, Forbidden):
            return
        await self.store.change_flags(
            folder.id, [int(uid_text)],
            lambda _uid, _modseq, flags: flags if flag in flags else (*flags, flag))

    async def _forwarded(self, user: Account, ref: str) -> Part | None:
        """The forwarded message (``folder id:UID``), attached whole as message/rfc822,
        if the user may still read it."""
        folder_text, _, uid_text = ref.partition(":")
        if not (folder_text.isdigit() and uid_text.isdigit()):
            return None
        folder = await self.mailbox(user, int(folder_text), "r")
        raw = await raw_message(self.db, folder.id, int(uid_text))
        if raw is None:
            return None
        subject = str(message_from_bytes(raw, policy=policy.default).get("Subject", ""))
        name = re.sub(r"[^\w .,()-]+", "_", subject).strip()[:80] or "message"
        return Part(f"{name}.eml", "message/rfc822", lambda: [raw])

    async def _check_all(self, recipients: Sequence[str], dsn: bool) -> list[str]:
        errors = []
        space = self.write.trust.current
        for address in recipients:
            try:
                await self.submission.check_recipients([address], space)
            except RecipientRefused as refused:
                errors.append(french_refusal(address, refused.refusal))
        return errors

    async def _file(self, box: str, folder: str, raw: bytes, flags: tuple[str, ...]) -> None:
        """Files a copy as IMAP APPEND would (no delivery proof: nobody received it)."""
        target = LocalTarget(address=box, account_id=await self._account_id(box),
                             folder_id=await self._folder(box, folder), flags=flags)
        await self.write.pipeline.submit(Delivery(raw=raw, sender="", local=[target],
                                                 record_delivery=False))

    async def _drop_draft(self, box: str, uid_text: str) -> None:
        """The draft a message was written from goes once it is saved again or sent."""
        if not uid_text.isdigit():
            return
        folder_id = await self._folder(box, "Drafts")
        await self.store.expunge(folder_id, [int(uid_text)])

    # -- directory -----------------------------------------------------------------------
    async def _search(self, query: str) -> list[dict[str, str]]:
        directory = self.write.directory
        if directory is None or len(query) < MIN_QUERY:
            return []
        try:
            entries = await directory.search(query, limit=MAX_SUGGESTIONS)
        except Exception:  # noqa: BLE001 - a directory outage must not break writing
            log.warning("event=webmail_directory_failed")
            return []
        return [{
            "address": e.address, "name": e.display_name or f"{e.given_name} {e.surname}",
            "profession": e.specialty_label or e.profession_label,
            "city": e.city, "street": e.street, "postal_code": e.postal_code,
            "origin": e.origin,
        } for e in entries[:MAX_SUGGESTIONS]]

    async def directory_search(self, request: Request, session: Session,
                               _form: FormData | None) -> Response:
        user = await self._user(session)
        if user is None:
            return JSONResponse({"error": "Connectez-vous."}, status_code=401)
        query = request.query_params.get("q", "").strip()[:100]
        if len(query) < MIN_QUERY:
            return JSONResponse({"error": f"Saisissez au moins {MIN_QUERY} lettres.",
                                 "results": []}, status_code=400)
        found = await self._search(query)
        if "text/html" in request.headers.get("accept", ""):
            html = self.env.get_template("webmail/suggestions.html").render(
                suggestions=found)
            return HTMLResponse(html)
        return JSONResponse({"results": found},
                            headers={"cache-control": "no-store"},
                            media_type="application/json")


def french_send_refusal(refusal: Refusal) -> str:
    """A refusal at sending (sender rights, sizes) in French."""
    if refusal.enhanced == "5.3.4":
        if refusal.text.startswith("attachment"):
            return "une pièce jointe dépasse la taille permise."
        return "le message dépasse la taille permise ; retirez des pièces jointes."
    if refusal.enhanced == "5.7.1":
        return "vous n'avez pas le droit d'envoyer au nom de cette adresse."
    if refusal.temporary:
        return "le message n'a pas pu être enregistré ; réessayez dans un instant."
    return f"envoi refusé ({refusal.enhanced})."

