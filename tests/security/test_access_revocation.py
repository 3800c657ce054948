"""Issue 9 item 5: withdrawing access ends it in sessions that are already open.

A delegate logged in over IMAP on ``Shared/<owner>/INBOX`` and over submission (send-as)
must lose both within a couple of seconds of ``mssante delegations revoke`` run as another
process on the same data directory; an account suspended with ``mssante accounts status``
loses its open sessions the same way. Real gateway, real ``mssante`` subprocess, imaplib
and smtplib.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accounts import delegations
from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.timeout(120)

SEEN_WITHIN = 2.0
"""Seconds after the command returns by which every open session must have noticed."""


def _imap_port(gw: RunningGateway) -> int:
    for service in gw.gw.services:
        if service.name == "IMAP":
            return int(service.server.tls_port)  # type: ignore[attr-defined]
    raise AssertionError("the IMAP service is not running")


def mssante(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the command line as the operator would, on the running gateway's data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSANTE_")}
    env["MSSANTE_HOME"] = str(gw.settings.data_dir)
    exe = str(Path(sys.executable).with_name("mssante"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)


def message(sender: str, to: str, subject: str) -> bytes:
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.test>\r\nDate: Mon, 18 Mar 2024 10:00:00 +0100\r\n"
            "\r\nBonjour\r\n").encode()


def smtp_login(gw: RunningGateway, user: str, password: str) -> smtplib.SMTP_SSL:
    s = smtplib.SMTP_SSL("127.0.0.1", gw.submissions_port, context=gw.client_context(),
                         timeout=20)
    s.login(user, password)
    return s


def imap_login(gw: RunningGateway, user: str, password: str) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL("127.0.0.1", _imap_port(gw), ssl_context=gw.client_context(),
                          timeout=20)
    c.login(user, password)
    return c


async def _owner_and_delegate(gw: RunningGateway) -> tuple[str, str, str, str]:
    alice, alice_pw = await gw.add_mailbox("alice")
    bob, bob_pw = await gw.add_mailbox("bob")
    assert gw.gw.db is not None
    await delegations.grant(gw.gw.db, alice, bob, "lrsw", can_send_as=True)

    def seed() -> None:
        with smtp_login(gw, alice, alice_pw) as s:
            for n in range(2):
                s.sendmail(alice, [alice], message(alice, alice, f"seed{n}"))
    await asyncio.to_thread(seed)
    return alice, alice_pw, bob, bob_pw


async def test_revoked_delegation_ends_open_imap_and_send_as(gateway: RunningGateway) -> None:
    alice, _, bob, bob_pw = await _owner_and_delegate(gateway)
    shared = f'"Shared/{alice}/INBOX"'

    def before() -> tuple[imaplib.IMAP4_SSL, smtplib.SMTP_SSL]:
        c = imap_login(gateway, bob, bob_pw)
        typ, data = c.select(shared)
        assert typ == "OK" and data == [b"2"], data
        typ, data = c.fetch("1", "(FLAGS)")
        assert typ == "OK", data
        s = smtp_login(gateway, bob, bob_pw)
        code, _ = s.mail(alice)
        assert code == 250
        s.rset()
        return c, s
    imap, smtp = await asyncio.to_thread(before)

    done = await asyncio.to_thread(mssante, gateway, "delegations", "revoke", alice, bob)
    assert done.returncode == 0, done.stderr
    await asyncio.sleep(SEEN_WITHIN)

    def after() -> None:
        typ, data = imap.fetch("1", "(FLAGS)")
        assert typ == "NO" and b"[NOPERM]" in data[0], (typ, data)
        typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
        assert typ == "NO" and b"[NOPERM]" in data[0], (typ, data)
        typ, data = imap.status(shared, "(MESSAGES)")
        assert typ == "NO", (typ, data)
        # The session itself goes on: its own mailbox still works.
        typ, data = imap.select("INBOX")
        assert typ == "OK", data
        imap.logout()
        code, text = smtp.mail(alice)
        assert code == 553 and text.startswith(b"5.7.1"), (code, text)
        smtp.rset()
        code, _ = smtp.mail(bob)  # the delegate's own address is still fine
        assert code == 250
        smtp.quit()
        with smtp_login(gateway, bob, bob_pw) as fresh:
            code, text = fresh.mail(alice)
            assert code == 553 and text.startswith(b"5.7.1"), (code, text)
    await asyncio.to_thread(after)


async def test_suspended_account_loses_open_sessions(gateway: RunningGateway) -> None:
    alice, alice_pw, bob, bob_pw = await _owner_and_delegate(gateway)

    def before() -> tuple[imaplib.IMAP4_SSL, imaplib.IMAP4_SSL, smtplib.SMTP_SSL]:
        own = imap_login(gateway, alice, alice_pw)
        assert own.select("INBOX")[0] == "OK"
        delegate = imap_login(gateway, bob, bob_pw)
        assert delegate.select(f'"Shared/{alice}/INBOX"')[0] == "OK"
        s = smtp_login(gateway, alice, alice_pw)
        assert s.mail(alice)[0] == 250
        s.rset()
        return own, delegate, s
    own, delegate, smtp = await asyncio.to_thread(before)

    done = await asyncio.to_thread(mssante, gateway, "accounts", "status", alice, "suspended")
    assert done.returncode == 0, done.stderr
    await asyncio.sleep(SEEN_WITHIN)

    def after() -> None:
        with pytest.raises(imaplib.IMAP4.abort) as info:
            own.fetch("1", "(FLAGS)")
        assert "suspended" in str(info.value), info.value
        # The delegate keeps its session but not the suspended owner's mailbox.
        typ, data = delegate.fetch("1", "(FLAGS)")
        assert typ == "NO" and b"[NOPERM]" in data[0], (typ, data)
        delegate.logout()
        code, text = smtp.mail(alice)
        assert code == 550 and text.startswith(b"5.7.1") and b"suspended" in text, (code, text)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp_login(gateway, alice, alice_pw)
    await asyncio.to_thread(after)


async def test_accounts_status_refuses_unknown_values(gateway: RunningGateway) -> None:
    done = await asyncio.to_thread(mssante, gateway, "accounts", "status",
                                   gateway.demo_address, "asleep")
    assert done.returncode == 2 and "'asleep'" in done.stderr, done.stderr
    done = await asyncio.to_thread(mssante, gateway, "accounts", "status",
                                   "ghost@mssante.test", "suspended")
    assert done.returncode == 2 and "'ghost@mssante.test'" in done.stderr, done.stderr


async def test_revoked_delegation_ends_idle_pushes(gateway: RunningGateway) -> None:
    """A delegate IDLE on the owner's INBOX is told at once and sees no later mail."""
    import imapclient

    alice, alice_pw, bob, bob_pw = await _owner_and_delegate(gateway)

    def idle_start() -> imapclient.IMAPClient:
        c = imapclient.IMAPClient("127.0.0.1", port=_imap_port(gateway), ssl=True,
                                  ssl_context=gateway.client_context(), timeout=20)
        c.login(bob, bob_pw)
        c.select_folder(f"Shared/{alice}/INBOX")
        c.idle()
        return c
    client = await asyncio.to_thread(idle_start)
    done = await asyncio.to_thread(mssante, gateway, "delegations", "revoke", alice, bob)
    assert done.returncode == 0, done.stderr

    def idle_end() -> list[object]:
        seen: list[object] = []
        deadline = time.monotonic() + SEEN_WITHIN + 1
        while time.monotonic() < deadline:
            seen += client.idle_check(timeout=0.5)
            if any(b"NOPERM" in repr(r).encode() for r in seen):
                break
        # New mail for the owner after the revocation is not pushed to the delegate.
        with smtp_login(gateway, alice, alice_pw) as s:
            s.sendmail(alice, [alice], message(alice, alice, "after"))
        seen += client.idle_check(timeout=1.5)
        client.idle_done()
        client.logout()
        return seen
    seen = await asyncio.to_thread(idle_end)
    assert any(b"NOPERM" in repr(r).encode() for r in seen), seen
    assert not any(b"EXISTS" in repr(r).encode() for r in seen), seen
