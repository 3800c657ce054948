"""IMAP SETACL / DELETEACL change who may use a mailbox: each change is proved.

Before: a manager of an organisational mailbox could give or take a member's rights on a
folder over IMAP (RFC 4314) and the ledger said nothing. Now each real change appends a
``delegation-granted``, ``-changed`` or ``-revoked`` proof under ``account:<owner>``
naming the account that made it and the folder, in the transaction of the change.
"""

from __future__ import annotations

import asyncio

from storage import proofs
from tests.fixtures.imap import ALICE, BOB, ImapEnv
from tests.imap.test_shared_acl import ORG, SHARED_INBOX, _login, _org, _q


async def _acl_proofs(env: ImapEnv) -> list[proofs.ProofRecord]:
    db = env.gateway.db
    assert db is not None
    async with db.read() as conn:
        return [p for p in await proofs.get_by_message(conn, f"account:{ORG}")
                if p.details.get("folder")]


async def test_setacl_and_deleteacl_are_proved_naming_the_manager(imap_env: ImapEnv) -> None:
    await _org(imap_env, alice_rights="lrs")

    def run() -> None:
        c = _login(imap_env, BOB)  # the manager (holds "a")
        assert c._simple_command("SETACL", _q(SHARED_INBOX), ALICE, "+w")[0] == "OK"
        assert c._simple_command("SETACL", _q(SHARED_INBOX), ALICE, "+w")[0] == "OK"  # same
        assert c._simple_command("DELETEACL", _q(SHARED_INBOX), ALICE)[0] == "OK"
        c.logout()
    await asyncio.to_thread(run)
    found = await _acl_proofs(imap_env)
    assert [(p.kind, p.actor) for p in found] == [("delegation-changed", BOB),
                                                   ("delegation-revoked", BOB)]
    assert found[0].details == {"account": ORG, "delegate": ALICE, "folder": "INBOX",
                                "rights": "lrsw", "before": {"rights": "lrs"}}
    assert found[1].details["folder"] == "INBOX" and found[1].details["rights"] == ""
