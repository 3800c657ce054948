"""RFC 4314 on shared mailboxes, as an attacker probes it.

- SELECT by a user holding only ``lr`` must say ``[READ-ONLY]`` (RFC 4314 §4): it used to
  say ``[READ-WRITE]``. Read-write needs one of ``i``, ``e``, ``w``, ``s`` or ``t``.
- SETACL naming ``anyone``, a negative identifier or an unknown address used to be stored
  and shown by GETACL but never honoured; now only existing local mailboxes are accepted
  and the rest is refused with ``NO [CANNOT]`` (RFC 4314 §3.1 lets a server refuse).
"""

from __future__ import annotations

import asyncio
import imaplib

import pytest

from accounts import delegations
from accounts.mailboxes import add_mailbox
from tests.fixtures.imap import ALICE, BOB, ImapEnv, message

pytestmark = pytest.mark.timeout(60)
ORG = "secretariat@mssante.test"
SHARED_INBOX = f'"Shared/{ORG}/INBOX"'


async def _org(env: ImapEnv, alice_rights: str) -> None:
    db = env.gateway.db
    assert db is not None
    await add_mailbox(db, ORG, type="ORG", name="Secretariat de cardiologie")
    await delegations.grant(db, ORG, ALICE, alice_rights)
    await delegations.grant(db, ORG, BOB, delegations.ALL_RIGHTS, can_send_as=True)
    await env.deliver(message(1), to=ORG)


def _login(env: ImapEnv, user: str) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL("127.0.0.1", env.tls_port, ssl_context=env.client_ssl(), timeout=10)
    c.login(user, env.alice_password if user == ALICE else env.bob_password)
    return c


def _select_code(c: imaplib.IMAP4_SSL, mailbox: str) -> tuple[str, bytes]:
    """Tagged result of SELECT and its text, without imaplib's read-only handling."""
    typ, data = c._simple_command("SELECT", mailbox)
    if typ == "OK":
        c.state = "SELECTED"
        c.is_readonly = b"[READ-ONLY]" in (data[-1] or b"")
    return typ, data[-1] or b""


@pytest.mark.parametrize(("rights", "code"), [
    ("lr", b"[READ-ONLY]"),
    ("lrp", b"[READ-ONLY]"),
    ("lrs", b"[READ-WRITE]"),
    ("lri", b"[READ-WRITE]"),
    ("lrw", b"[READ-WRITE]"),
    ("lrt", b"[READ-WRITE]"),
    ("lre", b"[READ-WRITE]"),
])
async def test_select_is_read_only_without_a_changing_right(
    imap_env: ImapEnv, rights: str, code: bytes,
) -> None:
    await _org(imap_env, rights)

    def run() -> None:
        c = _login(imap_env, ALICE)
        typ, text = _select_code(c, SHARED_INBOX)
        assert typ == "OK" and text.startswith(code), (rights, text)
        if code == b"[READ-ONLY]":
            flags = c.response("PERMANENTFLAGS")[1]
            assert flags == [b"()"], flags
            # Nothing changes through a read-only selection, \Seen included.
            typ, data = c.fetch("1", "(BODY[TEXT])")
            assert typ == "OK"
            typ, data = c.fetch("1", "(FLAGS)")
            assert b"\\Seen" not in data[0], data
            typ, data = c.store("1", "+FLAGS", "(\\Seen)")
            assert typ == "NO" and b"[READ-ONLY]" in data[0], data
        c.logout()
    await asyncio.to_thread(run)


async def test_owner_select_stays_read_write(imap_env: ImapEnv) -> None:
    def run() -> None:
        c = _login(imap_env, ALICE)
        typ, text = _select_code(c, "INBOX")
        assert typ == "OK" and text.startswith(b"[READ-WRITE]"), text
        c.logout()
    await asyncio.to_thread(run)


@pytest.mark.parametrize("identifier", [
    "anyone", "authenticated", "-" + ALICE, "nobody@mssante.test", "carol@ch-exemple.mssante.fr",
    "administrators",
])
async def test_setacl_refuses_identifiers_that_are_not_local_mailboxes(
    imap_env: ImapEnv, identifier: str,
) -> None:
    await _org(imap_env, "lrs")

    def run() -> None:
        c = _login(imap_env, BOB)
        typ, data = c._simple_command("SETACL", SHARED_INBOX, f'"{identifier}"', "lr")
        assert typ == "NO", (typ, data)
        text = data[-1].decode()
        assert text.startswith("[CANNOT]"), text
        assert identifier in text, text
        typ, data = c.getacl(SHARED_INBOX)
        assert typ == "OK" and f'"{identifier}"' not in data[0].decode(), data
        # A local mailbox is still accepted.
        assert c.setacl(SHARED_INBOX, ALICE, "lrsw")[0] == "OK"
        assert f'"{ALICE}" lrsw' in c.getacl(SHARED_INBOX)[1][0].decode()
        c.logout()
    await asyncio.to_thread(run)
