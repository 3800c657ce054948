"""IMAP4rev2 replies after ENABLE, LIST-EXTENDED RECURSIVEMATCH/\\NonExistent, and \\Recent
kept in the database (imaplib over TLS)."""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib

from gateway.services.imap import ImapService
from tests.fixtures.imap import ALICE, ImapEnv, message


def _login(env: ImapEnv) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL("127.0.0.1", env.tls_port, ssl_context=env.client_ssl(), timeout=10)
    imap.login(ALICE, env.alice_password)
    return imap


def _cmd(imap: imaplib.IMAP4, *args: str) -> tuple[str, list[bytes]]:
    """Runs a command and returns its status with every untagged line it produced."""
    tag = imap._new_tag()  # type: ignore[attr-defined]
    imap.send(tag + b" " + " ".join(args).encode() + b"\r\n")
    lines: list[bytes] = []
    while True:
        line = imap.readline()
        if line.startswith(tag + b" "):
            return line.split()[1].decode(), lines
        lines.append(line.rstrip(b"\r\n"))


async def test_rev2_select_has_list_and_no_recent(imap_env: ImapEnv) -> None:
    await imap_env.deliver(message(1))

    def run() -> None:
        imap = _login(imap_env)
        typ, lines = _cmd(imap, "ENABLE", "IMAP4rev2")
        assert typ == "OK" and b"* ENABLED IMAP4rev2" in lines
        typ, lines = _cmd(imap, "SELECT", "inbox")
        assert typ == "OK"
        assert b'* LIST () "/" INBOX' in lines  # RFC 9051 §6.3.2
        assert not any(b"RECENT" in x or b"UNSEEN" in x for x in lines), lines
        assert b"* 1 EXISTS" in lines
        typ, lines = _cmd(imap, "FETCH", "1", "(FLAGS)")
        assert typ == "OK" and b"\\Recent" not in b"".join(lines)
        typ, lines = _cmd(imap, "STATUS", "INBOX", "(MESSAGES DELETED SIZE)")
        assert typ == "OK" and b"DELETED 0" in lines[0]
        imap.logout()
        # A rev1 session still sees the message as recent: the rev2 one did not claim it.
        imap = _login(imap_env)
        typ, lines = _cmd(imap, "SELECT", "INBOX")
        assert b"* 1 RECENT" in lines and not any(x.startswith(b"* LIST") for x in lines)
        imap.logout()
    await asyncio.to_thread(run)


async def test_recursivematch_childinfo_and_nonexistent(imap_env: ImapEnv) -> None:
    def run() -> None:
        imap = _login(imap_env)
        for name in ("Patients", "Patients/Dupont", "Patients/Dupont/Bilans", "Old"):
            assert imap.create(name)[0] == "OK"
        # RFC 9051 §6.3.4: CREATE does not subscribe; the client subscribes what it wants.
        assert imap.subscribe("Patients/Dupont/Bilans")[0] == "OK"
        assert imap.subscribe("Old")[0] == "OK"
        assert imap.delete("Old")[0] == "OK"  # subscribed when deleted
        typ, lines = _cmd(imap, "LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
        assert typ == "OK"
        joined = b"\n".join(lines)
        assert b'* LIST (\\HasChildren) "/" Patients ("CHILDINFO" ("SUBSCRIBED"))' in lines, joined
        assert b'* LIST (\\NonExistent \\Subscribed) "/" Old' in lines, joined
        assert b'(\\HasNoChildren \\Subscribed) "/" INBOX' in joined
        # Without RECURSIVEMATCH the unsubscribed parent is not listed at all.
        typ, lines = _cmd(imap, "LIST", "(SUBSCRIBED)", '""', "*")
        joined = b"\n".join(lines)
        assert b'"/" Patients\n' not in joined + b"\n" and b"Patients/Dupont/Bilans" in joined
        assert b"Patients/Dupont " not in joined + b" "
        # RETURN (SUBSCRIBED): \Subscribed exactly on subscribed names; lost names hidden.
        typ, lines = _cmd(imap, "LIST", '""', "*", "RETURN", "(SUBSCRIBED)")
        flags = {x.rsplit(b" ", 1)[1]: x for x in lines}
        assert b"\\Subscribed" not in flags[b"Patients"]
        assert b"\\Subscribed" in flags[b"Patients/Dupont/Bilans"]
        assert b"Old" not in flags
        # RFC 3501 §6.3.7: the deleted name can be unsubscribed; then it is gone.
        assert imap.unsubscribe("Old")[0] == "OK"
        typ, lines = _cmd(imap, "LIST", "(SUBSCRIBED)", '""', "Old")
        assert lines == []
        # A name never subscribed still gets NONEXISTENT.
        typ, lines = _cmd(imap, "UNSUBSCRIBE", "Never")
        assert typ == "NO"
        imap.logout()
    await asyncio.to_thread(run)


async def test_recent_is_claimed_once_and_survives_restart(imap_env: ImapEnv) -> None:
    env = imap_env
    await env.deliver(message(1))
    await env.deliver(message(2))

    def first() -> None:
        a, b = _login(env), _login(env)
        _, lines = _cmd(a, "SELECT", "INBOX")
        assert b"* 2 RECENT" in lines
        _, lines = _cmd(b, "SELECT", "INBOX")
        assert b"* 0 RECENT" in lines  # RFC 3501 §2.3.2: only one session sees it
        _, lines = _cmd(b, "EXAMINE", "INBOX")
        assert b"* 0 RECENT" in lines
        a.logout()
        b.logout()
    await asyncio.to_thread(first)
    # Restart the IMAP service: a new server and a new store, nothing kept in memory.
    await env.service.stop(grace=0)
    env.gateway.services.remove(env.service)
    service = ImapService(env.gateway)
    await service.start()
    env.gateway.services.append(service)
    env = dataclasses.replace(env, service=service)
    await env.deliver(message(3))

    def after_restart() -> None:
        imap = _login(env)
        _, lines = _cmd(imap, "SELECT", "INBOX")
        assert b"* 3 EXISTS" in lines and b"* 1 RECENT" in lines
        imap.state = "SELECTED"
        typ, data = imap.fetch("3", "(FLAGS)")
        assert b"\\Recent" in data[0]
        typ, data = imap.fetch("1", "(FLAGS)")
        assert b"\\Recent" not in data[0]
        imap.logout()
    await asyncio.to_thread(after_restart)
