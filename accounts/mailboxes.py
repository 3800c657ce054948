"""Creating mailboxes: one account row, its default folders and one application password.

This is the minimal life cycle that SMTP and IMAP need (an active mailbox that can log in);
registration, review and suspension build on it. Everything is written in one transaction,
so a refusal or a crash leaves nothing half-created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from accounts import audit
from accounts.errors import AccountRefused
from accounts.passwords import generate_app_password, hash_secret
from config import Settings
from storage import accounts as account_rows
from storage import credentials, folders
from storage.accounts import Account
from storage.database import Database
from storage.errors import AlreadyExists
from trustspace.idnat import idnat_problem, structure_problem

MAILBOX_TYPES = ("PER", "ORG", "APP")

# RFC 5321 §4.1.2 dot-atom local part (ASCII); MSSanté addresses are plain ASCII.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


@dataclass(frozen=True)
class NewMailbox:
    """A created mailbox and its application password, shown once and never stored."""

    account: Account
    app_password: str


def check_address(settings: Settings, address: str) -> str:
    """The address lower-cased, or :class:`AccountRefused` saying what is wrong with it."""
    address = address.strip()
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        raise AccountRefused(f"address {address!r} is not of the form local-part@domain")
    if len(local) > 64 or not _LOCAL.match(local):
        raise AccountRefused(f"address {address!r}: the local part {local!r} is not valid")
    if not settings.is_local_domain(domain):
        raise AccountRefused(
            f"address {address!r}: domain {domain!r} is not served here "
            f"(local domains: {', '.join(settings.gateway.domains)})"
        )
    return address.lower()


async def add_mailbox(
    db: Database,
    address: str,
    *,
    type: str,  # noqa: A002 - the MSSanté term
    name: str,
    idnat: str | None = None,
    structure_id: str | None = None,
    structure_name: str | None = None,
    is_admin: bool = False,
    device_label: str = "initial",
    actor: str | None = None,
) -> NewMailbox:
    """Creates an active mailbox with INBOX, Sent, Drafts, Trash, Archive and one password.

    A nominative (PER) mailbox names its holder by idNatPS; an applicative (APP) one names
    its structure (FINESS/SIRET). Raises :class:`AccountRefused` before writing anything.
    ``account-created`` and ``credential-added`` proofs name ``actor`` (None: the operator).
    """
    address = check_address(db.settings, address)
    if type not in MAILBOX_TYPES:
        raise AccountRefused(f"mailbox type {type!r} is not one of {', '.join(MAILBOX_TYPES)}")
    if not name.strip():
        raise AccountRefused("a mailbox needs a display name (--name)")
    if type == "PER":
        if not idnat:
            raise AccountRefused("a nominative (PER) mailbox needs the holder's idNatPS (--idnat)")
    if idnat is not None and (problem := idnat_problem(idnat)):
        raise AccountRefused(problem)
    if structure_id is not None and (problem := structure_problem(structure_id)):
        raise AccountRefused(problem)
    if type == "APP" and not structure_id:
        raise AccountRefused("an applicative (APP) mailbox needs its structure (--structure)")

    password = generate_app_password()
    secret_hash = await hash_secret(password)
    given, _, surname = name.strip().rpartition(" ")
    try:
        async with db.begin() as conn:
            account = await insert_mailbox(
                conn, address=address, type=type, name=name.strip(), given_name=given,
                surname=surname or name.strip(), idnat=idnat, structure_id=structure_id,
                structure_name=structure_name, is_admin=is_admin,
            )
            credential = await credentials.add(
                conn, account.id, "app_password", label=device_label, secret_hash=secret_hash
            )
            await audit.record(conn, "account-created", address, actor, type=type,
                               status="active", is_admin=is_admin)
            await audit.record(conn, "credential-added", address, actor,
                               credential_id=credential.id, kind=credential.kind,
                               label=credential.label)
    except AlreadyExists:
        raise AccountRefused(f"address {address!r} already has a mailbox") from None
    return NewMailbox(account=account, app_password=password)


async def insert_mailbox(
    conn: AsyncConnection, *, address: str, type: str,  # noqa: A002 - the MSSanté term
    name: str, given_name: str, surname: str, idnat: str | None = None,
    structure_id: str | None = None, structure_name: str | None = None,
    is_admin: bool = False, settings: dict[str, Any] | None = None,
) -> Account:
    """The account row and its default folders, in the caller's transaction (already
    checked values; :class:`storage.errors.AlreadyExists` when the address is taken)."""
    rpps = idnat[1:] if idnat and idnat.startswith("8") else None
    adeli = idnat[1:] if idnat and idnat.startswith("0") else None
    account = await account_rows.create(
        conn, address=address, type=type, status="active", display_name=name,
        given_name=given_name, surname=surname, idnat=idnat, rpps=rpps, adeli=adeli,
        structure_id=structure_id, structure_name=structure_name, is_admin=is_admin,
        settings=settings or {},
    )
    await folders.create_default_folders(conn, account.id)
    return account


STATUSES = ("active", "suspended", "closed")
"""What the operator may set; ``pending`` belongs to registration."""


async def set_status(db: Database, address: str, status: str, *,
                     actor: str | None = None) -> Account:
    """Suspends, closes or reactivates a mailbox; :class:`AccountRefused` names a bad value.

    A real change appends its proof (``account-suspended``, ``-reactivated``, ``-closed``,
    ``-approved`` for a pending registration) naming ``actor`` (None: the operator); setting
    the status it already has changes nothing and proves nothing.

    The change raises the access version (:mod:`storage.access`) in the same transaction:
    open IMAP and SMTP sessions of the account end within a second on every node, cached
    logins are forgotten, and its delegates lose its folders and its send-as.
    """
    wanted = status.strip().lower()
    if wanted not in STATUSES:
        raise AccountRefused(f"status {status!r} is not one of {', '.join(STATUSES)}")
    async with db.begin() as conn:
        account = await account_rows.get_by_address(conn, address.strip().lower())
        if account is None:
            raise AccountRefused(f"address {address!r} has no mailbox here")
        if account.status == "closed" and wanted != "closed":
            raise AccountRefused(f"address {address!r} is closed: a closed mailbox is never "
                                 "reopened (its history stays in the ledger)")
        kind = audit.status_kind(account.status, wanted)
        if kind is not None:
            await account_rows.set_status(conn, account.id, wanted)
            await audit.record(conn, kind, account.address, actor,
                               **{"from": account.status, "to": wanted})
        found = await account_rows.get_by_address(conn, account.address)
    assert found is not None
    return found
