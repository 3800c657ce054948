"""Submission: ``Sender:``, ``Resent-From:`` and ``Resent-Sender:`` follow the send-as rule.

Before: only MAIL FROM and From were checked, so a user could submit a message whose
``Sender:`` or ``Resent-From:`` named another local user (mail clients show those as who
sent or forwarded the message) and it was delivered.
"""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from accounts import delegations
from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.timeout(90)


def _message(sender: str, to: str, extra: str, token: str) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {token}\r\n"
        f"Message-ID: <{token}@client.test>\r\n{extra}\r\nbody\r\n"
    ).encode()


def _submit(gw: RunningGateway, to: str, data: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
        client.starttls(context=gw.client_context())
        client.login(gw.demo_address, gw.demo_password)
        client.mail(gw.demo_address)
        client.rcpt(to)
        return client.data(data)


@pytest.mark.parametrize(("header", "reply_header"), [
    ("Sender: Dr Bob <{bob}>", "Sender"),
    ("Resent-From: {bob}\r\nResent-Date: Mon, 18 Mar 2024 10:00:00 +0100", "Resent-From"),
    ("Resent-Sender: {bob}\r\nResent-From: {me}", "Resent-Sender"),
    ("Resent-From: {me}\r\nResent-From: {bob}", "Resent-From"),
    ("Sender: {me}, {bob}", "Sender"),
])
async def test_sender_and_resent_headers_naming_another_user_are_refused(
    gateway: RunningGateway, header: str, reply_header: str,
) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    carol, _ = await gateway.add_mailbox("carol")
    extra = header.format(bob=bob, me=gateway.demo_address) + "\r\n"
    code, reply = await asyncio.to_thread(
        _submit, gateway, carol, _message(gateway.demo_address, carol, extra, "spoof"))
    assert code == 553, reply
    assert reply == (f"5.7.1 {gateway.demo_address} is not allowed to send as {bob} "
                     f"(in the {reply_header} header)").encode(), reply
    assert await gateway.inbox_messages(carol) == []


async def test_own_and_send_as_addresses_in_sender_and_resent_are_accepted(
    gateway: RunningGateway,
) -> None:
    assert gateway.gw.db is not None
    org, _ = await gateway.add_mailbox("secretariat", type="ORG", name="Secretariat")
    await delegations.grant(gateway.gw.db, org, gateway.demo_address, "lrs", can_send_as=True)
    carol, _ = await gateway.add_mailbox("carol")
    me = gateway.demo_address
    cases = [
        f"Sender: <{me}>",
        f"Sender: {org}",
        f"Resent-From: {org}\r\nResent-Sender: {me}",
        f"Resent-From: Dr Demo <{me}>",
    ]
    for n, header in enumerate(cases):
        data = _message(org if header.startswith("Sender") else me, carol, header + "\r\n",
                        f"ok{n}")
        code, reply = await asyncio.to_thread(_submit, gateway, carol, data)
        assert code == 250, (header, reply)
    assert len(await gateway.inbox_messages(carol)) == len(cases)
