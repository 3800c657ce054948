"""BDAT sizes a client announces must not make the gateway read (or hold) them.

RFC 3030 wants a refused chunk consumed, so that its octets are not taken for commands; for a
chunk of 2 GB announced before STARTTLS, AUTH or MAIL, or beyond the message size limit,
reading it would let any client make the server swallow gigabytes. Small refused chunks are
still consumed (the session goes on); large ones are refused at once and the connection is
closed with ``421``, nothing of the chunk read.
"""

from __future__ import annotations

import base64

from tests.fixtures.smtp_protocol import RawClient, ready_session

HUGE = 2_000_000_000
"""Announced, never sent: the server must answer without waiting for any of it."""


async def _refused_then_closed(client: RawClient, first: str) -> None:
    code, text = await client.reply()
    assert text.startswith(first), text
    code, text = await client.reply()
    assert code == 421 and text.startswith("421 4.7.0"), text
    assert "BDAT chunk" in text
    assert await client.closed()


async def test_huge_bdat_before_starttls_is_refused_and_closed(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, _):
        client = await RawClient.connect(server.port)
        await client.reply()
        await client.command("EHLO client.test")
        await client.send(b"BDAT %d LAST\r\n" % HUGE)
        await _refused_then_closed(client, "530 5.7.0")


async def test_huge_bdat_before_auth_is_refused_and_closed(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="submission", login=False)
        await client.send(b"BDAT %d\r\n" % HUGE)
        await _refused_then_closed(client, "503 5.5.1")


async def test_huge_bdat_before_mail_on_relay_is_refused_and_closed(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        await client.send(b"BDAT %d LAST\r\n" % HUGE)
        await _refused_then_closed(client, "503 5.5.1 Error: need MAIL")


async def test_bdat_beyond_message_size_is_refused_unread(smtp_server, protocol_pki):
    async with smtp_server("relay", max_message_size=1_000_000) as (server, policy):
        client = await ready_session(server.port, protocol_pki, kind="relay")
        for line in ("MAIL FROM:<x@hopital-b.mssante.test>", "RCPT TO:<bob@mssante.test>"):
            assert (await client.command(line))[0] == 250
        await client.send(b"BDAT %d LAST\r\n" % HUGE)
        await _refused_then_closed(client, "552 5.3.4")
        assert policy.accepted == []


async def test_small_refused_bdat_is_still_consumed(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="submission", login=False)
        await client.send(b"BDAT 1000\r\n" + b"QUIT\r\n" * 166 + b"QUIT")
        code, text = await client.reply()
        assert text.startswith("503 5.5.1"), text
        assert (await client.command("NOOP"))[0] == 250  # the QUITs were data, not commands
        token = base64.b64encode(b"\0alice@mssante.test\0correct horse").decode()
        assert (await client.command(f"AUTH PLAIN {token}"))[0] == 235
        await client.close()


async def test_overlong_auth_response_line_is_refused_clearly(smtp_server, protocol_pki):
    async with smtp_server("submission") as (server, _):
        client = await ready_session(server.port, protocol_pki, kind="submission", login=False)
        code, text = await client.command("AUTH PLAIN")
        assert code == 334, text
        await client.send(b"A" * 100_000 + b"\r\n")
        code, text = await client.reply()
        # RFC 4954 §6: 500 5.5.6 Authentication Exchange line is too long
        assert text.startswith("500 5.5.6"), text
        assert "Error:" not in text and "Separator" not in text
        await client.close()
