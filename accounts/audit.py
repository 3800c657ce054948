"""Proofs of account and delegation changes: who changed what, in the same transaction.

Suspending a doctor's mailbox, or letting a secretary send in a doctor's name, is as much a
fact to answer for as a message sent. Every change made through :mod:`accounts` appends one
proof in the transaction that makes the change, so the ledger and the accounts never
disagree. The actor is the account that asked (portal, IMAP ACL) or, from the command line,
``operator:<unix user>``. The proofs are filed under ``account:<address>`` (the mailbox
concerned; for a delegation, the owner's), so ``mssante proofs show account:<address>``
lists an account's history. Secrets never enter a proof: a credential is named by its id,
kind and label.
"""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from storage import proofs

ACCOUNT_REF_PREFIX = "account:"


def operator_actor() -> str:
    """The actor of a command-line change: the Unix user running ``mssante``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME (a bare container)
        user = "unknown"
    return f"operator:{user}"


def account_ref(address: str) -> str:
    """The ledger name of an account's history."""
    return f"{ACCOUNT_REF_PREFIX}{address.strip().lower()}"


async def record(conn: AsyncConnection, kind: str, address: str, actor: str | None, /,
                 **details: Any) -> None:
    """Appends the proof of one change to ``address``'s account in the caller's
    transaction (``actor`` None: the operator at the command line)."""
    await proofs.append(conn, kind=kind, message_ref=account_ref(address),
                        actor=actor or operator_actor(),
                        details={"account": address.strip().lower(), **details})


async def record_change(conn: AsyncConnection, address: str, actor: str | None,
                        setting: str, before: object, after: object) -> bool:
    """Appends an ``account-changed`` proof when ``setting`` of ``address`` goes from
    ``before`` to ``after`` (values that are not secrets nor personal data: a mode, a
    policy, a flag); nothing when they are equal. True when a proof was written."""
    if before == after:
        return False
    await record(conn, "account-changed", address, actor, setting=setting,
                 **{"from": before, "to": after})
    return True


def status_kind(before: str, after: str) -> str | None:
    """The proof kind of a status change, None when nothing changes."""
    if before == after:
        return None
    if after == "active":
        return "account-approved" if before == "pending" else "account-reactivated"
    return {"suspended": "account-suspended", "closed": "account-closed"}.get(after)
