"""Organisational and delegated mailboxes under ``Shared/`` (RFC 2342) with RFC 4314 rights,
over the real server with Python's imaplib and imapclient."""

from __future__ import annotations

import asyncio
import imaplib
import re
from collections.abc import Callable
from typing import TypeVar

import imapclient
import pytest

from accounts import delegations
from accounts.mailboxes import add_mailbox
from tests.fixtures.imap import ALICE, BOB, ImapEnv, message

T = TypeVar("T")
imaplib.Commands.setdefault("LISTRIGHTS", ("AUTH", "SELECTED"))  # RFC 4314 §3.4
ORG = "secretariat@mssante.test"
SHARED_INBOX = f"Shared/{ORG}/INBOX"


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


def _login(env: ImapEnv, user: str) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL("127.0.0.1", env.tls_port, ssl_context=env.client_ssl(), timeout=10)
    password = env.alice_password if user == ALICE else env.bob_password
    c.login(user, password)
    return c


def _listed(lines: list[bytes]) -> dict[str, str]:
    """LIST replies as ``{mailbox: attributes}``."""
    out = {}
    for line in lines:
        attrs, _, name = line.decode().partition(') "/" ')
        out[name.strip('"')] = attrs.lstrip("(")
    return out


def _q(name: str) -> str:
    return '"' + name + '"'


def _refused(call: Callable[[], object], code: str) -> str:
    """Runs an imaplib call that must end in NO [code]; returns the reply text."""
    with pytest.raises(imaplib.IMAP4.error) as info:
        result = call()
        typ = result[0] if isinstance(result, tuple) else None
        if typ == "NO":
            raise imaplib.IMAP4.error(str(result[1]))
    text = str(info.value)
    assert f"[{code}]" in text, text
    return text


async def _org(env: ImapEnv, alice_rights: str = "lrs") -> None:
    """An organisational mailbox: Alice a read-only member, Bob its manager."""
    db = env.gateway.db
    assert db is not None
    await add_mailbox(db, ORG, type="ORG", name="Secretariat de cardiologie")
    await delegations.grant(db, ORG, ALICE, alice_rights)
    await delegations.grant(db, ORG, BOB, delegations.ALL_RIGHTS, can_send_as=True)
    for n in range(2):
        await env.deliver(message(n), to=ORG)


async def test_namespace_and_list_show_shared_folders(imap_env: ImapEnv) -> None:
    await _org(imap_env)

    def run() -> None:
        c = _login(imap_env, ALICE)
        typ, data = c.namespace()
        assert data == [b'(("" "/")) NIL (("Shared/" "/"))']
        names = _listed(c.list()[1])
        assert names[SHARED_INBOX] == "\\HasNoChildren", names
        assert names[f"Shared/{ORG}/Sent"] == "\\HasNoChildren \\Sent"
        assert names["Shared"] == names[f"Shared/{ORG}"] == "\\Noselect \\HasChildren"
        # Alice's own folders are still there, and the ORG's are not mixed with them.
        assert "INBOX" in names and "Sent" in names
        assert list(_listed(c.list("Shared/", "%")[1])) == [f"Shared/{ORG}"]
        typ, data = c.status(_q(SHARED_INBOX), "(MESSAGES UNSEEN)")
        assert typ == "OK" and b"MESSAGES 2 UNSEEN 2" in data[0]
        c.logout()
    await _in_thread(run)


async def test_read_only_member_is_refused_with_noperm(imap_env: ImapEnv) -> None:
    await _org(imap_env)
    await imap_env.deliver(message(9))  # in Alice's own INBOX, to try COPY into the ORG

    def run() -> None:
        c = _login(imap_env, ALICE)
        typ, data = c.select(_q(SHARED_INBOX))
        assert typ == "OK" and data == [b"2"]
        flags = c.response("PERMANENTFLAGS")[1]
        assert flags == [b"(\\Seen)"], flags
        text = _refused(lambda: c.store("1", "+FLAGS", "(\\Flagged)"), "NOPERM")
        assert "change flags (w)" in text
        _refused(lambda: c.store("1", "+FLAGS", "(\\Deleted)"), "NOPERM")
        typ, data = c.store("1", "+FLAGS", "(\\Seen)")  # "s" is granted
        assert typ == "OK" and b"\\Seen" in data[0]
        assert c.store("2", "FLAGS", "(\\Seen)")[0] == "OK"  # only \\Seen changes
        _refused(lambda: c.store("2", "FLAGS", "(\\Seen \\Answered)"), "NOPERM")
        text = _refused(lambda: c.expunge(), "NOPERM")
        assert "expunge (e)" in text
        _refused(lambda: c.append(_q(SHARED_INBOX), None, None, message(5)), "NOPERM")
        _refused(lambda: c.uid("MOVE", "1", "INBOX"), "NOPERM")
        typ, _ = c.select("INBOX")
        text = _refused(lambda: c.copy("1", _q(SHARED_INBOX)), "NOPERM")
        assert "add messages (i)" in text
        _refused(lambda: c.create(_q(f"Shared/{ORG}/New")), "NOPERM")
        _refused(lambda: c.delete(_q(f"Shared/{ORG}/Sent")), "NOPERM")
        _refused(lambda: c.rename(_q(f"Shared/{ORG}/Sent"), "Mine"), "NOPERM")
        typ, data = c.myrights(_q(SHARED_INBOX))
        assert data == [f"{SHARED_INBOX} lrs".encode()]
        _refused(lambda: c.getacl(_q(SHARED_INBOX)), "NOPERM")
        _refused(lambda: c.setacl(_q(SHARED_INBOX), ALICE, "lrswi"), "NOPERM")
        _refused(lambda: c.deleteacl(_q(SHARED_INBOX), BOB), "NOPERM")
        _refused(lambda: c._simple_command("LISTRIGHTS", _q(SHARED_INBOX), ALICE), "NOPERM")
        c.logout()
    await _in_thread(run)


async def test_manager_sees_acl_and_setacl_is_enforced(imap_env: ImapEnv) -> None:
    await _org(imap_env)

    def manager() -> None:
        c = _login(imap_env, BOB)
        typ, data = c.getacl(_q(SHARED_INBOX))
        assert typ == "OK"
        text = data[0].decode()
        assert text == (f'{SHARED_INBOX} "{ORG}" lrswipkxtecda "{ALICE}" lrs '
                        f'"{BOB}" lrswipkxtecda'), text
        typ, data = c.myrights(_q(SHARED_INBOX))
        assert data[0].endswith(b" lrswipkxtecda")
        typ, data = c._simple_command("LISTRIGHTS", _q(SHARED_INBOX), ALICE)
        assert typ == "OK"
        rights = c.response("LISTRIGHTS")[1][0].decode()
        # RFC 4314 §3.7: nothing always granted, then each right on its own.
        assert rights == f'{SHARED_INBOX} "{ALICE}" "" l r s w i p k x t e c d a'
        rights = c._simple_command("LISTRIGHTS", _q(SHARED_INBOX), ORG) and \
            c.response("LISTRIGHTS")[1][0].decode()
        assert rights == f'{SHARED_INBOX} "{ORG}" lrswipkxtecda'
        assert c.setacl(_q(SHARED_INBOX), ALICE, "+w")[0] == "OK"
        assert c.setacl(_q(f"Shared/{ORG}/Sent"), ALICE, "l")[0] == "OK"
        assert c.setacl(_q(f"Shared/{ORG}/Drafts"), ALICE, '""')[0] == "OK"
        _refused(lambda: c.setacl(_q(SHARED_INBOX), ORG, "lr"), "CANNOT")
        typ, data = c.getacl(_q(SHARED_INBOX))
        assert f'"{ALICE}" lrsw ' in data[0].decode()
        # Bob, holding every right, may flag and expunge in the organisation's INBOX.
        c.select(_q(SHARED_INBOX))
        assert c.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
        typ, data = c.expunge()
        assert typ == "OK" and data == [b"2"]
        c.logout()

    def member() -> None:
        c = _login(imap_env, ALICE)
        names = _listed(c.list()[1])
        assert f"Shared/{ORG}/Sent" in names
        assert f"Shared/{ORG}/Drafts" not in names, names
        typ, data = c.myrights(_q(f"Shared/{ORG}/Sent"))
        assert data == [f"Shared/{ORG}/Sent l".encode()]
        text = _refused(lambda: c.select(_q(f"Shared/{ORG}/Sent")), "NOPERM")
        assert "read (r)" in text
        _refused(lambda: c.select(_q(f"Shared/{ORG}/Drafts")), "NONEXISTENT")
        c.select(_q(SHARED_INBOX))
        typ, data = c.store("1", "+FLAGS", "(\\Flagged)")  # "w" granted by SETACL
        assert typ == "OK" and b"\\Flagged" in data[0]
        c.logout()

    await _in_thread(manager)
    await _in_thread(member)

    def removed() -> None:
        c = _login(imap_env, BOB)
        assert c.deleteacl(_q(SHARED_INBOX), ALICE)[0] == "OK"
        assert ALICE not in c.getacl(_q(SHARED_INBOX))[1][0].decode()
        c.logout()
        a = _login(imap_env, ALICE)
        _refused(lambda: a.select(_q(SHARED_INBOX)), "NONEXISTENT")
        a.logout()
    await _in_thread(removed)


async def test_owner_and_delegate_sessions_see_each_others_changes(imap_env: ImapEnv) -> None:
    await _org(imap_env, alice_rights="lrswite")

    def run() -> None:
        alice = imapclient.IMAPClient("127.0.0.1", port=imap_env.tls_port, ssl=True,
                                      ssl_context=imap_env.client_ssl(), timeout=10)
        alice.login(ALICE, imap_env.alice_password)
        bob = imapclient.IMAPClient("127.0.0.1", port=imap_env.tls_port, ssl=True,
                                    ssl_context=imap_env.client_ssl(), timeout=10)
        bob.login(BOB, imap_env.bob_password)
        assert alice.select_folder(SHARED_INBOX)[b"EXISTS"] == 2
        bob.select_folder(SHARED_INBOX)
        bob.add_flags([1], [b"\\Flagged"])
        responses = alice.noop()[1]
        assert any(r[1] == b"FETCH" and b"\\Flagged" in r[2][r[2].index(b"FLAGS") + 1]
                   for r in responses), responses
        alice.add_flags([2], [b"\\Seen"])
        assert any(r[1] == b"FETCH" for r in bob.noop()[1])
        alice.logout()
        bob.logout()
    await _in_thread(run)

    # A delivery to the organisation reaches a delegate's selected session (same folder id).
    c = await _in_thread(lambda: _login(imap_env, ALICE))
    await _in_thread(lambda: c.select(_q(SHARED_INBOX)))
    await imap_env.deliver(message(3), to=ORG)
    await _in_thread(c.noop)
    assert c.response("EXISTS")[1][-1] == b"3"
    await _in_thread(c.logout)


async def test_append_and_copy_into_shared_with_insert_right(imap_env: ImapEnv) -> None:
    await _org(imap_env, alice_rights="lrsi")
    await imap_env.deliver(message(7))

    def run() -> None:
        c = _login(imap_env, ALICE)
        typ, data = c.append(_q(SHARED_INBOX), "(\\Flagged \\Seen)", None, message(8))
        assert typ == "OK"
        assert re.search(rb"APPENDUID \d+ 3", data[0]), data
        c.select("INBOX")
        typ, data = c.copy("1", _q(SHARED_INBOX))
        assert typ == "OK"
        c.select(_q(SHARED_INBOX))
        typ, data = c.fetch("3:4", "(FLAGS)")
        # "w" is not granted: \\Flagged was dropped on APPEND, \\Seen ("s") was kept.
        assert b"\\Flagged" not in data[0] and b"\\Seen" in data[0], data
        assert len(data) == 2
        c.logout()
    await _in_thread(run)
