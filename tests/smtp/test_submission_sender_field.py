"""A delegate writing for a doctor: From the doctor, Sender the delegate (RFC 5322 §3.6.2).

Before: a secretary with a send-as delegation could submit ``From: <doctor>`` and the
recipient saw only the doctor; nothing in the message said who actually sent it. Now the
submission server adds ``Sender: <delegate>`` when the message has none and its author is
not the logged-in user, and the ``submitted`` proof names the delegate as actor and the
doctor as the one written for.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import smtplib

import pytest

from accounts import delegations
from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.timeout(90)


def _submit(gw: RunningGateway, login: str, password: str, mail_from: str, to: str,
            data: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
        client.starttls(context=gw.client_context())
        client.login(login, password)
        client.mail(mail_from)
        client.rcpt(to)
        return client.data(data)


def _message(author: str, to: str, token: str, extra: str = "") -> bytes:
    return (f"From: Dr Doc <{author}>\r\nTo: <{to}>\r\nSubject: {token}\r\n"
            f"Message-ID: <{token}@client.test>\r\n{extra}\r\nbody\r\n").encode()


async def _received(gw: RunningGateway, address: str, token: str) -> email.message.Message:
    for row in await gw.inbox_messages(address):
        if row["subject"] == token:
            return email.message_from_bytes(await gw.raw_message(row),
                                            policy=email.policy.compat32)
    raise AssertionError(f"{token} not delivered to {address}")


async def test_delegate_sending_as_doctor_gets_a_sender_field_and_is_the_proofs_actor(
    gateway: RunningGateway,
) -> None:
    assert gateway.gw.db is not None
    doctor, _ = await gateway.add_mailbox("doctor")
    secretary, password = await gateway.add_mailbox("secretary")
    carol, _ = await gateway.add_mailbox("carol")
    await delegations.grant(gateway.gw.db, doctor, secretary, "lrs", can_send_as=True)

    code, reply = await asyncio.to_thread(
        _submit, gateway, secretary, password, doctor, carol,
        _message(doctor, carol, "delegated"))
    assert code == 250, reply
    msg = await _received(gateway, carol, "delegated")
    assert msg.get_all("Sender") == [f"<{secretary}>"]
    assert doctor in str(msg["From"])
    [proof] = [p for p in await gateway.proofs_for("<delegated@client.test>")
               if p["kind"] == "submitted"]
    assert proof["actor"] == secretary
    details = json.loads(proof["details"])
    assert details["on_behalf_of"] == [doctor]
    assert details["sender_field_added"] is True


async def test_no_sender_field_added_when_present_or_when_writing_as_oneself(
    gateway: RunningGateway,
) -> None:
    assert gateway.gw.db is not None
    doctor, doctor_password = await gateway.add_mailbox("doctor")
    secretary, password = await gateway.add_mailbox("secretary")
    carol, _ = await gateway.add_mailbox("carol")
    await delegations.grant(gateway.gw.db, doctor, secretary, "lrs", can_send_as=True)
    code, _ = await asyncio.to_thread(
        _submit, gateway, secretary, password, doctor, carol,
        _message(doctor, carol, "own-sender", f"Sender: Secretariat <{secretary}>\r\n"))
    assert code == 250
    assert (await _received(gateway, carol, "own-sender")).get_all("Sender") == [
        f"Secretariat <{secretary}>"]
    code, _ = await asyncio.to_thread(
        _submit, gateway, doctor, doctor_password, doctor, carol,
        _message(doctor, carol, "self"))
    assert code == 250
    assert (await _received(gateway, carol, "self")).get_all("Sender") is None
    [proof] = [p for p in await gateway.proofs_for("<self@client.test>")
               if p["kind"] == "submitted"]
    assert "on_behalf_of" not in json.loads(proof["details"])
