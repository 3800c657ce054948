"""Per-account notice settings and one receipt per reading.

Under the read-notice policy ``always`` (the default), a message asking for a receipt is
filed with ``$MDNSent`` (RFC 3503) so that a client such as Thunderbird never asks its
user (the gateway answers at the first reading); a receipt the user's own client submitted
first is recorded so the gateway sends none; ``delivery-notice always`` gets the sender a
delivered DSN without ``NOTIFY=SUCCESS``. Real gateway, real SMTP and IMAP clients.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiosmtplib
import imapclient
from click.testing import CliRunner

import gateway.commands.mdn  # noqa: F401 - adds mdn and delivery-notice to the group
from gateway.commands.accounts import command as accounts_command
from gateway.context import CliContext
from mail.mdn import DEFAULT_POLICY, asks_for_receipt, build_mdn, client_mdn_already_sent
from storage import accounts as account_rows
from storage import proofs
from tests.fixtures.gateway import RunningGateway


def test_asks_for_receipt() -> None:
    assert asks_for_receipt(b"From: a@x\r\nDisposition-Notification-To: a@x\r\n\r\nhi\r\n")
    assert asks_for_receipt(b"From: a@x\ndisposition-notification-to:a@x\n\nhi\n")
    assert not asks_for_receipt(b"From: a@x\r\n\r\nDisposition-Notification-To: a@x\r\n")
    report = build_mdn(reporting_host="h", final_recipient="b@x", to="a@x",
                       original_message_id="<m@x>")
    assert not asks_for_receipt(b"Disposition-Notification-To: a@x\r\n" + report)
    assert DEFAULT_POLICY == "always"


async def _send(gw: RunningGateway, login: str, password: str, to: str, raw: bytes,
                notify: str | None = None) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gw.submission_port, start_tls=True,
                           tls_context=ssl.create_default_context(cafile=str(gw.ca_file)))
    await smtp.connect()
    try:
        await smtp.login(login, password)
        await smtp.mail(login)
        await smtp.rcpt(to, options=[f"NOTIFY={notify}"] if notify else [])
        await smtp.data(raw)
    finally:
        await smtp.quit()


def _message(sender: str, to: str, subject: str, receipt: bool) -> bytes:
    extra = f"Disposition-Notification-To: <{sender}>\r\n" if receipt else ""
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@mssante.test>\r\n{extra}\r\nbonjour\r\n").encode()


def _flags(gw: RunningGateway, login: str, password: str) -> dict[str, tuple[str, ...]]:
    """Subject → flags of the INBOX of ``login``, as an IMAP client sees them."""
    imap = next(s for s in gw.gw.services if s.name == "IMAP")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    with imapclient.IMAPClient("127.0.0.1", port=imap.server.tls_port,  # type: ignore[attr-defined]
                               ssl=True, ssl_context=ctx, timeout=10) as client:
        client.login(login, password)
        client.select_folder("INBOX", readonly=True)
        found = client.fetch(client.search(["ALL"]), ["FLAGS", "ENVELOPE"])
        return {data[b"ENVELOPE"].subject.decode(): tuple(f.decode() for f in data[b"FLAGS"])
                for data in found.values()}


def _read_bodies(gw: RunningGateway, login: str, password: str) -> None:
    """Opens every INBOX message as a client displaying it does (BODY[], not PEEK)."""
    imap = next(s for s in gw.gw.services if s.name == "IMAP")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    with imapclient.IMAPClient("127.0.0.1", port=imap.server.tls_port,  # type: ignore[attr-defined]
                               ssl=True, ssl_context=ctx, timeout=10) as client:
        client.login(login, password)
        client.select_folder("INBOX")
        client.fetch(client.search(["ALL"]), ["BODY[]"])


async def _set_policy(gw: RunningGateway, address: str, policy: str) -> None:
    assert gw.gw.db is not None
    async with gw.gw.db.begin() as conn:
        account = await account_rows.get_by_address(conn, address)
        assert account is not None
        await account_rows.update_fields(conn, account.id, mdn_policy=policy)


async def _wait_subjects(gw: RunningGateway, address: str, *subjects: str) -> None:
    async with asyncio.timeout(20):
        while True:
            if set(subjects) <= {str(r["subject"]) for r in await gw.inbox_messages(address)}:
                return
            await asyncio.sleep(0.1)


async def test_mdnsent_set_at_delivery_only_under_always(gateway: RunningGateway) -> None:
    bob, bob_pw = await gateway.add_mailbox("bob")
    carol, carol_pw = await gateway.add_mailbox("carol")
    await _set_policy(gateway, carol, "ask")
    me, pw = gateway.demo_address, gateway.demo_password
    await _send(gateway, me, pw, bob, _message(me, bob, "asks", True))
    await _send(gateway, me, pw, bob, _message(me, bob, "plain", False))
    await _send(gateway, me, pw, carol, _message(me, carol, "asks-carol", True))
    await _wait_subjects(gateway, bob, "asks", "plain")
    await _wait_subjects(gateway, carol, "asks-carol")
    flags = await asyncio.to_thread(_flags, gateway, bob, bob_pw)
    assert "$MDNSent" in flags["asks"]
    assert "$MDNSent" not in flags["plain"]
    assert "$MDNSent" not in (await asyncio.to_thread(_flags, gateway, carol, carol_pw))[
        "asks-carol"]


async def test_client_mdn_submitted_first_is_recorded(gateway: RunningGateway) -> None:
    bob, bob_pw = await gateway.add_mailbox("bob")
    me, pw = gateway.demo_address, gateway.demo_password
    await _send(gateway, me, pw, bob, _message(me, bob, "lu", True))
    await _wait_subjects(gateway, bob, "lu")
    assert gateway.gw.db is not None
    async with gateway.gw.db.read() as conn:
        account = await account_rows.get_by_address(conn, bob)
        assert account is not None
        assert not await client_mdn_already_sent(conn, account.id, "<lu@mssante.test>")
    # Bob's client (asked under policy "ask" on another device) sends its own receipt.
    report = build_mdn(reporting_host="client", final_recipient=bob, to=me,
                       original_message_id="<lu@mssante.test>", original_subject="lu")
    header = f"From: <{bob}>\r\n".encode()
    await _send(gateway, bob, bob_pw, me, header + report.split(b"\r\n", 1)[1])
    async with asyncio.timeout(20):
        while True:
            async with gateway.gw.db.read() as conn:
                if await client_mdn_already_sent(conn, account.id, "<lu@mssante.test>"):
                    break
            await asyncio.sleep(0.1)
    async with gateway.gw.db.read() as conn:
        other = await account_rows.get_by_address(conn, me)
        assert other is not None
        assert not await client_mdn_already_sent(conn, other.id, "<lu@mssante.test>")
        assert not await client_mdn_already_sent(conn, account.id, "<other@mssante.test>")
    # Bob now opens the message over IMAP (a body fetch, policy always): the gateway sends
    # no receipt of its own, the client's was the one (failed before: a second receipt).
    await asyncio.to_thread(_read_bodies, gateway, bob, bob_pw)
    async with asyncio.timeout(20):  # the read proof is written once the fetch is done
        while True:
            async with gateway.gw.db.read() as conn:
                kinds = [r.kind for r in await proofs.get_by_message(conn, "<lu@mssante.test>")]
            if "read" in kinds:
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    async with gateway.gw.db.read() as conn:
        kinds = [r.kind for r in await proofs.get_by_message(conn, "<lu@mssante.test>")]
    assert kinds.count("mdn-sent") == 1, kinds


async def _wait_dsn(gw: RunningGateway, address: str) -> None:
    async with asyncio.timeout(20):
        while True:
            if [r for r in await gw.inbox_messages(address)
                    if str(r["subject"]).startswith("Successful Mail Delivery")]:
                return
            await asyncio.sleep(0.1)


def _cli(gw: RunningGateway, *args: str) -> Any:
    """``mssante accounts ...`` on the running gateway's database (own thread: the command
    runs its own event loop)."""
    assert args[0] == "accounts"
    obj = CliContext(config_file=None, data_dir=None, _settings=gw.settings)
    return CliRunner().invoke(accounts_command, list(args[1:]), obj=obj)


async def test_delivery_notice_always_gets_a_delivered_dsn_without_notify(
    gateway: RunningGateway,
) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    me, pw = gateway.demo_address, gateway.demo_password
    result = await asyncio.to_thread(_cli, gateway, "accounts", "delivery-notice", me)
    assert result.exit_code == 0 and "delivery notices asked" in result.output
    result = await asyncio.to_thread(_cli, gateway, "accounts", "delivery-notice", me, "always")
    assert result.exit_code == 0, result.output
    assert "delivery notices always" in result.output
    await _send(gateway, me, pw, bob, _message(me, bob, "avec-avis", False))
    await _wait_subjects(gateway, bob, "avec-avis")
    await _wait_dsn(gateway, me)
    # An explicit NOTIFY=NEVER still wins.
    await _send(gateway, me, pw, bob, _message(me, bob, "sans-avis", False), notify="NEVER")
    await _wait_subjects(gateway, bob, "sans-avis")
    await asyncio.sleep(1.0)
    assert len([r for r in await gateway.inbox_messages(me)
                if str(r["subject"]).startswith("Successful Mail Delivery")]) == 1


async def test_notice_cli_refusals_and_read_policy(gateway: RunningGateway) -> None:
    me = gateway.demo_address
    bad = await asyncio.to_thread(_cli, gateway, "accounts", "delivery-notice", me, "sometimes")
    assert bad.exit_code == 2 and "'sometimes'" in bad.output
    bad = await asyncio.to_thread(_cli, gateway, "accounts", "mdn", me, "maybe")
    assert bad.exit_code == 2 and "'maybe'" in bad.output
    bad = await asyncio.to_thread(_cli, gateway, "accounts", "mdn", "nobody@mssante.test")
    assert bad.exit_code == 2 and "nobody@mssante.test" in bad.output
    shown = await asyncio.to_thread(_cli, gateway, "accounts", "mdn", me, "never")
    assert shown.exit_code == 0 and "read receipts never" in shown.output
    shown = await asyncio.to_thread(_cli, gateway, "accounts", "mdn", me)
    assert "read receipts never" in shown.output
