"""Mailbox commands to the letter of the RFCs: CREATE leaves subscriptions alone, and a
mailbox name that is not valid modified UTF-7 is refused with NO, not BAD."""

from __future__ import annotations

import asyncio

from tests.fixtures.imap import ImapEnv
from tests.imap.rfc_wire import Wire


async def test_create_does_not_subscribe(imap_env: ImapEnv) -> None:
    """RFC 3501 §6.3.3 / RFC 9051 §6.3.4: CREATE does not change subscriptions, for the new
    mailbox nor for the parents it creates; RFC 5258 §3.5 RECURSIVEMATCH/CHILDINFO follow
    the subscriptions the client made itself."""
    def run() -> None:
        w = Wire(imap_env)
        assert w.cmd("CREATE Dossiers/Dupont/Bilans")[0] == "OK"
        status, lines = w.cmd('LSUB "" "Dossiers*"')
        assert status == "OK" and lines == [], lines
        status, lines = w.cmd('LIST (SUBSCRIBED) "" "Dossiers*"')
        assert lines == [], lines
        status, lines = w.cmd('LIST "" "Dossiers*" RETURN (SUBSCRIBED)')
        assert len(lines) == 3 and not any(b"\\Subscribed" in x for x in lines), lines
        # The client subscribes the leaf itself: the parents are listed with CHILDINFO only.
        assert w.cmd("SUBSCRIBE Dossiers/Dupont/Bilans")[0] == "OK"
        status, lines = w.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Dossiers/%"')
        assert lines == [b'* LIST (\\HasChildren) "/" Dossiers/Dupont ("CHILDINFO" '
                         b'("SUBSCRIBED"))'], lines
        assert w.cmd("UNSUBSCRIBE Dossiers/Dupont/Bilans")[0] == "OK"
        status, lines = w.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Dossiers*"')
        assert lines == [], lines
        status, lines = w.cmd('LSUB "" "*"')
        assert not any(b"Dossiers" in x for x in lines), lines
        # The mailboxes created with the account stay subscribed.
        assert any(x.endswith(b" INBOX") for x in lines), lines
        w.close()
    await asyncio.to_thread(run)


async def test_recreated_mailbox_keeps_its_subscription(imap_env: ImapEnv) -> None:
    """RFC 3501 §6.3.6: a subscription outlives its mailbox, so a mailbox created again
    under a subscribed name is subscribed; an unsubscribed name stays unsubscribed."""
    def run() -> None:
        w = Wire(imap_env)
        assert w.cmd("CREATE Old")[0] == "OK"
        assert w.cmd("SUBSCRIBE Old")[0] == "OK"
        assert w.cmd("DELETE Old")[0] == "OK"
        assert w.cmd("CREATE Old/Sub")[0] == "OK"
        status, lines = w.cmd('LIST "" "Old*" RETURN (SUBSCRIBED)')
        assert b'* LIST (\\HasChildren \\Subscribed) "/" Old' in lines, lines
        assert b'* LIST (\\HasNoChildren) "/" Old/Sub' in lines, lines
        w.close()
    await asyncio.to_thread(run)


async def test_invalid_modified_utf7_name_is_no(imap_env: ImapEnv) -> None:
    """RFC 3501 §5.1.3 / RFC 9051 §5.1: the command is well formed, only the name is not
    valid modified UTF-7, so the answer is NO (RFC 5530 CANNOT) and the session goes on."""
    def run() -> None:
        w = Wire(imap_env)
        for command in ("CREATE &Jjo", "CREATE a&AGE-b", "SELECT &-x&Jjo!", 'STATUS "&ZZZ" '
                        "(MESSAGES)", "DELETE &Jjo-&Jjo-"):
            status, _ = w.cmd(command)
            assert status == "NO", (command, w.last_tagged)
            assert b"NO [CANNOT]" in w.last_tagged and b"UTF-7" in w.last_tagged, w.last_tagged
        assert w.cmd("CREATE &AOk-t&AOk-")[0] == "OK"  # a valid name still works
        assert w.cmd("NOOP")[0] == "OK"
        w.close()
    await asyncio.to_thread(run)
