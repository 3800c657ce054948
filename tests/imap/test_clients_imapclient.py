"""Message and mailbox commands with imapclient (as a desktop client uses them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import imapclient
from imapclient.exceptions import IMAPClientError

from tests.fixtures.imap import ALICE, ImapEnv, message

T = TypeVar("T")


def _client(env: ImapEnv) -> imapclient.IMAPClient:
    c = imapclient.IMAPClient("127.0.0.1", port=env.tls_port, ssl=True,
                              ssl_context=env.client_ssl(), timeout=10)
    c.login(ALICE, env.alice_password)
    return c


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def test_fetch_items_and_sections(imap_env: ImapEnv) -> None:
    raw = message(1, extra="X-MSS-CODECDA: 11488-4\r\n")
    await imap_env.deliver(raw)

    def run() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX", readonly=True)
        data = c.fetch([1], ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                             "BODYSTRUCTURE", "UID", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
                             "BODY.PEEK[TEXT]<0.7>", "BODY.PEEK[1.MIME]", "RFC822"])[1]
        assert data[b"RFC822.SIZE"] == len(raw)
        assert data[b"RFC822"] == raw
        assert data[b"ENVELOPE"].subject == b"Compte rendu 1"
        assert data[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: Compte rendu 1\r\n\r\n"
        assert data[b"BODY[TEXT]<0>"] == b"Bonjour"
        assert data[b"BODYSTRUCTURE"][0] == b"text"
        assert b"\\Seen" not in data[b"FLAGS"]
        c.logout()
    await _in_thread(run)


async def test_body_fetch_sets_seen_and_store_flags(imap_env: ImapEnv) -> None:
    for n in range(3):
        await imap_env.deliver(message(n))

    def run() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX")
        data = c.fetch([1], ["BODY[]"])
        assert b"\\Seen" in data[1][b"FLAGS"]
        assert {b"$Label1", b"\\Flagged"} <= set(c.add_flags([2], ["\\Flagged", "$Label1"])[2])
        assert set(c.search(["UNSEEN"])) == {2, 3}
        assert c.search(["FLAGGED"]) == [2]
        assert c.search(["SUBJECT", "rendu 2"]) == [3]
        assert c.search(["BODY", "document 1"]) == [2]
        assert c.search(["HEADER", "Message-ID", "m0@"]) == [1]
        assert c.search(["OR", "SEEN", "FLAGGED"]) == [1, 2]
        assert c.search(["LARGER", "10", "SENTSINCE", "1-Jan-2025"]) == [1, 2, 3]
        c.remove_flags([2], ["\\Flagged"])
        assert c.search(["FLAGGED"]) == []
        c.logout()
    await _in_thread(run)


async def test_copy_move_expunge_append(imap_env: ImapEnv) -> None:
    for n in range(4):
        await imap_env.deliver(message(n))

    def run() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX")
        typ, data = c._imap._simple_command("UID", "COPY", "1:2", "Archive")
        assert typ == "OK" and b"[COPYUID " in data[0]
        c.move([3], "Trash")
        assert c.select_folder("INBOX")[b"EXISTS"] == 3
        c.delete_messages([1])
        assert c.expunge()[1] == [(1, b"EXPUNGE")]
        assert c.search() == [2, 4]  # UIDs: 3 moved, 1 expunged
        assert c.folder_status("Archive", ["MESSAGES"])[b"MESSAGES"] == 2
        assert c.folder_status("Trash", ["MESSAGES"])[b"MESSAGES"] == 1
        result = c.append("Drafts", message(99), flags=["\\Draft"])
        assert b"[APPENDUID " in result
        try:
            c.append("Nowhere", message(100))
            raise AssertionError("APPEND to a missing folder must fail")
        except IMAPClientError as exc:
            assert "TRYCREATE" in str(exc)
        c.logout()
    await _in_thread(run)


async def test_mailbox_management(imap_env: ImapEnv) -> None:
    def run() -> None:
        c = _client(imap_env)
        c.create_folder("Projets/2025")
        names = [f[2] for f in c.list_folders()]
        assert "Projets" in names and "Projets/2025" in names
        flags = {f[2]: f[0] for f in c.list_folders()}
        assert b"\\HasChildren" in flags["Projets"]
        try:
            c.delete_folder("Projets")
            raise AssertionError("deleting a parent must fail")
        except IMAPClientError as exc:
            assert "HASCHILDREN" in str(exc)
        c.rename_folder("Projets", "Dossiers")
        names = [f[2] for f in c.list_folders()]
        assert "Dossiers/2025" in names and "Projets" not in names
        c.unsubscribe_folder("Dossiers/2025")
        assert "Dossiers/2025" not in [f[2] for f in c.list_sub_folders()]
        c.delete_folder("Dossiers/2025")
        try:
            c.create_folder("INBOX")
            raise AssertionError("INBOX exists")
        except IMAPClientError as exc:
            assert "ALREADYEXISTS" in str(exc)
        st = c.folder_status("INBOX", ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                                       "SIZE", "HIGHESTMODSEQ", "RECENT"])
        assert st[b"HIGHESTMODSEQ"] >= 1 and st[b"MESSAGES"] == 0
        assert c.namespace().personal == (("", "/"),)
        typ, data = c._imap._simple_command("GETQUOTAROOT", "INBOX")
        assert typ == "OK"
        quota = c._imap.untagged_responses.pop("QUOTA")
        assert b"STORAGE 0 " in quota[0]
        typ, data = c._imap.myrights("INBOX")
        assert typ == "OK" and b"lrswipkxtecda" in data[0]
        typ, _ = c._imap.setacl("Archive", BOB_ADDR, "lr")
        assert typ == "OK"
        typ, data = c._imap.getacl("Archive")
        assert BOB_ADDR.encode() in data[0] and b"lr" in data[0]
        c.logout()
    await _in_thread(run)


BOB_ADDR = "bob@mssante.test"


async def test_condstore_qresync_and_esearch(imap_env: ImapEnv) -> None:
    for n in range(3):
        await imap_env.deliver(message(n))

    def run() -> None:
        c = _client(imap_env)
        c.enable("QRESYNC")
        info = c.select_folder("INBOX")
        hms = info[b"HIGHESTMODSEQ"]
        uidvalidity = info[b"UIDVALIDITY"]
        assert hms >= 1
        everything = c.fetch([1, 2, 3], ["FLAGS"], modifiers=["CHANGEDSINCE 0"])
        assert len(everything) == 3 and all(b"MODSEQ" in v for v in everything.values())
        c.add_flags([1], ["\\Seen"])
        c.delete_messages([3])
        c.expunge()
        changed = c.fetch([1, 2], ["FLAGS"], modifiers=[f"CHANGEDSINCE {hms}"])
        assert list(changed) == [1]
        c.unselect_folder()
        typ, data = c._imap._simple_command(
            "SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {hms}))")
        assert typ == "OK"
        vanished = c._imap.untagged_responses.get("VANISHED")
        assert vanished and b"(EARLIER) 3" in vanished
        c._imap.state = "SELECTED"
        typ, data = c._imap._simple_command("UID", "SEARCH", "RETURN", "(MIN MAX COUNT)",
                                            "ALL")
        esearch = c._imap.untagged_responses.pop("ESEARCH")[0]
        assert b"UID MIN 1 MAX 2 COUNT 2" in esearch
        typ, _ = c._imap._simple_command("SEARCH", "RETURN", "(SAVE)", "SEEN")
        assert typ == "OK"
        typ, data = c._imap._simple_command("FETCH", "$", "(UID)")
        assert typ == "OK"
        assert c._imap.untagged_responses.pop("FETCH")[-1] == b"1 (UID 1)"
        c.logout()
    await _in_thread(run)


async def test_examine_is_read_only(imap_env: ImapEnv) -> None:
    await imap_env.deliver(message(1))

    def run() -> None:
        c = _client(imap_env)
        c.select_folder("INBOX", readonly=True)
        try:
            c.add_flags([1], ["\\Seen"])
            raise AssertionError("STORE in EXAMINE must fail")
        except IMAPClientError as exc:
            assert "READ-ONLY" in str(exc)
        c.fetch([1], ["BODY[]"])
        assert c.search(["SEEN"]) == []
        c.logout()
    await _in_thread(run)
