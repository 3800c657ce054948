"""Read proofs and automatic read receipts (docs/architecture.md §2 "How a message flows", step 4).

The first time an account reads a message — a FETCH of its body without PEEK (BODY[...],
RFC822, RFC822.TEXT, BINARY[...]), or a STORE that sets \\Seen — one ``read`` proof is
appended to the ledger: who read it, when (the ledger's time), through which session
(session id, the client's RFC 2971 ID name if it gave one, TLS version) and how.

"Once" is enforced by a marker row per (message, reading account) in the ``meta`` table,
inserted with ``ON CONFLICT DO NOTHING … RETURNING`` in the same transaction as the proof:
only the session that inserts the marker writes the proof, even with concurrent sessions
on several nodes, and later FETCHes cost one indexed lookup instead of a ledger scan. A
delegate's reading is proved under the delegate's own address.

Then, at most once per (message, mailbox owner), :func:`mail.mdn.decide` says whether an
RFC 8098 receipt goes back; it is submitted through the pipeline like any message (null
envelope sender ``<>``, RFC 8098 §3 — no receipt or bounce comes back for it) with an
``mdn-sent`` proof. Its marker is claimed before submitting, so a failure loses a receipt
rather than sending two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from mail.mdn import build_mdn, decide, mdn_message_id, parse_headers
from mail.pipeline import Delivery, LocalTarget, ProofSpec, RemoteTarget
from storage import proofs
from storage.accounts import get_by_address
from storage.engine import insert_or_ignore
from storage.folders import get as get_folder
from storage.schema import accounts, folder_messages, folders, messages, meta, traces
from storage.types import utcnow

if TYPE_CHECKING:
    from imap.session import Session
    from storage.database import Database

log = logging.getLogger("mssante.imap.read")
_CHUNK = 500


def _uid_clause(uids: Sequence[int]) -> Any:
    runs: list[tuple[int, int]] = []
    for u in sorted(set(uids)):
        if runs and runs[-1][1] + 1 == u:
            runs[-1] = (runs[-1][0], u)
        else:
            runs.append((u, u))
    uid = folder_messages.c.uid
    return or_(*[uid == a if a == b else and_(uid >= a, uid <= b) for a, b in runs])


async def _claim(conn: Any, keys: list[str]) -> set[str]:
    """Inserts the marker keys not yet present; returns those this call inserted."""
    won: set[str] = set()
    now = utcnow().isoformat()
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i:i + _CHUNK]
        stmt = (insert_or_ignore(conn, meta, ["key"])
                .values([{"key": k, "value": now} for k in chunk]).returning(meta.c.key))
        won |= set((await conn.execute(stmt)).scalars())
    return won


def _read_key(message_id: int, account_id: int) -> str:
    return f"read:{message_id}:{account_id}"


async def _client_name(conn: Any, session_id: str) -> str | None:
    detail = (await conn.execute(
        select(traces.c.detail).where(traces.c.session_id == session_id,
                                      traces.c.event == "client_id")
        .order_by(traces.c.id.desc()).limit(1))).scalar()
    return detail.get("name") if isinstance(detail, dict) else None


async def record_reads(session: Session, folder_id: int, uids: Sequence[int],
                       via: str) -> int:
    """Records the first reading of each message at ``uids``; returns how many were new."""
    db = session.ctx.db
    identity = session.identity
    if db is None or identity is None or not uids:
        return 0
    cols = (folder_messages.c.uid, folder_messages.c.message_id, messages.c.message_id_header,
            messages.c.content_sha256, messages.c.blob_id, messages.c.header_size,
            folders.c.account_id, folders.c.name, folders.c.special_use, accounts.c.address,
            accounts.c.mdn_policy)
    uid_list = list(uids)
    rows: list[Any] = []
    async with db.read() as conn:
        for i in range(0, len(uid_list), _CHUNK):
            rows += (await conn.execute(
                select(*cols)
                .select_from(folder_messages
                             .join(messages, messages.c.id == folder_messages.c.message_id)
                             .join(folders, folders.c.id == folder_messages.c.folder_id)
                             .join(accounts, accounts.c.id == folders.c.account_id))
                .where(folder_messages.c.folder_id == folder_id,
                       folder_messages.c.expunged_modseq.is_(None),
                       _uid_clause(uid_list[i:i + _CHUNK])))).all()
        by_key = {_read_key(int(r.message_id), identity.account_id): r for r in rows}
        known: set[str] = set()
        keys = list(by_key)
        for i in range(0, len(keys), _CHUNK):
            known |= set((await conn.execute(
                select(meta.c.key).where(meta.c.key.in_(keys[i:i + _CHUNK])))).scalars())
    fresh = [k for k in keys if k not in known]
    if not fresh:
        return 0
    ssl_object = session.ssl_object()
    tls = ssl_object.version() if ssl_object is not None else None
    async with db.begin() as conn:
        won = await _claim(conn, fresh)
        client = await _client_name(conn, session.id) if won else None
        new = [
            proofs.NewProof("read", by_key[k].message_id_header, by_key[k].content_sha256,
                            identity.address, {
                                "reader": identity.address, "mailbox": by_key[k].address,
                                "folder": by_key[k].name, "uid": int(by_key[k].uid),
                                "via": via, "session": session.id, "client": client,
                                "tls": tls, "auth": identity.method,
                            })
            for k in fresh if k in won
        ]
        await proofs.append_many(conn, new)
    log.info("imap_read_recorded", extra=session.log_fields(count=len(new), via=via))
    for k in fresh:
        if k in won:
            try:
                await _maybe_send_mdn(session, db, by_key[k])
            except Exception:  # noqa: BLE001 - the read is proved; a receipt is best effort
                log.exception("mdn_failed", extra=session.log_fields(uid=int(by_key[k].uid)))
    return len(new)


async def _maybe_send_mdn(session: Session, db: Database, row: Any) -> None:
    """RFC 8098: one automatic receipt per (message, recipient mailbox), if allowed."""
    if row.mdn_policy != "always" or row.blob_id is None:
        return  # the cheap refusals first: no body read for them
    pipeline = session.ctx.pipeline
    settings = session.ctx.settings
    trust = session.ctx.trust
    async with db.read() as conn:
        header = await db.blobs.read(conn, int(row.blob_id), 0, int(row.header_size))
    decision = decide(
        parse_headers(header), policy=row.mdn_policy, special_use=row.special_use,
        is_local=settings.is_local_domain,
        is_trusted=lambda d: trust is not None and trust.current.contains(d),
    )
    fields = {"uid": int(row.uid), "folder": row.name}
    if decision.to is None or pipeline is None:
        log.info("mdn_not_sent", extra=session.log_fields(reason=decision.reason, **fields))
        return
    local: list[LocalTarget] = []
    remote: list[RemoteTarget] = []
    domain = decision.to.rpartition("@")[2]
    async with db.begin() as conn:
        if not await _claim(conn, [f"mdn:{int(row.message_id)}:{int(row.account_id)}"]):
            return  # another session sent it
        if settings.is_local_domain(domain):
            account = await get_by_address(conn, decision.to)
            inbox = None if account is None else await get_folder(conn, account.id, "INBOX")
            if account is None or inbox is None:
                log.info("mdn_not_sent", extra=session.log_fields(
                    reason="no local mailbox for the requested address", **fields))
                return
            local.append(LocalTarget(account.address, account.id, inbox.id))
        else:
            remote.append(RemoteTarget(decision.to))
    raw = build_mdn(reporting_host=settings.hostname, final_recipient=row.address,
                    to=decision.to, original_message_id=decision.original_message_id,
                    original_subject=decision.subject)
    # Filed under the message that was read (the ledger's name for it, as the read proof
    # has it), so that ``proofs show <original>`` lists the receipt; the MDN's own
    # Message-ID is kept in the details.
    await pipeline.submit(Delivery(
        raw=raw, sender="", local=local, remote=remote,
        proofs=[ProofSpec("mdn-sent", row.address, {
            "original_message_id": decision.original_message_id, "to": decision.to,
            "disposition": "automatic-action/MDN-sent-automatically; displayed",
            "reader": session.identity.address if session.identity else None,
            "mdn_message_id": mdn_message_id(raw),
        }, message_ref=row.message_id_header or decision.original_message_id,
            content_sha256=row.content_sha256)],
    ))
    log.info("mdn_sent", extra=session.log_fields(local=bool(local), **fields))
