"""Application passwords of a mailbox: create (named, shown once), list, revoke — each
change with its proof.

One per device (docs/architecture.md §1 rule 3), so that losing a telephone revokes one
password, not the mailbox's access. The portal calls :func:`create`, :func:`list_live` and
:func:`revoke` (refusals in French, shown as they are), and so does ``mssante accounts
app-password`` with the operator as actor. Every
addition and revocation writes a ``credential-added`` / ``credential-revoked`` proof in the
same transaction (:mod:`accounts.audit`); the password itself never enters the ledger.
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

MAX_LABEL = 64
MAX_LIVE = 50
"""Live application passwords per mailbox: each login may try each of them (argon2)."""


@dataclass(frozen=True)
class NewAppPassword:
    credential: Credential
    password: str


def label_problem(label: str) -> str | None:
    """Why a device name is refused, or None."""
    if not label.strip():
        return "Donnez un nom à ce mot de passe (l'appareil ou le logiciel qui l'utilisera)."
    if len(label.strip()) > MAX_LABEL:
        return f"Le nom ne peut pas dépasser {MAX_LABEL} caractères."
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in label):
        return "Le nom contient des caractères de contrôle."
    return None


async def _account_id(db: Database, address: str) -> int:
    async with db.read() as conn:
        account = await account_rows.get_by_address(conn, address)
    if account is None:
        raise AccountRefused(f"L'adresse {address!r} n'a pas de boîte ici.")
    return account.id


async def create(db: Database, address: str, label: str, *,
                 actor: str | None = None) -> NewAppPassword:
    """A new application password for ``address`` named ``label``; shown once."""
    if problem := label_problem(label):
        raise AccountRefused(problem)
    account_id = await _account_id(db, address)
    password = generate_app_password()
    secret_hash = await hash_secret(password)
    async with db.begin() as conn:
        live = await credentials.list_for_account(conn, account_id, kind="app_password")
        if len(live) >= MAX_LIVE:
            raise AccountRefused(f"Cette boîte a déjà {MAX_LIVE} mots de passe d'application : "
                                 "révoquez ceux qui ne servent plus.")
        if any(c.label == label.strip() for c in live):
            raise AccountRefused(f"Un mot de passe nommé « {label.strip()} » existe déjà.")
        cred = await credentials.add(conn, account_id, "app_password", label=label.strip(),
                                     secret_hash=secret_hash)
        await audit.record(conn, "credential-added", address, actor or f"portal:{address}",
                           credential_id=cred.id, kind=cred.kind, label=cred.label)
    return NewAppPassword(cred, password)


async def list_live(db: Database, address: str) -> list[Credential]:
    """The unrevoked application passwords of ``address``, oldest first."""
    account_id = await _account_id(db, address)
    async with db.read() as conn:
        return await credentials.list_for_account(conn, account_id, kind="app_password")


async def revoke(db: Database, address: str, credential_id: int, *,
                 actor: str | None = None) -> Credential:
    """Revokes one application password of ``address`` (not anyone else's): sessions
    opened with it end and caches forget it (the access version is raised)."""
    account_id = await _account_id(db, address)
    async with db.begin() as conn:
        try:
            cred = await credentials.get(conn, credential_id)
        except NotFound:
            cred = None
        if cred is None or cred.account_id != account_id or cred.kind != "app_password":
            raise AccountRefused(
                f"Le mot de passe d'application n° {credential_id} n'existe pas pour "
                f"{address}.")
        if not await credentials.revoke(conn, credential_id):
            raise AccountRefused(
                f"Le mot de passe d'application n° {credential_id} est déjà révoqué.")
        await audit.record(conn, "credential-revoked", address, actor or f"portal:{address}",
                           credential_id=cred.id, kind=cred.kind, label=cred.label)
        return await credentials.get(conn, credential_id)
