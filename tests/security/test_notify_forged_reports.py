"""A made-up read receipt or delivery report cannot join another message's story.

Reports filed in a local mailbox are proved under the message they answer only when that
mailbox submitted the message here; a report mailed to anyone else about someone's
message is proved under its own Message-ID. Every received report records how it came
(from which operator, or submitted by which user), and ``proofs show`` says so.
"""

from __future__ import annotations

import asyncio
import json
import smtplib

import pytest

from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.timeout(120)


def _submit(gw: RunningGateway, login: str, password: str, to: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", gw.submission_port, timeout=30) as client:
        client.starttls(context=gw.client_context())
        client.login(login, password)
        client.sendmail(login, [to], data)


def _forged_mdn(author: str, to: str, original: str, token: str) -> bytes:
    return (
        f"From: <{author}>\r\nTo: <{to}>\r\nSubject: Read: {token}\r\n"
        f"Message-ID: <{token}@client.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=disposition-notification;"
        ' boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nread\r\n'
        "--b1\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: client.test; forged\r\n"
        "Final-Recipient: rfc822;bob@mssante.test\r\n"
        f"Original-Message-ID: {original}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--b1--\r\n"
    ).encode()


async def test_forged_receipt_is_kept_apart_or_shown_with_who_submitted_it(
    gateway: RunningGateway,
) -> None:
    bob, _ = await gateway.add_mailbox("bob")
    carol, carol_password = await gateway.add_mailbox("carol")
    dave, _ = await gateway.add_mailbox("dave")
    original = "<letter@client.test>"
    await asyncio.to_thread(
        _submit, gateway, gateway.demo_address, gateway.demo_password, bob,
        (f"From: <{gateway.demo_address}>\r\nTo: <{bob}>\r\nSubject: letter\r\n"
         f"Message-ID: {original}\r\n\r\nbonjour\r\n").encode())

    # To a mailbox that did not send the letter: not part of the letter's story.
    await asyncio.to_thread(_submit, gateway, carol, carol_password, dave,
                            _forged_mdn(carol, dave, original, "forged1"))
    assert "mdn-received" not in [p["kind"] for p in await gateway.proofs_for(original)]
    [apart] = [p for p in await gateway.proofs_for("<forged1@client.test>")
               if p["kind"] == "mdn-received"]
    details = json.loads(apart["details"])
    assert details["original_message_id"] == original
    assert details["arrived"] == [{"kind": "submitted", "actor": carol}]

    # To the letter's sender: in the story, saying who submitted it.
    await asyncio.to_thread(_submit, gateway, carol, carol_password, gateway.demo_address,
                            _forged_mdn(carol, gateway.demo_address, original, "forged2"))
    [linked] = [p for p in await gateway.proofs_for(original) if p["kind"] == "mdn-received"]
    assert json.loads(linked["details"])["arrived"] == [{"kind": "submitted", "actor": carol}]


async def test_receipt_sent_by_the_readers_client_is_proved_under_the_message_read(
    gateway: RunningGateway,
) -> None:
    """Thunderbird asks its user, then submits the MDN itself: that is an MDN sent too,
    filed under the message read only if that message was delivered here to the user."""
    bob, bob_password = await gateway.add_mailbox("bob")
    carol, carol_password = await gateway.add_mailbox("carol")
    original = "<asks@client.test>"
    await asyncio.to_thread(
        _submit, gateway, gateway.demo_address, gateway.demo_password, bob,
        (f"From: <{gateway.demo_address}>\r\nTo: <{bob}>\r\nSubject: asks\r\n"
         f"Disposition-Notification-To: <{gateway.demo_address}>\r\n"
         f"Message-ID: {original}\r\n\r\nbonjour\r\n").encode())
    await asyncio.to_thread(_submit, gateway, bob, bob_password, gateway.demo_address,
                            _forged_mdn(bob, gateway.demo_address, original, "bob-mdn"))
    stories = {p["kind"]: p for p in await gateway.proofs_for(original)}
    sent = stories["mdn-sent"]
    assert sent["actor"] == bob
    assert json.loads(sent["details"])["sent_by"] == "client"
    assert "mdn-received" in stories
    # Carol never received the message: her "receipt" is not part of its story.
    await asyncio.to_thread(_submit, gateway, carol, carol_password, gateway.demo_address,
                            _forged_mdn(carol, gateway.demo_address, original, "carol-mdn"))
    assert [p["actor"] for p in await gateway.proofs_for(original)
            if p["kind"] == "mdn-sent"] == [bob]
