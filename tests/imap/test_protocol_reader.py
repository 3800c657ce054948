"""CommandReader over a real loopback TCP connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from imap.protocol import (
    CommandReader,
    CommandTooLarge,
    ConnectionClosed,
    LiteralLimits,
    LiteralRefused,
    ParseError,
    SpooledLiteral,
    commands,
    continuation,
    parse_command,
)


@dataclass
class Link:
    """Server-side reader and the client's streams of one loopback connection."""

    reader: CommandReader
    client_r: asyncio.StreamReader
    client_w: asyncio.StreamWriter
    continuations: list[int] = field(default_factory=list)


@pytest.fixture
async def link_factory() -> AsyncIterator:  # type: ignore[type-arg]
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def make(**limits: int | bool) -> Link:
        accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.set_result((r, w))

        server = await asyncio.start_server(on_client, "127.0.0.1", 0, limit=1 << 20)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        client_r, client_w = await asyncio.open_connection("127.0.0.1", port)
        server_r, server_w = await accepted
        writers.extend([client_w, server_w])
        link: Link

        async def send_continuation() -> None:
            link.continuations.append(len(link.continuations))
            server_w.write(continuation())
            await server_w.drain()

        link = Link(CommandReader(server_r, send_continuation, **limits), client_r, client_w)  # type: ignore[arg-type]
        return link

    yield make
    for w in writers:
        w.close()
    for s in servers:
        s.close()
        await s.wait_closed()


async def test_plain_command_and_eof(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory()
    link.client_w.write(b"a1 NOOP\r\na2 CAPABILITY\n")
    assert await link.reader.read_command() == b"a1 NOOP"
    assert await link.reader.read_command() == b"a2 CAPABILITY"  # a lone LF is tolerated
    link.client_w.close()
    assert await link.reader.read_command() is None


async def test_synchronising_literal_waits_for_continuation(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory()
    link.client_w.write(b"a LOGIN {5}\r\n")
    task = asyncio.create_task(link.reader.read_command())
    # The client only sends the literal after the server's "+" (RFC 9051 §7.5).
    line = await asyncio.wait_for(link.client_r.readline(), 5)
    assert line == b"+ Ready for literal data\r\n"
    assert not task.done()
    link.client_w.write(b"smith {3}\r\n")
    assert await asyncio.wait_for(link.client_r.readline(), 5) == b"+ Ready for literal data\r\n"
    link.client_w.write(b"p w\r\n")
    raw = await asyncio.wait_for(task, 5)
    assert raw == b"a LOGIN {5}\r\nsmith {3}\r\np w"
    cmd = parse_command(raw)
    assert (cmd.username, cmd.password) == ("smith", "p w")  # type: ignore[attr-defined]


async def test_non_synchronising_literal_and_literal8(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory()
    body = b"Subject: x\r\n\r\n" + b"y" * 200_000
    link.client_w.write(
        b"a APPEND INBOX {%d+}\r\n" % len(body) + body + b" ~{3+}\r\n\x00\x01\x02\r\n"
    )
    raw = await asyncio.wait_for(link.reader.read_command(), 5)
    assert link.continuations == []
    cmd = parse_command(raw)
    assert [m.data for m in cmd.messages] == [body, b"\x00\x01\x02"]  # type: ignore[attr-defined]


async def test_literal_across_many_segments(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory()
    body = bytes(range(1, 256)) * 4000
    task = asyncio.create_task(link.reader.read_command())
    link.client_w.write(b"a APPEND x {%d}\r\n" % len(body))
    await asyncio.wait_for(link.client_r.readline(), 5)
    for i in range(0, len(body), 7001):
        link.client_w.write(body[i : i + 7001])
        await link.client_w.drain()
    link.client_w.write(b"\r\n")
    raw = await asyncio.wait_for(task, 5)
    assert parse_command(raw).messages[0].data == body  # type: ignore[attr-defined]


async def test_line_too_long_is_fatal(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(max_line=1024)
    link.client_w.write(b"a LOGIN " + b"x" * 2000 + b"\r\n")
    with pytest.raises(CommandTooLarge) as info:
        await link.reader.read_command()
    assert info.value.response().startswith(b"* BYE [TOOBIG] Line too long")


async def test_line_beyond_stream_buffer_is_fatal(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(max_line=4 << 20)
    link.client_w.write(b"a " + b"x" * (2 << 20))  # no CRLF, more than the stream limit
    with pytest.raises(CommandTooLarge):
        await asyncio.wait_for(link.reader.read_command(), 5)


async def test_sync_literal_too_large_refused_without_reading(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(max_literal=1000)
    link.client_w.write(b"t1 APPEND INBOX {5000}\r\nt2 NOOP\r\n")
    with pytest.raises(LiteralRefused) as info:
        await link.reader.read_command()
    assert info.value.response() == (
        b"t1 NO [TOOBIG] Literal of 5000 octets exceeds the limit of 1000 octets\r\n"
    )
    assert link.continuations == []
    # The client got no "+", abandoned the command: the connection stays usable.
    assert await link.reader.read_command() == b"t2 NOOP"


async def test_literal_minus_limit_drains_and_refuses(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(literal_minus=True)
    link.client_w.write(
        b"t1 APPEND INBOX {5000+}\r\n" + b"z" * 5000 + b" {2+}\r\nab\r\n"
        b"t2 LOGIN {4+}\r\nuser pass\r\n"
    )
    with pytest.raises(LiteralRefused) as info:
        await link.reader.read_command()
    assert info.value.status == "BAD" and info.value.tag == "t1"
    assert info.value.response().startswith(b"t1 BAD [TOOBIG] Non-synchronizing literal")
    assert await link.reader.read_command() == b"t2 LOGIN {4+}\r\nuser pass"


async def test_literal_plus_allows_large_non_sync(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(literal_minus=False)
    link.client_w.write(b"t1 APPEND INBOX {5000+}\r\n" + b"z" * 5000 + b"\r\n")
    raw = await link.reader.read_command()
    assert raw is not None and raw.endswith(b"z" * 5000)


async def test_non_sync_literal_over_hard_limit_is_fatal(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(max_literal=1024)
    link.client_w.write(b"t1 APPEND INBOX {5000+}\r\n")
    with pytest.raises(CommandTooLarge):
        await link.reader.read_command()


async def test_total_command_size_is_fatal(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(max_command=3000, max_literal=2000)
    link.client_w.write(
        b"t LOGIN {1500+}\r\n" + b"a" * 1500 + b" {1500+}\r\n" + b"b" * 1500 + b"\r\n"
    )
    with pytest.raises(CommandTooLarge) as info:
        await link.reader.read_command()
    assert "3000" in info.value.reason


async def test_eof_inside_literal(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory()
    link.client_w.write(b"t LOGIN {10+}\r\nabc")
    link.client_w.close()
    with pytest.raises(ConnectionClosed):
        await link.reader.read_command()


async def test_read_line_for_idle_done(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory()
    link.client_w.write(b"a IDLE\r\nDONE\r\n")
    assert parse_command(await link.reader.read_command()).name == "IDLE"  # type: ignore[arg-type]
    assert await link.reader.read_line() == b"DONE"


# -- APPEND literals: own limits, large ones spooled ------------------------------------
SPOOL_MARKER = b"Jean DUPONT ne le 01/02/1960 "


async def test_reader_spools_large_append_literal(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(max_literal=1000)
    link.reader.append_limits = LiteralLimits(1 << 20, 2 << 20, spool_threshold=4096)
    message = SPOOL_MARKER * 3000
    link.client_w.write(b"t1 APPEND INBOX (\\Seen) {%d+}\r\n" % len(message) + message
                        + b" {5+}\r\nsmall\r\n")
    raw = await link.reader.read_command()
    assert raw is not None and SPOOL_MARKER not in raw
    assert [len(s) for s in link.reader.spooled.values()] == [len(message)]
    cmd = parse_command(raw, spooled=link.reader.spooled)
    assert isinstance(cmd, commands.Append)
    first, second = cmd.messages
    assert isinstance(first.data, SpooledLiteral) and first.data.read() == message
    assert first.flags == ("\\Seen",) and second.data == b"small"
    link.reader.release_spools()
    assert link.reader.spooled == {}


async def test_spooled_literal_is_refused_outside_append(link_factory) -> None:  # type: ignore[no-untyped-def]
    # A command whose literal was spooled (forged offsets) cannot use it as a string.
    link = await link_factory(max_literal=1000)
    link.reader.append_limits = LiteralLimits(1 << 20, 2 << 20, spool_threshold=4096)
    link.client_w.write(b"t1 APPEND {6000+}\r\n" + b"x" * 6000 + b" {3+}\r\nabc\r\n")
    raw = await link.reader.read_command()
    assert raw is not None
    with pytest.raises(ParseError, match="too large here"):
        parse_command(raw, spooled=link.reader.spooled)
    link.reader.release_spools()


async def test_other_commands_keep_their_own_limit(link_factory) -> None:  # type: ignore[no-untyped-def]
    link = await link_factory(max_literal=1000)
    link.reader.append_limits = LiteralLimits(1 << 20, 2 << 20, spool_threshold=4096)
    link.client_w.write(b"t1 SEARCH TEXT {5000}\r\nt2 NOOP\r\n")
    with pytest.raises(LiteralRefused):
        await link.reader.read_command()
    assert link.continuations == []
    assert await link.reader.read_command() == b"t2 NOOP"
