"""RFC 5465 NOTIFY on the real server: one client sets NOTIFY, another (and delivery)
changes mailboxes, and the first reads what it is told without sending any command."""

from __future__ import annotations

import asyncio
import time

from tests.fixtures.imap import ImapEnv, message
from tests.imap.rfc_wire import Wire

_ALL = "(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"


def _nothing_pushed(w: Wire) -> list[bytes]:
    """What the server sent unasked in the last moments: the untagged responses before the
    answer of a FETCH sent after a pause (FETCH itself adds only its FETCH lines and, RFC
    3501 §7.4.1, never an EXPUNGE)."""
    time.sleep(0.7)
    _, lines = w.cmd("FETCH 1:* (UID)")
    return [x for x in lines if not x.startswith(b"* 1 FETCH (UID ")]


async def test_notify_pushes_status_list_and_selected_changes(imap_env: ImapEnv) -> None:
    """RFC 5465 §3 (STATUS: one STATUS per mailbox in scope at once), §5.2-5.3 (a change
    in another mailbox: ``* STATUS`` with MESSAGES, UIDNEXT, UNSEEN, unasked), §5.1 (the
    selected mailbox: EXISTS/EXPUNGE/FETCH between commands), §5.4 (MailboxName: LIST of a
    new mailbox, OLDNAME for a rename, \\NonExistent for a deleted one), §5.5
    (SubscriptionChange: LIST with \\Subscribed), then NOTIFY NONE stops it all."""
    loop = asyncio.get_running_loop()

    def deliver(n: int, folder: str) -> None:
        asyncio.run_coroutine_threadsafe(
            imap_env.deliver(message(n), folder=folder), loop).result(15)

    def run() -> None:
        w = Wire(imap_env)
        other = Wire(imap_env)
        _, lines = w.cmd("CAPABILITY")
        assert b" NOTIFY" in lines[0]
        status, lines = w.cmd(f"NOTIFY SET (STATUS) (SELECTED (MessageNew MessageExpunge "
                              f"FlagChange)) (PERSONAL {_ALL})")
        assert status == "OK", w.last_tagged
        assert b"* STATUS Archive (MESSAGES 0 UIDNEXT 1 UNSEEN 0)" in lines, lines
        assert sum(x.startswith(b"* STATUS ") for x in lines) == 5, lines
        w.cmd("SELECT INBOX")
        deliver(1, "Archive")
        assert w.response() == b"* STATUS Archive (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
        deliver(2, "INBOX")
        assert w.response() == b"* 1 EXISTS\r\n"
        assert w.response() == b"* 1 RECENT\r\n"  # IMAP4rev1 (RFC 3501 §7.3.2)
        other.cmd("SELECT Archive")
        other.cmd("STORE 1 +FLAGS (\\Seen)")
        assert w.response() == b"* STATUS Archive (MESSAGES 1 UIDNEXT 2 UNSEEN 0)\r\n"
        other.cmd("CREATE Projets")
        assert w.response() == b'* LIST () "/" Projets\r\n'
        other.cmd("RENAME Projets Projets2026")
        assert w.response() == b'* LIST () "/" Projets2026 ("OLDNAME" (Projets))\r\n'
        other.cmd("SUBSCRIBE Projets2026")
        assert w.response() == b'* LIST (\\Subscribed) "/" Projets2026\r\n'
        other.cmd("DELETE Projets2026")
        assert w.response() == b'* LIST (\\NonExistent) "/" Projets2026\r\n'
        other.cmd("SELECT INBOX")
        other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        fetch = w.response()  # FlagChange on the selected mailbox: its FETCH FLAGS
        assert fetch.startswith(b"* 1 FETCH (") and b"\\Deleted" in fetch, fetch
        other.cmd("EXPUNGE")
        assert w.response() == b"* 1 EXPUNGE\r\n"
        status, _ = w.cmd("NOTIFY NONE")
        assert status == "OK"
        deliver(3, "Archive")
        assert _nothing_pushed(w) == []
        other.close()
        w.close()

    await asyncio.to_thread(run)


async def test_notify_selected_delayed_and_subscribed(imap_env: ImapEnv) -> None:
    """RFC 5465 §5.1: under SELECTED-DELAYED, EXPUNGE waits for a command that may carry
    it (here NOOP) while new messages are pushed; SUBSCRIBED covers only subscribed
    mailboxes (§6)."""
    loop = asyncio.get_running_loop()

    def run() -> None:
        w = Wire(imap_env)
        other = Wire(imap_env)
        other.cmd("CREATE Suivi")
        other.cmd("CREATE Ignore")
        other.cmd("SUBSCRIBE Suivi")
        w.cmd("SELECT INBOX")
        status, _ = w.cmd("NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge)) "
                          "(SUBSCRIBED (MessageNew MessageExpunge))")
        assert status == "OK", w.last_tagged
        for n, folder in ((1, "Ignore"), (2, "Suivi"), (3, "INBOX")):
            asyncio.run_coroutine_threadsafe(
                imap_env.deliver(message(n), folder=folder), loop).result(15)
        got = [w.response(), w.response(), w.response()]
        assert sorted(got) == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n",
                               b"* STATUS Suivi (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"], got
        other.cmd("SELECT INBOX")
        other.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
        other.cmd("EXPUNGE")
        assert _nothing_pushed(w) == []
        _, lines = w.cmd("NOOP")
        assert lines == [b"* 1 EXPUNGE", b"* 0 RECENT"], lines
        other.close()
        w.close()

    await asyncio.to_thread(run)


async def test_notify_refusals(imap_env: ImapEnv) -> None:
    """RFC 5465 §5: MessageNew and MessageExpunge go together, FlagChange needs them (BAD);
    §6: only message events for SELECTED (BAD); an unsupported event is
    ``NO [BADEVENT (supported events)]``; NOTIFY needs authentication."""

    def run() -> None:
        w = Wire(imap_env)
        assert w.cmd("NOTIFY SET (PERSONAL (MessageNew))")[0] == "BAD"
        assert w.cmd("NOTIFY SET (PERSONAL (FlagChange))")[0] == "BAD"
        assert w.cmd("NOTIFY SET (SELECTED (MessageNew MessageExpunge MailboxName))"
                     )[0] == "BAD"
        assert w.cmd("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
                     "(SELECTED-DELAYED (MessageNew MessageExpunge))")[0] == "BAD"
        assert w.cmd("NOTIFY SET (PERSONAL (Bogus))")[0] == "BAD"
        status, _ = w.cmd("NOTIFY SET (PERSONAL (MailboxName AnnotationChange))")
        assert status == "NO" and w.last_tagged.split()[2:4] == [b"[BADEVENT", b"(MessageNew"]
        assert w.cmd("NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))")[0] == "NO"
        assert w.cmd("NOTIFY SET (MAILBOXES (INBOX Drafts) (MessageNew MessageExpunge)) "
                     "(SUBTREE Archive NONE)")[0] == "OK"
        w.close()
        import imaplib

        plain = imaplib.IMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                  ssl_context=imap_env.client_ssl(), timeout=15)
        tag = plain._new_tag()  # type: ignore[attr-defined]
        plain.send(tag + b" NOTIFY NONE\r\n")
        line = plain.readline()
        assert line.startswith(tag + b" BAD"), line
        plain.shutdown()

    await asyncio.to_thread(run)


async def test_notify_never_sends_status_for_the_selected_mailbox(imap_env: ImapEnv) -> None:
    """RFC 5465 §5.2: changes of the selected mailbox are told as EXISTS/EXPUNGE/FETCH,
    not STATUS, even when only PERSONAL was given (here: at the next command)."""
    loop = asyncio.get_running_loop()

    def run() -> None:
        w = Wire(imap_env)
        w.cmd("SELECT INBOX")
        assert w.cmd("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")[0] == "OK"
        asyncio.run_coroutine_threadsafe(imap_env.deliver(message(1)), loop).result(15)
        asyncio.run_coroutine_threadsafe(
            imap_env.deliver(message(2), folder="Drafts"), loop).result(15)
        assert w.response() == b"* STATUS Drafts (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
        _, lines = w.cmd("NOOP")
        assert b"* 1 EXISTS" in lines and not any(x.startswith(b"* STATUS") for x in lines)
        w.close()

    await asyncio.to_thread(run)


async def test_notify_watches_shared_mailboxes_with_rights(imap_env: ImapEnv) -> None:
    """RFC 5465 §6 filters over the shared namespace (RFC 2342 ``Shared/<owner>/``): SUBTREE
    and MAILBOXES (owner written in any case, INBOX in any case) and SUBSCRIBED (a shared
    mailbox is always subscribed, as LIST says) cover the organisational mailbox Alice may
    read (``lr``, RFC 4314): a delivery there, or a flag its manager stores, is a
    ``* STATUS``; a mailbox created in it is a ``* LIST`` (MailboxName). PERSONAL does
    not cover it (§6: the personal namespace), a mailbox with ``l`` but no ``r`` never
    gets a STATUS (RFC 4314 §4), nor does one whose delegation was withdrawn."""
    from accounts import delegations
    from accounts.mailboxes import add_mailbox
    from tests.fixtures.imap import ALICE, BOB

    db = imap_env.gateway.db
    assert db is not None
    org, listed = "secretariat@mssante.test", "accueil@mssante.test"
    owner = (await add_mailbox(db, org, type="ORG", name="Secretariat")).account
    await add_mailbox(db, listed, type="ORG", name="Accueil")
    await delegations.grant(db, org, ALICE, "lr")
    await delegations.grant(db, org, BOB, delegations.ALL_RIGHTS)
    await delegations.grant(db, listed, ALICE, "l")
    await imap_env.deliver(message(1))
    loop = asyncio.get_running_loop()
    shared = f"Shared/{org}/INBOX"

    def deliver(n: int, to: str) -> None:
        asyncio.run_coroutine_threadsafe(imap_env.deliver(message(n), to=to), loop).result(15)

    def run() -> None:
        w = Wire(imap_env)
        manager = Wire(imap_env, BOB)
        w.cmd("SELECT INBOX")
        status, _ = w.cmd("NOTIFY SET (SUBTREE Shared/SECRETARIAT@mssante.test "
                          "(MessageNew MessageExpunge MailboxName))")
        assert status == "OK", w.last_tagged
        deliver(2, org)
        assert w.response() == f"* STATUS {shared} (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n".encode()
        # A mailbox created in the organisation (as the webmail does for its owner).
        asyncio.run_coroutine_threadsafe(imap_env.service.context.store.create_folder(
            owner.id, "Dossiers", None), loop).result(15)
        assert w.response() == f'* LIST (\\Subscribed) "/" Shared/{org}/Dossiers\r\n'.encode()

        status, _ = w.cmd(f"NOTIFY SET (MAILBOXES (Shared/{org}/inbox) (MessageNew "
                          f"MessageExpunge FlagChange))")
        assert status == "OK", w.last_tagged
        manager.cmd(f'SELECT "{shared}"')
        manager.cmd("STORE 1 +FLAGS (\\Seen)")
        assert w.response() == f"* STATUS {shared} (MESSAGES 1 UIDNEXT 2 UNSEEN 0)\r\n".encode()

        status, _ = w.cmd("NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge))")
        assert status == "OK", w.last_tagged
        deliver(3, org)
        assert w.response() == f"* STATUS {shared} (MESSAGES 2 UIDNEXT 3 UNSEEN 1)\r\n".encode()

        status, _ = w.cmd("NOTIFY SET (PERSONAL (MessageNew MessageExpunge)) "
                          "(SUBTREE Shared/accueil@mssante.test (MessageNew MessageExpunge))")
        assert status == "OK", w.last_tagged
        deliver(4, org)
        deliver(5, listed)
        assert _nothing_pushed(w) == []

        # Alice's delegation withdrawn: nothing more of the mailbox is told.
        status, _ = w.cmd("NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge))")
        assert status == "OK", w.last_tagged
        deliver(6, org)
        assert w.response() == f"* STATUS {shared} (MESSAGES 4 UIDNEXT 5 UNSEEN 3)\r\n".encode()
        asyncio.run_coroutine_threadsafe(delegations.revoke(db, org, ALICE), loop).result(15)
        time.sleep(1.5)  # the access version is read once a second (accounts.access)
        deliver(7, org)
        assert _nothing_pushed(w) == []
        manager.close()
        w.close()

    await asyncio.to_thread(run)
