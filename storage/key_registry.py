"""The database remembers which keys its data needs, so a node with another key file is
refused before it writes anything.

Several gateway nodes share one PostgreSQL. A node that started with a key file of its own
would seal bodies no other node can open and sign checkpoints no other node can verify,
and nothing would show it until a FETCH failed or ``proofs verify`` met an unknown signing
key. So the database records the ids of every master and signing key a node brought
(``meta`` row ``key_ids``), and a node whose key file lacks one of them is refused at start,
naming the missing ids and what to copy. Keys a node adds (``mssante keys rotate``) join
the record at its next start, so the other nodes must then have them too. The check and
the record happen in one transaction under an advisory lock: of two nodes racing on an
empty database with different key files, exactly one is refused.
"""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import meta
from storage.engine import serialize
from storage.errors import KeyFileMissing, KeyringError
from storage.keys import Keyring

RECORD = "key_ids"

COPY_HINT = ("every node of one database needs the same key file: copy the key file of a "
             "running node (mode 0600) to this node's [storage] key_file, and its pki/ "
             "directory too (README, \"Several nodes\"), then start again")


class KeyringMismatch(KeyringError):
    """The key file lacks keys that data in the database needs."""


def key_ids(keyring: Keyring) -> set[str]:
    """Ids of every master and signing key in ``keyring``."""
    return set(keyring.master_keys) | set(keyring.signing_keys)


async def recorded_key_ids(engine: AsyncEngine) -> set[str]:
    """The key ids the database records (empty for a new database)."""
    async with engine.connect() as conn:
        value = await meta.get_value(conn, RECORD)
    return set(json.loads(value)) if value else set()


async def refuse_missing_key_file(engine: AsyncEngine, key_file: str) -> None:
    """Before a key file is created: refused if the database already records keys (this
    node would make new ones that fit none of the stored data)."""
    recorded = await recorded_key_ids(engine)
    if recorded:
        raise KeyFileMissing(
            f"key file {key_file} is missing but the database records keys "
            f"{', '.join(sorted(recorded))}; a new key file would fit none of its data: "
            f"{COPY_HINT}")


async def check_and_record(engine: AsyncEngine, keyring: Keyring) -> None:
    """Refuses a key file that lacks a recorded key; records the ones it adds."""
    mine = key_ids(keyring)
    async with engine.begin() as conn:
        await serialize(conn, "mssante-key-ids")
        value = await meta.get_value(conn, RECORD)
        recorded = set(json.loads(value)) if value else set()
        missing = sorted(recorded - mine)
        if missing:
            raise KeyringMismatch(
                f"key file {keyring.path} lacks keys {', '.join(missing)} that the "
                f"database's data needs: {COPY_HINT}")
        if mine - recorded:
            await meta.set_value(conn, RECORD, json.dumps(sorted(recorded | mine)))
