"""RFC 5464 annotations (METADATA), sealed at rest.

A mailbox comment may name a patient as surely as a message does, so values are stored
only sealed: AES-256-GCM under a key derived from the active master key (HMAC-SHA-256 of
``mssante-annotations/1`` and 0x01, as HKDF-Expand of one block), with the master key's
id on the row so keys can rotate. The associated data binds the row's account, mailbox
and entry name: a value moved to another entry fails authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.keys import Keyring
from storage.schema import annotation_entries as entries

__all__ = ["TooManyEntries", "read_entries", "write_entries"]

_INFO = b"mssante-annotations/1\x01"


class TooManyEntries(Exception):
    """Writing would leave more entries on one mailbox (or the server) than allowed."""


def _aead(keyring: Keyring, key_id: str) -> AESGCM:
    return AESGCM(hmac.new(keyring.master_key(key_id), _INFO, hashlib.sha256).digest())


def _ad(account_id: int, folder_id: int | None, name: str) -> bytes:
    return f"{account_id}:{folder_id or 0}:{name}".encode()


def _scope(account_id: int, folder_id: int | None) -> ColumnElement[bool]:
    a = entries.c
    folder = a.folder_id.is_(None) if folder_id is None else a.folder_id == folder_id
    return and_(a.account_id == account_id, folder)


async def read_entries(conn: AsyncConnection, keyring: Keyring, account_id: int,
                       folder_id: int | None, names: Iterable[str], depth: int | None
                       ) -> dict[str, bytes]:
    """Values of ``names`` and, ``depth`` levels down (None: all), of their children."""
    a = entries.c
    wanted = list(names)
    conds: list[ColumnElement[bool]] = [a.name.in_(wanted)]
    if depth != 0:
        conds += [func.substr(a.name, 1, len(n) + 1) == n + "/" for n in wanted]
    rows = await conn.execute(select(a.name, a.key_id, a.value).where(
        _scope(account_id, folder_id), or_(*conds)))
    out: dict[str, bytes] = {}
    for name, key_id, sealed in rows:
        if name not in wanted:
            parent = next(n for n in wanted if name.startswith(n + "/"))
            if depth is not None and name[len(parent):].count("/") > depth:
                continue
        out[name] = _aead(keyring, key_id).decrypt(
            sealed[:12], sealed[12:], _ad(account_id, folder_id, name))
    return out


async def write_entries(conn: AsyncConnection, keyring: Keyring, account_id: int,
                        folder_id: int | None, values: Mapping[str, bytes | None],
                        max_entries: int) -> None:
    """Sets (None: removes) entries, all in the caller's transaction; TooManyEntries when
    the mailbox would hold more than ``max_entries`` (the caller rolls back)."""
    a = entries.c
    scope = _scope(account_id, folder_id)
    await conn.execute(delete(entries).where(scope, a.name.in_(list(values))))
    key_id = keyring.active_key_id
    aead = _aead(keyring, key_id)
    rows = []
    for name, value in values.items():
        if value is None:
            continue
        nonce = secrets.token_bytes(12)
        rows.append({"account_id": account_id, "folder_id": folder_id, "name": name,
                     "key_id": key_id, "value": nonce + aead.encrypt(
                         nonce, value, _ad(account_id, folder_id, name))})
    if rows:
        await conn.execute(entries.insert(), rows)
        count = (await conn.execute(select(func.count()).select_from(entries)
                                    .where(scope))).scalar_one()
        if count > max_entries:
            raise TooManyEntries(count)
