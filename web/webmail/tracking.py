"""Following sent messages ("suivi") and their receipts ("accusés de réception").

One line per recipient of each message the user sent (or a delegate sent for the user's
box): submitted, relayed to which operator, delivered, read — with times — or failed with
the reason, folded from the proof ledger by :func:`mail.tracking.track`, which also takes
the DSNs and MDNs that came back. A filter keeps the messages "sent, not read after N
days". Each recipient's receipt is :func:`storage.receipts.build_receipt`'s document as a
printable page or a PDF (:mod:`storage.receipt_pdf`); a checkpoint is signed first so the
receipt covers every record.

Only messages whose ``submitted`` proof names the user as author or its box as sender are
shown; anything else answers 404, whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from typing import Any

from sqlalchemy import or_, select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from mail.timeline import timeline
from mail.tracking import Tracking, track
from storage import proofs, receipts
from storage.accounts import Account
from storage.proofs import ETSI_EVIDENCE
from storage.receipt_pdf import KINDS_FR, render_pdf
from storage.schema import messages
from storage.schema import proofs as proof_table
from web.sessions import Session
from web.webmail.base import Webmail, WebmailDeps
from web.webmail.compose import WriteDeps, write_deps

PAGE = 50
STATES_FR = {"submitted": "déposé", "deferred": "en attente", "relayed": "relayé",
             "delivered": "remis", "read": "lu", "failed": "échec"}


@dataclass
class SentLine:
    """A sent message on the tracking page: its proof sequence (the page's id for it),
    its subject read back from the stored header, and the per-recipient tracking."""

    seq: int
    subject: str
    tracking: Tracking


def _owns(user: Account, record: proofs.ProofRecord) -> bool:
    if record.details.get("via") == "vacation":
        return False  # absence replies are not letters the user follows
    me = user.address.lower()
    return (record.actor or "").lower() == me or \
        str(record.details.get("mail_from", "")).lower() == me


def routes(webmail: Webmail) -> list[BaseRoute]:
    write = write_deps(webmail)
    return TrackingPages(webmail.deps, write).routes() if write is not None else []


class TrackingPages(Webmail):
    """``/courrier/suivi`` and the receipts of each message and recipient."""

    def __init__(self, deps: WebmailDeps, write: WriteDeps) -> None:
        super().__init__(deps)
        self.write = write

    def routes(self) -> list[BaseRoute]:
        page = self._page
        return [
            Route("/courrier/suivi", page(self.list_page), methods=["GET", "HEAD"]),
            Route("/courrier/suivi/{seq:int}", page(self.message_page), methods=["GET"]),
            Route("/courrier/suivi/{seq:int}/accuse.{fmt}", page(self.receipt),
                  methods=["GET"]),
        ]

    async def _submitted(self, user: Account, limit: int = PAGE) -> list[proofs.ProofRecord]:
        me = user.address.lower()
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(proof_table).where(
                    proof_table.c.kind == "submitted",
                    or_(proof_table.c.actor == me, proof_table.c.details.contains(me)))
                .order_by(proof_table.c.seq.desc()).limit(limit * 4))
            found = [proofs.record_from_row(r) for r in rows]
        return [r for r in found if _owns(user, r)][:limit]

    async def _one(self, user: Account, seq: int) -> proofs.ProofRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(
                select(proof_table).where(proof_table.c.seq == seq))).first()
        record = proofs.record_from_row(row) if row is not None else None
        if record is None or record.kind != "submitted" or not _owns(user, record):
            return None
        return record

    async def _subjects(self, refs: list[str]) -> dict[str, str]:
        """Subjects decoded from the stored header of each message (while it is kept)."""
        out: dict[str, str] = {}
        if not refs:
            return out
        async with self.db.read() as conn:
            rows = (await conn.execute(
                select(messages.c.message_id_header, messages.c.blob_id,
                       messages.c.header_size)
                .where(messages.c.message_id_header.in_(refs),
                       messages.c.blob_id.is_not(None)))).all()
            for row in rows:
                if row.message_id_header in out:
                    continue
                head = await self.db.blobs.read(conn, int(row.blob_id), 0,
                                                int(row.header_size))
                parsed = message_from_bytes(head, policy=policy.default)
                out[str(row.message_id_header)] = str(parsed.get("Subject", ""))
        return out

    async def _lines(self, user: Account, submitted: list[proofs.ProofRecord]
                     ) -> list[SentLine]:
        refs = [str(r.message_ref) for r in submitted if r.message_ref]
        subjects = await self._subjects(refs)
        lines = []
        async with self.db.read() as conn:
            for record in submitted:
                ref = str(record.message_ref)
                tracking = track(await proofs.get_by_message(conn, ref))
                if tracking is not None:
                    lines.append(SentLine(record.seq, subjects.get(ref, ""), tracking))
        return lines

    async def list_page(self, request: Request, session: Session, _form: FormData | None,
                        ) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        lines = await self._lines(user, await self._submitted(user))
        days_text = request.query_params.get("non_lus_depuis", "").strip()
        days: int | None = None
        error = None
        if days_text:
            if days_text.isdigit() and int(days_text) <= 3650:
                days = int(days_text)
                now = self.write.clock()
                lines = [line for line in lines if line.tracking.unread_after(now, days)]
            else:
                error = "Le nombre de jours doit être un entier entre 0 et 3650."
        notice = ("Message envoyé. Son suivi apparaît ci-dessous."
                  if request.query_params.get("envoye") else None)
        own, shared = await self.mailboxes(user)
        return self.render(request, session, user, "webmail/tracking.html", own=own,
                           shared=shared, title="Suivi des messages envoyés", lines=lines,
                           days=days,
                            days_text=days_text[:5], states=STATES_FR, notice=notice,
                            error=error, status=400 if error else 200)

    async def message_page(self, request: Request, session: Session, _form: FormData | None,
                           ) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        record = await self._one(user, int(request.path_params["seq"]))
        if record is None:
            return self._not_found(request, session, user)
        lines = await self._lines(user, [record])
        async with self.db.read() as conn:
            events = timeline(await proofs.get_by_message(conn, str(record.message_ref)))
        own, shared = await self.mailboxes(user)
        return self.render(request, session, user, "webmail/tracking_message.html", own=own,
                           shared=shared, title="Suivi du message",
                           line=lines[0] if lines else None, states=STATES_FR,
                           events=events, kinds=KINDS_FR, evidence=ETSI_EVIDENCE)

    def _not_found(self, request: Request, session: Session, user: Account) -> Response:
        return self._render(request, session, "message.html", status=404, user=user,
                            title="Message introuvable",
                            lines=["Ce message n'existe pas ou ne vous appartient pas."])

    async def receipt(self, request: Request, session: Session, _form: FormData | None,
                      ) -> Response:
        user = await self._user(session)
        if user is None:
            return self._see_other("/connexion")
        fmt = request.path_params["fmt"]
        record = await self._one(user, int(request.path_params["seq"]))
        if record is None or fmt not in ("pdf", "html", "json"):
            return self._not_found(request, session, user)
        recipient = request.query_params.get("destinataire") or None
        doc = await self.build(str(record.message_ref), recipient)
        if doc is None:
            return self._not_found(request, session, user)
        name = f"accuse-de-reception-{record.seq}"
        if fmt == "pdf":
            return Response(render_pdf(doc), media_type="application/pdf", headers={
                "content-disposition": f'attachment; filename="{name}.pdf"'})
        if fmt == "json":
            import json

            return Response(json.dumps(doc, indent=2, ensure_ascii=False),
                            media_type="application/json", headers={
                                "content-disposition": f'attachment; filename="{name}.json"'})
        return HTMLResponse(receipts.render_html(doc))

    async def build(self, ref: str, recipient: str | None) -> dict[str, Any] | None:
        """The receipt document; a checkpoint is signed first only when the newest one does
        not cover the message's records yet (a page reload signs nothing new)."""
        try:
            async with self.db.read() as conn:
                return await receipts.build_receipt(conn, self.db.keyring, ref,
                                                    recipient=recipient)
        except receipts.NoProofs as exc:
            if "not covered by a signed checkpoint" not in str(exc):
                return None
        settings = self.write.settings
        async with self.db.begin() as conn:
            await proofs.checkpoint(conn, self.db.keyring, origin=settings.proof_origin,
                                    directory=settings.checkpoint_dir)
        try:
            async with self.db.read() as conn:
                return await receipts.build_receipt(conn, self.db.keyring, ref,
                                                    recipient=recipient)
        except receipts.NoProofs:
            return None
