"""Read proofs and automatic read receipts, for every way a message is read: IMAP (a FETCH of
its body without PEEK, a STORE setting \\Seen) and the webmail (a message displayed).

The first time an account reads a message one ``read`` proof is appended to the ledger: who
read it, when (the ledger's time), through which session (its id, the client's name, TLS
version, how the reader signed in) and how the reading was observed, ``via``:

- ``body-fetch``: an IMAP client fetched the body without PEEK (it is about to show it);
- ``seen-flag``: an IMAP client set \\Seen — which is also what "mark as read" sends for a
  message never shown, so by itself it proves no display;
- ``webmail-display``: the webmail showed the message.

"Once" is enforced by a marker row per (message, reading account) in the ``meta`` table,
inserted with ``ON CONFLICT DO NOTHING … RETURNING`` in the same transaction as the proof:
only the caller that inserts the marker writes the proof, even with concurrent sessions on
several nodes, and later readings cost one indexed lookup instead of a ledger scan. A
delegate's reading is proved under the delegate's own address.

Then, at most once per (message, mailbox owner), :func:`mail.mdn.decide` says whether an
RFC 8098 receipt goes back. Its disposition is ``displayed``, so it is sent only when the
evidence is a display: a body fetch, a webmail display, or \\Seen set by a client session
that had downloaded the body before (Thunderbird shows messages from its offline copy,
fetched with ``BODY.PEEK[]``, then sends only the flag). A \\Seen without that evidence is
proved as such and sends nothing; a later display of the same message still sends the
receipt. The receipt is submitted through the pipeline like any message (null envelope
sender ``<>``, RFC 8098 §3) with an ``mdn-sent`` proof; its marker is claimed before
submitting, so a failure loses a receipt rather than sending two.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import and_, or_, select

from config import Settings
from mail.mdn import (
    DISPOSITION,
    build_mdn,
    client_mdn_already_sent,
    decide,
    mdn_message_id,
    parse_headers,
)
from mail.pipeline import Delivery, LocalTarget, ProofSpec, RemoteTarget
from storage import proofs
from storage.accounts import get_by_address
from storage.database import Database
from storage.engine import insert_or_ignore
from storage.folders import get as get_folder
from storage.schema import accounts, folder_messages, folders, messages, meta, traces
from storage.types import utcnow

log = logging.getLogger("mssante.read")
_CHUNK = 500

BODY_FETCH = "body-fetch"
SEEN_FLAG = "seen-flag"
WEBMAIL_DISPLAY = "webmail-display"
VIAS = (BODY_FETCH, SEEN_FLAG, WEBMAIL_DISPLAY)
_DISPLAYS = frozenset({BODY_FETCH, WEBMAIL_DISPLAY})


class Submitter(Protocol):
    """The submission pipeline (:class:`mail.pipeline.Pipeline`), as receipts use it."""

    async def submit(self, delivery: Delivery) -> Any: ...


class TrustSpace(Protocol):
    """The trust-space manager: ``.current.contains(domain)``."""

    @property
    def current(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads, and through which session."""

    account_id: int
    address: str
    session: str
    """The session's identifier as the traces name it."""
    auth: str | None = None
    """How the reader signed in (an IMAP SASL mechanism, ``portal``…)."""
    client: str | None = None
    """The client's name; None: the RFC 2971 ID the session gave, from the traces."""
    tls: str | None = None


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


async def _present(conn: Any, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), _CHUNK):
        found |= set((await conn.execute(
            select(meta.c.key).where(meta.c.key.in_(keys[i:i + _CHUNK])))).scalars())
    return found


def _read_key(message_id: int, account_id: int) -> str:
    return f"read:{message_id}:{account_id}"


def _mdn_key(message_id: int, owner_id: int) -> str:
    return f"mdn:{message_id}:{owner_id}"


def _unshown_key(message_id: int, account_id: int) -> str:
    """Marks a reading proved without evidence of a display (a bare \\Seen)."""
    return f"unshown:{message_id}:{account_id}"


async def _client_name(conn: Any, session_id: str) -> str | None:
    detail = (await conn.execute(
        select(traces.c.detail).where(traces.c.session_id == session_id,
                                      traces.c.event == "client_id")
        .order_by(traces.c.id.desc()).limit(1))).scalar()
    return detail.get("name") if isinstance(detail, dict) else None


_COLUMNS = (folder_messages.c.uid, folder_messages.c.message_id, messages.c.message_id_header,
            messages.c.content_sha256, messages.c.blob_id, messages.c.header_size,
            folders.c.account_id, folders.c.name, folders.c.special_use, accounts.c.address,
            accounts.c.mdn_policy)


class ReadProofs:
    """Proves readings and sends the automatic receipts; one instance serves every session
    of IMAP and of the webmail."""

    def __init__(self, db: Database, pipeline: Submitter | None, settings: Settings,
                 trust: TrustSpace | None) -> None:
        self.db = db
        self.pipeline = pipeline
        self.settings = settings
        self.trust = trust

    async def record(self, reader: Reader, folder_id: int, uids: Sequence[int], via: str, *,
                     displayed: Collection[int] = ()) -> int:
        """Records the first reading by ``reader`` of each message at ``uids`` in the folder
        observed ``via`` (one of :data:`VIAS`); returns how many readings were new.

        For ``seen-flag``, ``displayed`` names the UIDs whose body the session had
        downloaded: only they may get a ``displayed`` receipt."""
        if via not in VIAS:
            raise ValueError(f"unknown reading observation {via!r}")
        if not uids:
            return 0
        db = self.db
        uid_list = list(uids)
        rows: list[Any] = []
        async with db.read() as conn:
            for i in range(0, len(uid_list), _CHUNK):
                rows += (await conn.execute(
                    select(*_COLUMNS)
                    .select_from(folder_messages
                                 .join(messages, messages.c.id == folder_messages.c.message_id)
                                 .join(folders, folders.c.id == folder_messages.c.folder_id)
                                 .join(accounts, accounts.c.id == folders.c.account_id))
                    .where(folder_messages.c.folder_id == folder_id,
                           folder_messages.c.expunged_modseq.is_(None),
                           _uid_clause(uid_list[i:i + _CHUNK])))).all()
            by_key = {_read_key(int(r.message_id), reader.account_id): r for r in rows}
            keys = list(by_key)
            known = await _present(conn, keys)
            # A display of a message whose reading was proved before without one (a bare
            # \Seen, marked "unshown") may still owe its receipt: the receipt's marker says.
            shown = {int(r.uid) for r in rows if via in _DISPLAYS or int(r.uid) in displayed}
            candidates = {_unshown_key(int(by_key[k].message_id), reader.account_id): k
                          for k in known if int(by_key[k].uid) in shown
                          and by_key[k].mdn_policy == "always"}
            owed: list[str] = []
            if candidates:
                unshown = await _present(conn, list(candidates))
                mdn_keys = {_mdn_key(int(by_key[candidates[u]].message_id),
                                     int(by_key[candidates[u]].account_id)): candidates[u]
                            for u in unshown}
                decided = await _present(conn, list(mdn_keys)) if mdn_keys else set()
                owed = [k for m, k in mdn_keys.items() if m not in decided]
        fresh = [k for k in keys if k not in known]
        new: list[proofs.NewProof] = []
        won: set[str] = set()
        if fresh:
            async with db.begin() as conn:
                won = await _claim(conn, fresh)
                client = reader.client
                if client is None and won:
                    client = await _client_name(conn, reader.session)
                new = [
                    proofs.NewProof("read", by_key[k].message_id_header,
                                    by_key[k].content_sha256, reader.address, {
                                        "reader": reader.address, "mailbox": by_key[k].address,
                                        "folder": by_key[k].name, "uid": int(by_key[k].uid),
                                        "via": via, "session": reader.session,
                                        "client": client, "tls": reader.tls,
                                        "auth": reader.auth,
                                    })
                    for k in fresh if k in won
                ]
                await proofs.append_many(conn, new)
                unseen = [_unshown_key(int(by_key[k].message_id), reader.account_id)
                          for k in fresh if k in won and int(by_key[k].uid) not in shown]
                if unseen:
                    await _claim(conn, unseen)
            if new:
                log.info("read_recorded", extra={"fields": {
                    "session": reader.session, "user": reader.address, "count": len(new),
                    "via": via}})
        receipts = [by_key[k] for k in fresh if k in won and int(by_key[k].uid) in shown]
        receipts += [by_key[k] for k in owed]
        for row in receipts:
            try:
                await self._maybe_send_mdn(reader, row)
            except Exception:  # noqa: BLE001 - the read is proved; a receipt is best effort
                log.exception("mdn_failed", extra={"fields": {
                    "session": reader.session, "uid": int(row.uid)}})
        return len(new)

    async def _maybe_send_mdn(self, reader: Reader, row: Any) -> None:
        """RFC 8098: one automatic receipt per (message, recipient mailbox), if allowed."""
        if row.mdn_policy != "always" or row.blob_id is None:
            return  # the cheap refusals first: no body read for them
        db, settings, trust = self.db, self.settings, self.trust
        async with db.read() as conn:
            header = await db.blobs.read(conn, int(row.blob_id), 0, int(row.header_size))
        decision = decide(
            parse_headers(header), policy=row.mdn_policy, special_use=row.special_use,
            is_local=settings.is_local_domain,
            is_trusted=lambda d: trust is not None and trust.current.contains(d),
        )
        fields = {"session": reader.session, "uid": int(row.uid), "folder": row.name}
        if decision.to is None or self.pipeline is None:
            if decision.to is None:
                # Decided once for good (no receipt asked, or not allowed): later displays
                # of the message do not read its header again.
                async with db.begin() as conn:
                    await _claim(conn, [_mdn_key(int(row.message_id), int(row.account_id))])
            log.info("mdn_not_sent", extra={"fields": {"reason": decision.reason, **fields}})
            return
        local: list[LocalTarget] = []
        remote: list[RemoteTarget] = []
        domain = decision.to.rpartition("@")[2]
        async with db.begin() as conn:
            if not await _claim(conn, [_mdn_key(int(row.message_id), int(row.account_id))]):
                return  # another session sent it
            if await client_mdn_already_sent(conn, int(row.account_id),
                                             decision.original_message_id):
                # The reader's own client answered first (RFC 3503): one receipt per
                # reading, the client's; the marker claimed above keeps it that way.
                log.info("mdn_not_sent", extra={"fields": {
                    "reason": "the reader's client sent its own receipt", **fields}})
                return
            if settings.is_local_domain(domain):
                account = await get_by_address(conn, decision.to)
                inbox = None if account is None else await get_folder(conn, account.id, "INBOX")
                if account is None or inbox is None:
                    log.info("mdn_not_sent", extra={"fields": {
                        "reason": "no local mailbox for the requested address", **fields}})
                    return
                local.append(LocalTarget(account.address, account.id, inbox.id))
            else:
                remote.append(RemoteTarget(decision.to))
        raw = build_mdn(reporting_host=settings.hostname, final_recipient=row.address,
                        to=decision.to, original_message_id=decision.original_message_id,
                        original_subject=decision.subject)
        # Filed under the message that was read (the ledger's name for it, as the read
        # proof has it), so that ``proofs show <original>`` lists the receipt; the MDN's own
        # Message-ID is kept in the details.
        await self.pipeline.submit(Delivery(
            raw=raw, sender="", local=local, remote=remote,
            proofs=[ProofSpec("mdn-sent", row.address, {
                "original_message_id": decision.original_message_id, "to": decision.to,
                "disposition": DISPOSITION, "reader": reader.address,
                "mdn_message_id": mdn_message_id(raw),
            }, message_ref=row.message_id_header or decision.original_message_id,
                content_sha256=row.content_sha256)],
        ))
        log.info("mdn_sent", extra={"fields": {"local": bool(local), **fields}})
