"""Who used a delegation: what a holder sees of their delegates' actions in the ledger.

A delegate's first reading of one of the holder's messages leaves a ``read`` proof under the
delegate's name with the holder's mailbox in its details, and a message the delegate sent
as the holder a ``submitted`` proof whose ``on_behalf_of`` names the holder. The holder
sees both, newest first, for every account that ever held a delegation on the mailbox
(the ledger keeps the names of revoked ones), without message content: the proof's kind,
time, delegate and the Message-ID the ledger names the message by.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from accounts.audit import account_ref
from storage import delegations as delegation_rows
from storage.accounts import Account
from storage.database import Database
from storage.schema import proofs

DELEGATION_KINDS = ("delegation-granted", "delegation-changed", "delegation-revoked")
USE_KINDS = ("read", "submitted")
MAX_USES = 50
SCAN = 2000
"""Proofs of the delegates read at most (newest first) to find the uses shown."""


@dataclass(frozen=True)
class DelegationUse:
    at: datetime
    delegate: str
    kind: str  # "read" or "submitted"
    message: str | None


async def delegates_ever(db: Database, holder: Account) -> list[str]:
    """Every account that held, or holds, a delegation on ``holder``'s mailbox."""
    async with db.read() as conn:
        now = [d.delegate for d in await delegation_rows.of_owner(conn, holder.id)]
        rows = (await conn.execute(
            select(proofs.c.details).where(proofs.c.message_ref == account_ref(holder.address),
                                           proofs.c.kind.in_(DELEGATION_KINDS)))).all()
    past = [str(json.loads(r.details).get("delegate", "")) for r in rows]
    return sorted({a for a in now + past if a and "@" in a})


async def uses(db: Database, holder: Account, limit: int = MAX_USES) -> list[DelegationUse]:
    """The newest readings and sendings by delegates in ``holder``'s mailbox."""
    names = await delegates_ever(db, holder)
    if not names:
        return []
    async with db.read() as conn:
        rows = (await conn.execute(
            select(proofs.c.kind, proofs.c.created_at, proofs.c.actor, proofs.c.message_ref,
                   proofs.c.details)
            .where(proofs.c.actor.in_(names), proofs.c.kind.in_(USE_KINDS))
            .order_by(proofs.c.seq.desc()).limit(SCAN))).all()
    out: list[DelegationUse] = []
    for r in rows:
        details = json.loads(r.details)
        if r.kind == "read":
            mine = str(details.get("mailbox", "")).lower() == holder.address
        else:
            mine = holder.address in [str(a).lower() for a in
                                      details.get("on_behalf_of") or []]
        if mine:
            out.append(DelegationUse(r.created_at, str(r.actor), str(r.kind), r.message_ref))
            if len(out) >= limit:
                break
    return out
