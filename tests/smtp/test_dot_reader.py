"""DATA read in blocks (smtp/dot_reader.py): the end of the data wherever the reads split it.

The property test compares the block reader with a reader of whole lines (what RFC 5321
§4.1.1.4 and §4.5.2 describe) on random octet streams cut in random places; the others go
through a real TLS connection to a relay listener, the message written in odd pieces.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtp.dot_reader import TERMINATOR, read_dot_terminated
from tests.fixtures.smtp_protocol import RawClient
from tests.smtp.test_protocol_data import HEAD, open_transaction

AFTER = b"QUIT\r\n"  # a command pipelined after the data: must stay unread


def line_reader(stream: bytes) -> tuple[bytes, bytes]:
    """The reference: whole lines (ending at LF), the end at a "." line that follows a CRLF
    (so <LF>.<LF> and the like never end it), one leading dot dropped from every other line.
    Returns the content and what follows the end."""
    out: list[bytes] = []
    position, previous = 0, b"\r\n"
    while True:
        end = stream.index(b"\n", position) + 1
        line = stream[position:end]
        position = end
        if line == b".\r\n" and previous.endswith(b"\r\n"):
            return b"".join(out), stream[position:]
        out.append(line[1:] if line.startswith(b".") else line)
        previous = line


async def block_reader(stream: bytes, cuts: list[int], limit: int) -> tuple[bytes, bytes]:
    """The block reader on an asyncio stream reader fed ``stream`` in pieces at ``cuts``."""
    reader = asyncio.StreamReader(limit=limit)
    got: list[bytes] = []

    async def writer() -> None:
        start = 0
        for cut in [*sorted(set(cuts)), len(stream)]:
            if cut > start:
                reader.feed_data(stream[start:cut])
                start = cut
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.create_task(writer())
    await read_dot_terminated(reader, got.append)
    await feeding
    return b"".join(got), await reader.read()


# Octets where the terminator's pieces are common, so that near-misses are frequent.
_PIECES = st.sampled_from(
    [b"\r", b"\n", b".", b"\r\n", b"\r\n.", b"..", b"x", b"ab", b"\r\n.\r", b"\n.\n", b"y" * 40]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(_PIECES, max_size=60).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
    limit=st.sampled_from([8, 64, 2048]),
)
def test_block_reader_matches_a_line_reader(body: bytes, cuts: list[int], limit: int) -> None:
    stream = body + TERMINATOR + AFTER
    expected = line_reader(stream)
    assert asyncio.run(block_reader(stream, cuts, limit)) == expected


@given(cut=st.integers(min_value=0, max_value=8))
def test_empty_message_and_terminator_alone(cut: int) -> None:
    # ".\r\n" right after DATA is the end (the DATA line's CRLF opens the terminator)
    assert asyncio.run(block_reader(b".\r\n" + AFTER, [cut], 2048)) == (b"", AFTER)
    assert asyncio.run(block_reader(b"\r\n.\r\n" + AFTER, [cut], 2048)) == (b"\r\n", AFTER)


# -- over a real connection ------------------------------------------------------------------
async def write_in_pieces(client: RawClient, data: bytes, sizes: list[int]) -> None:
    """Writes ``data`` in pieces of the given sizes (cycled), pausing so each is a read."""
    start, n = 0, 0
    while start < len(data):
        size = sizes[n % len(sizes)]
        await client.send(data[start:start + size])
        await asyncio.sleep(0.002)
        start, n = start + size, n + 1


STUFFED = (
    HEAD
    + b"..\r\n"  # a lone "." line of the message, stuffed
    + b"...two dots\r\n"
    + b"a line that ends with a full stop.\r\n"
    + b"..\r\n"
    + b"last.\r\n"
)
UNSTUFFED = HEAD + b".\r\n..two dots\r\na line that ends with a full stop.\r\n.\r\nlast.\r\n"


async def test_terminator_split_across_reads(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        for sizes in ([1], [2], [3], [5, 7], [len(STUFFED) - 2, 1, 1, 1, 1, 1]):
            code, _ = await client.command("DATA")
            assert code == 354
            await write_in_pieces(client, STUFFED + b".\r\n", sizes)
            code, text = await client.reply()
            assert code == 250, (sizes, text)
            assert policy.accepted[-1].data == UNSTUFFED, sizes
            for line in ("MAIL FROM:<x@hopital-b.mssante.test>", "RCPT TO:<bob@mssante.test>"):
                code, text = await client.command(line)
                assert code == 250, text
        assert len(policy.accepted) == 5
        await client.close()


async def test_command_pipelined_after_the_data_is_answered(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, _ = await client.command("DATA")
        assert code == 354
        await client.send(HEAD + b"body.\r\n.\r\nNOOP\r\n")
        code, text = await client.reply()
        assert code == 250, text
        code, text = await client.reply()
        assert code == 250 and "2.0.0" in text, text  # the NOOP, not taken for content
        assert policy.accepted[0].data == HEAD + b"body.\r\n"
        await client.close()


async def test_empty_message_ends_at_once(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, _ = await client.command("DATA")
        assert code == 354
        await client.send(b".\r\n")
        code, text = await client.reply()
        assert code == 250, text
        assert policy.accepted[0].data == b""
        await client.close()


async def test_bare_cr_split_across_reads_is_refused(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, _ = await client.command("DATA")
        assert code == 354
        await write_in_pieces(client, HEAD + b"line\r", [len(HEAD) + 5])
        await write_in_pieces(client, b"x\r\n.\r\n", [1])
        code, text = await client.reply()
        assert text.startswith("550 5.6.11") and "bare CR or LF" in text
        assert policy.accepted == []
        code, text = await client.command("NOOP")
        assert code == 250, text
        await client.close()


async def test_bare_lf_before_a_dot_never_ends_and_is_refused(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, _ = await client.command("DATA")
        assert code == 354
        await write_in_pieces(client, HEAD + b"first\n.\r\nstill data\r\n.\r\n", [3])
        code, text = await client.reply()
        assert text.startswith("550 5.6.11"), text
        code, text = await client.command("NOOP")
        assert code == 250, "the data ended early: " + text
        assert policy.accepted == []
        await client.close()


async def test_long_line_split_across_reads_is_refused(smtp_server, protocol_pki):
    async with smtp_server("relay", max_line_length=1000) as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        for length, expected in ((1000, 250), (1001, 550)):
            code, _ = await client.command("DATA")
            assert code == 354
            await write_in_pieces(client, HEAD + b"a" * length + b"\r\nok\r\n.\r\n",
                                  [len(HEAD) + 999, 1, 1, 1, 64])
            code, text = await client.reply()
            assert code == expected, text
            if code == 550:
                assert text.startswith("550 5.6.0") and "longer than 1000" in text
            for line in ("MAIL FROM:<x@hopital-b.mssante.test>", "RCPT TO:<bob@mssante.test>"):
                await client.command(line)
        assert [a.data.count(b"a" * 1000) for a in policy.accepted] == [1]
        await client.close()


async def test_message_over_the_size_limit_is_552_and_nothing_kept(smtp_server, protocol_pki):
    async with smtp_server("relay", max_message_size=200_000) as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, _ = await client.command("DATA")
        assert code == 354
        await client.send(HEAD + (b"z" * 998 + b"\r\n") * 400 + b".\r\n")  # ~400 KB
        code, text = await client.reply()
        assert text.startswith("552 5.3.4 Message size exceeds fixed maximum message size")
        assert policy.accepted == []
        code, text = await client.command("NOOP")  # read to the end: still in step
        assert code == 250, text
        await client.close()


async def test_client_closing_mid_data_stores_nothing_and_releases(smtp_server, protocol_pki):
    async with smtp_server("relay") as (server, policy):
        client = await open_transaction(server.port, protocol_pki)
        code, _ = await client.command("DATA")
        assert code == 354
        await client.send(HEAD + b"x" * 70 + b"\r\n" * 3000 + b"\r\n.")  # no end
        await asyncio.sleep(0.05)
        sessions = list(server.sessions)
        assert len(sessions) == 1
        client.writer.transport.abort()
        await asyncio.wait_for(sessions[0].done, 5)
        assert server.sessions == set() and server.connection_counts() == {}
        assert policy.accepted == []
