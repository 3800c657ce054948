"""Issue 9 item 5 on both engines: a delegation revoked through another gateway node (its
own database connection, as a second node on the same PostgreSQL, or another process on
the same SQLite file) ends the delegate's open IMAP access here within two seconds."""

from __future__ import annotations

import asyncio
import imaplib

import pytest

from accounts import delegations
from accounts.mailboxes import add_mailbox
from storage.database import open_database
from tests.fixtures.imap import ALICE, ImapEnv, message

pytestmark = pytest.mark.timeout(120)

ORG = "secretariat@mssante.test"


async def test_revocation_on_another_node_reaches_open_sessions(
    imap_env_any_db: ImapEnv,
) -> None:
    env = imap_env_any_db
    db = env.gateway.db
    assert db is not None
    await add_mailbox(db, ORG, type="ORG", name="Secretariat")
    await delegations.grant(db, ORG, ALICE, "lrs")
    await env.deliver(message(1), to=ORG)

    def open_session() -> imaplib.IMAP4_SSL:
        c = imaplib.IMAP4_SSL("127.0.0.1", env.tls_port, ssl_context=env.client_ssl(),
                              timeout=20)
        c.login(ALICE, env.alice_password)
        assert c.select(f'"Shared/{ORG}/INBOX"')[0] == "OK"
        assert c.fetch("1", "(FLAGS)")[0] == "OK"
        return c
    client = await asyncio.to_thread(open_session)

    other_node = await open_database(env.settings, may_create_key=False)
    try:
        await delegations.revoke(other_node, ORG, ALICE)
    finally:
        await other_node.close()
    await asyncio.sleep(2.0)

    def after() -> tuple[str, list[bytes]]:
        typ, data = client.fetch("1", "(FLAGS)")
        client.logout()
        return typ, data
    typ, data = await asyncio.to_thread(after)
    assert typ == "NO" and b"[NOPERM]" in data[0], (typ, data)
