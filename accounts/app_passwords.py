"""Adding and revoking a mailbox's credentials, each with its proof.

An application password is per device (DESIGN.md §1 rule 3): the operator adds one for a
new phone and revokes the one of a lost laptop. Both are changes to answer for, so each
writes a ``credential-added`` / ``credential-revoked`` proof in its own transaction (see
:mod:`accounts.audit`); the password itself is shown once and never enters the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts import audit
from accounts.errors import AccountRefused
from accounts.passwords import generate_app_password, hash_secret
from storage import accounts as account_rows
from storage import credentials
from storage.credentials import Credential
from storage.database import Database
from storage.errors import NotFound


@dataclass(frozen=True)
class NewPassword:
    """A new application password (shown once) and its credential row."""

    credential: Credential
    password: str


async def add_app_password(db: Database, address: str, label: str, *,
                           actor: str | None = None) -> NewPassword:
    """A new application password for ``address``'s mailbox, labelled for its device."""
    if not label.strip():
        raise AccountRefused("an application password needs a label naming its device (--label)")
    password = generate_app_password()
    secret_hash = await hash_secret(password)
    async with db.begin() as conn:
        account = await account_rows.get_by_address(conn, address.strip().lower())
        if account is None:
            raise AccountRefused(f"address {address!r} has no mailbox here")
        credential = await credentials.add(conn, account.id, "app_password",
                                           label=label.strip(), secret_hash=secret_hash)
        await audit.record(conn, "credential-added", account.address, actor,
                           credential_id=credential.id, kind=credential.kind,
                           label=credential.label)
    return NewPassword(credential, password)


async def revoke_credential(db: Database, address: str, credential_id: int, *,
                            actor: str | None = None) -> Credential:
    """Revokes one credential of ``address`` (open sessions using it end at once)."""
    async with db.begin() as conn:
        account = await account_rows.get_by_address(conn, address.strip().lower())
        if account is None:
            raise AccountRefused(f"address {address!r} has no mailbox here")
        try:
            found = await credentials.get(conn, credential_id)
        except NotFound:
            found = None
        if found is None or found.account_id != account.id:
            raise AccountRefused(f"credential {credential_id} is not one of {account.address}")
        if not await credentials.revoke(conn, credential_id):
            raise AccountRefused(f"credential {credential_id} of {account.address} is "
                                 "already revoked")
        await audit.record(conn, "credential-revoked", account.address, actor,
                           credential_id=found.id, kind=found.kind, label=found.label)
    return found


async def list_credentials(db: Database, address: str) -> list[Credential]:
    """Every credential of ``address``, revoked ones included."""
    async with db.read() as conn:
        account = await account_rows.get_by_address(conn, address.strip().lower())
        if account is None:
            raise AccountRefused(f"address {address!r} has no mailbox here")
        return await credentials.list_for_account(conn, account.id, include_revoked=True)
