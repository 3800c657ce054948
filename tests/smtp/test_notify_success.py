"""RFC 3464 success notifications and the reports received in answer to a message.

One gateway: a local recipient asked with ``NOTIFY=SUCCESS`` makes the sender get a
"delivered" DSN when the message is filed. Two gateways on loopback (as in
``test_outbound_e2e``): A's user writes to B's user with ``NOTIFY=SUCCESS`` and
``Disposition-Notification-To``; B files the message and answers with a delivered DSN, B's
user reads it over IMAP and B answers with an MDN; A records both as received reports
linked to the original message, and ``mssante proofs show`` on each side tells the story.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import ssl
from pathlib import Path
from typing import Any

import aiosmtplib
import imapclient
from click.testing import CliRunner

from gateway.commands.proofs import command as proofs_command
from gateway.context import CliContext
from mail.pipeline import Delivery, LocalTarget
from storage import accounts as account_rows
from storage import folders as folder_rows
from tests.fixtures.gateway import RunningGateway, free_port, running_gateway
from tests.fixtures.pki import DevPkiBundle
from tests.smtp.test_outbound_e2e import A_DOMAIN, B_DOMAIN, _settings


async def _send(gw: RunningGateway, login: str, password: str, to: str, subject: str, *,
                notify: str | None = "SUCCESS", receipt: bool = False,
                envid: str | None = None) -> str:
    """Submits a message from ``login`` to ``to`` with the DSN parameters given."""
    msgid = f"<{subject}@{gw.settings.primary_domain}>"
    extra = f"Disposition-Notification-To: <{login}>\r\n" if receipt else ""
    raw = (f"From: <{login}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
           f"{extra}\r\nbonjour\r\n")
    ctx = ssl.create_default_context(cafile=str(gw.ca_file))
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gw.submission_port, start_tls=True,
                           tls_context=ctx)
    await smtp.connect()
    try:
        await smtp.login(login, password)
        await smtp.mail(login, options=[f"ENVID={envid}"] if envid else [])
        await smtp.rcpt(to, options=[f"NOTIFY={notify}"] if notify else [])
        await smtp.data(raw.encode())
    finally:
        await smtp.quit()
    return msgid


async def _wait_message(gw: RunningGateway, address: str, subject: str,
                        within: float = 20.0) -> bytes:
    """The raw message whose Subject starts with ``subject`` in ``address``'s INBOX."""
    async with asyncio.timeout(within):
        while True:
            for row in await gw.inbox_messages(address):
                if str(row["subject"]).startswith(subject):
                    return await gw.raw_message(row)
            await asyncio.sleep(0.1)


async def _wait_kinds(gw: RunningGateway, ref: str, *kinds: str) -> list[dict[str, Any]]:
    async with asyncio.timeout(20):
        while True:
            found = await gw.proofs_for(ref)
            if set(kinds) <= {p["kind"] for p in found}:
                return found
            await asyncio.sleep(0.1)


def _report(raw: bytes, content_type: str) -> list[email.message.Message]:
    """The blocks of the machine-readable part of a multipart/report."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    [part] = [p for p in msg.get_payload() if p.get_content_type() == content_type]
    blocks: list[email.message.Message] = part.get_payload()
    return blocks


async def _show(gw: RunningGateway, ref: str, *args: str) -> str:
    """``mssante proofs show`` against the running gateway's database (own thread: the
    command runs its own event loop)."""
    def run() -> str:
        obj = CliContext(config_file=None, data_dir=None, _settings=gw.settings)
        result = CliRunner().invoke(proofs_command, ["show", ref, *args], obj=obj)
        assert result.exit_code == 0, result.output
        return result.stdout
    return await asyncio.to_thread(run)


async def test_local_delivery_with_notify_success_sends_a_delivered_dsn(
    gateway: RunningGateway,
) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    msgid = await _send(gateway, gateway.demo_address, gateway.demo_password, bob, "local-ok",
                        envid="env-local-1")
    raw = await _wait_message(gateway, gateway.demo_address, "Successful Mail Delivery")
    per_message, per_rcpt = _report(raw, "message/delivery-status")
    assert per_message["Original-Envelope-Id"] == "env-local-1"
    assert per_rcpt["Action"] == "delivered" and per_rcpt["Status"] == "2.0.0"
    assert per_rcpt["Final-Recipient"] == f"rfc822;{bob}"
    found = await _wait_kinds(gateway, msgid, "dsn-sent", "dsn-received")
    [sent] = [p for p in found if p["kind"] == "dsn-sent"]
    assert json.loads(sent["details"])["action"] == "delivered"
    [received] = [p for p in found if p["kind"] == "dsn-received"]
    details = json.loads(received["details"])
    assert details["recipients"][0]["action"] == "delivered"
    assert details["mailboxes"] == [gateway.demo_address]


async def test_no_success_dsn_unless_asked(gateway: RunningGateway) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    for notify, subject in ((None, "plain"), ("FAILURE", "failure-only"), ("NEVER", "never")):
        await _send(gateway, gateway.demo_address, gateway.demo_password, bob, subject,
                    notify=notify)
    await asyncio.sleep(1.0)
    subjects = [str(r["subject"]) for r in await gateway.inbox_messages(gateway.demo_address)]
    assert not [s for s in subjects if s.startswith("Successful")]


async def test_two_gateways_delivered_dsn_and_mdn_come_back_with_the_whole_story(
    tmp_path: Path, dev_pki: DevPkiBundle
) -> None:
    port_a, port_b = free_port(), free_port()
    sa = _settings(tmp_path / "a", dev_pki, A_DOMAIN, B_DOMAIN, port_a, port_b)
    sb = _settings(tmp_path / "b", dev_pki, B_DOMAIN, A_DOMAIN, port_b, port_a)
    async with running_gateway(sa) as a, running_gateway(sb) as b:
        assert b.gw.db is not None
        async with b.gw.db.begin() as conn:
            reader = await account_rows.get_by_address(conn, b.demo_address)
            assert reader is not None
            await account_rows.update_fields(conn, reader.id, mdn_policy="always")
        msgid = await _send(a, a.demo_address, a.demo_password, b.demo_address, "aller",
                            receipt=True, envid="env-aller")
        await _wait_message(b, b.demo_address, "aller")

        # B's delivered DSN reaches A's sender (not a "relayed" one from A: B speaks DSN).
        raw = await _wait_message(a, a.demo_address, "Successful Mail Delivery")
        per_message, per_rcpt = _report(raw, "message/delivery-status")
        assert per_rcpt["Action"] == "delivered"
        assert per_rcpt["Final-Recipient"] == f"rfc822;{b.demo_address}"
        assert per_message["Reporting-MTA"] == f"dns;{b.settings.hostname}"

        # B's user reads the message over IMAP: B sends its MDN back to A.
        imap = next(s for s in b.gw.services if s.name == "IMAP")

        def read() -> None:
            ctx = ssl.create_default_context(cafile=str(b.ca_file))
            with imapclient.IMAPClient("127.0.0.1", port=imap.server.tls_port,  # type: ignore[attr-defined]
                                       ssl=True, ssl_context=ctx, timeout=10) as client:
                client.login(b.demo_address, b.demo_password)
                client.select_folder("INBOX")
                uids = client.search(["SUBJECT", "aller"])
                client.fetch(uids, ["BODY[]"])
        await asyncio.to_thread(read)
        mdn = await _wait_message(a, a.demo_address, "Read:")
        [block] = _report(mdn, "message/disposition-notification")
        assert block["Original-Message-ID"] == msgid

        kinds_b = [p["kind"] for p in await _wait_kinds(
            b, msgid, "received", "delivered", "dsn-sent", "read", "mdn-sent")]
        assert kinds_b.index("received") < kinds_b.index("delivered") < kinds_b.index("read")
        assert kinds_b.index("read") < kinds_b.index("mdn-sent")
        kinds_a = [p["kind"] for p in await _wait_kinds(
            a, msgid, "submitted", "relayed", "dsn-received", "mdn-received")]
        assert kinds_a[0] == "submitted"
        assert kinds_a.index("dsn-received") < kinds_a.index("mdn-received")
        assert "dsn-sent" not in kinds_a  # no "relayed" DSN from A

        text_a = await _show(a, msgid)
        print(f"--- proofs show on A ---\n{text_a}")
        lines_a = text_a.splitlines()
        assert msgid in lines_a[0]
        order = [next(i for i, line in enumerate(lines_a) if word in line) for word in (
            "submitted by " + a.demo_address, "relayed to " + b.demo_address,
            "delivery report received", "read receipt received")]
        assert order == sorted(order), text_a
        text_b = await _show(b, msgid)
        print(f"--- proofs show on B ---\n{text_b}")
        order = [next(i for i, line in enumerate(text_b.splitlines()) if word in line)
                 for word in ("received from", "delivered to " + b.demo_address,
                              "delivery report sent", "read by " + b.demo_address,
                              "read receipt sent")]
        assert order == sorted(order), text_b
        story = json.loads(await _show(b, msgid, "--json"))
        assert story["message_id"] == msgid
        assert [e["kind"] for e in story["events"]] == kinds_b
        assert all(e["seq"] and e["time"] and e["summary"] for e in story["events"])


async def test_dsn_returning_no_headers_is_linked_through_its_envelope_id(
    gateway: RunningGateway,
) -> None:
    """RFC 3464 §2.2.1: a report that returns nothing names the message by the ENVID its
    sender gave; the sender's queue row with that ENVID says which message it was."""
    remote = "dr.x@ch-exemple.mssante.fr"
    msgid = await _send(gateway, gateway.demo_address, gateway.demo_password, remote,
                        "envid-only", envid="env-remote-7")
    db, pipeline = gateway.gw.db, gateway.gw.pipeline
    assert db is not None and pipeline is not None
    async with db.read() as conn:
        account = await account_rows.get_by_address(conn, gateway.demo_address)
        assert account is not None
        inbox = await folder_rows.get(conn, account.id, "INBOX")
        assert inbox is not None
    dsn = (
        "From: MAILER-DAEMON@ch-exemple.mssante.fr\r\n"
        f"To: <{gateway.demo_address}>\r\nSubject: Successful Mail Delivery Report\r\n"
        "Message-ID: <dsn-envid@ch-exemple.mssante.fr>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\ndelivered\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns;mx.ch-exemple.mssante.fr\r\n"
        "Original-Envelope-Id: env-remote-7\r\n\r\n"
        f"Original-Recipient: rfc822;{remote}\r\nFinal-Recipient: rfc822;{remote}\r\n"
        "Action: delivered\r\nStatus: 2.0.0\r\n\r\n--b--\r\n"
    ).encode()
    await pipeline.submit(Delivery(raw=dsn, sender="", local=[
        LocalTarget(account.address, account.id, inbox.id)]))
    [received] = [p for p in await gateway.proofs_for(msgid) if p["kind"] == "dsn-received"]
    details = json.loads(received["details"])
    assert details["matched_by"] == "envid"
    assert details["original_envelope_id"] == "env-remote-7"
    assert details["recipients"][0]["original_recipient"] == f"rfc822;{remote}"
