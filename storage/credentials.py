"""Credentials repository: application passwords, password hashes, certificates, OTP seeds.

Only hashes are stored here (hashing and verification belong to ``accounts/``). Revocation
keeps the row (audit) and sets ``revoked_at``; lookups ignore revoked credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import access, directory_version
from storage.errors import NotFound
from storage.schema import CREDENTIAL_KINDS, credentials
from storage.types import utcnow


@dataclass(frozen=True)
class Credential:
    id: int
    account_id: int
    kind: str
    label: str
    secret_hash: str | None
    cert_fingerprint: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def normalize_fingerprint(fingerprint: str) -> str:
    """Lower-case hex without separators (``AB:CD`` and ``abcd`` are the same certificate)."""
    return fingerprint.replace(":", "").strip().lower()


async def add(
    conn: AsyncConnection,
    account_id: int,
    kind: str,
    *,
    label: str = "",
    secret_hash: str | None = None,
    cert_fingerprint: str | None = None,
) -> Credential:
    """Adds a credential to an account."""
    if kind not in CREDENTIAL_KINDS:
        raise ValueError(
            f"invalid credential kind {kind!r}: expected one of {', '.join(CREDENTIAL_KINDS)}"
        )
    if kind == "certificate" and not cert_fingerprint:
        raise ValueError("a certificate credential needs its fingerprint")
    if kind != "certificate" and not secret_hash:
        raise ValueError(f"a {kind} credential needs a secret hash")
    fp = normalize_fingerprint(cert_fingerprint) if cert_fingerprint else None
    new_id = (
        await conn.execute(
            credentials.insert()
            .values(
                account_id=account_id,
                kind=kind,
                label=label,
                secret_hash=secret_hash,
                cert_fingerprint=fp,
                created_at=utcnow(),
            )
            .returning(credentials.c.id)
        )
    ).scalar_one()
    if kind == "app_password":
        # Its hash is published with the entry so that the owner can bind to the directory.
        await directory_version.bump(conn)
    return await get(conn, new_id)


async def get(conn: AsyncConnection, credential_id: int) -> Credential:
    row = (await conn.execute(select(credentials).where(credentials.c.id == credential_id))).first()
    if row is None:
        raise NotFound(f"credential {credential_id} does not exist")
    return Credential(**row._mapping)


async def list_for_account(
    conn: AsyncConnection,
    account_id: int,
    *,
    kind: str | None = None,
    include_revoked: bool = False,
) -> list[Credential]:
    stmt = select(credentials).where(credentials.c.account_id == account_id)
    if kind is not None:
        stmt = stmt.where(credentials.c.kind == kind)
    if not include_revoked:
        stmt = stmt.where(credentials.c.revoked_at.is_(None))
    return [Credential(**r._mapping) for r in await conn.execute(stmt.order_by(credentials.c.id))]


async def revoke(conn: AsyncConnection, credential_id: int) -> bool:
    """Revokes a credential; False if it was already revoked.

    Raises the access version: sessions opened with it end, caches forget it."""
    result = await conn.execute(
        update(credentials)
        .where(credentials.c.id == credential_id, credentials.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if result.rowcount == 0:
        await get(conn, credential_id)  # raises NotFound for an unknown id
        return False
    await access.bump(conn)
    await directory_version.bump(conn)
    return True


async def find_by_cert_fingerprint(conn: AsyncConnection, fingerprint: str) -> Credential | None:
    """The live certificate credential with this fingerprint (SASL EXTERNAL)."""
    row = (
        await conn.execute(
            select(credentials).where(
                credentials.c.cert_fingerprint == normalize_fingerprint(fingerprint),
                credentials.c.kind == "certificate",
                credentials.c.revoked_at.is_(None),
            )
        )
    ).first()
    return None if row is None else Credential(**row._mapping)


async def touch(conn: AsyncConnection, credential_id: int) -> None:
    """Records a successful use."""
    await conn.execute(
        update(credentials).where(credentials.c.id == credential_id).values(last_used_at=utcnow())
    )
