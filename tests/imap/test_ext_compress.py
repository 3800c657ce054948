"""RFC 4978 COMPRESS=DEFLATE against the real server, with imaplib over a socket this
test compresses itself (:mod:`tests.imap.deflate_client`, the client side of the RFC)."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import tracemalloc
import zlib
from typing import Any

from tests.fixtures.imap import ALICE, ImapEnv, message
from tests.imap.deflate_client import DeflateIMAP4, DeflateIMAP4_SSL
from tests.imap.rfc_wire import Wire


def _caps(w: Wire) -> list[bytes]:
    _, lines = w.cmd("CAPABILITY")
    return lines[0].split()[2:]


async def test_compress_deflate_both_directions(
        imap_env: ImapEnv, imap_grammar: dict[Any, bytearray]) -> None:
    """RFC 4978 §3: after the tagged OK of ``COMPRESS DEFLATE`` both sides speak raw
    deflate; commands and answers are the same as in clear. The answers after the OK are
    decoded for the grammar checker (they are in its record of this connection)."""
    for n in range(1, 6):
        await imap_env.deliver(message(n), flags=("\\Seen",) if n % 2 else ())

    def run() -> None:
        w = Wire(imap_env, client=DeflateIMAP4_SSL)
        imap: DeflateIMAP4_SSL = w.imap  # type: ignore[assignment]
        assert b"COMPRESS=DEFLATE" in _caps(w)
        status, line = imap.compress()
        assert status == "OK", line
        status, lines = w.cmd("SELECT INBOX")
        assert status == "OK" and b"* 5 EXISTS" in lines, lines
        received = imap.wire.received
        status, lines = w.cmd("UID FETCH 1:* (FLAGS BODY.PEEK[])")
        assert status == "OK"
        assert len(lines) == 5 and b"\\Seen" in lines[0] and b"\\Seen" not in lines[1], lines
        assert message(3) in lines[2], lines[2]
        # The same answer in fewer octets than it has in clear.
        assert imap.wire.received - received < sum(len(x) for x in lines) // 2
        # RFC 4978 §3: a second COMPRESS is refused, compression stays on.
        status, lines = w.cmd("COMPRESS DEFLATE")
        assert status == "NO" and w.last_tagged.split()[2] == b"[COMPRESSIONACTIVE]", \
            w.last_tagged
        status, _ = w.cmd("NOOP")
        assert status == "OK"
        w.close()
        seen = bytes(imap_grammar[imap])
        assert b"[COMPRESSIONACTIVE]" in seen and b"BODY[] {" in seen

    await asyncio.to_thread(run)


async def test_compress_before_authentication_is_refused(imap_env: ImapEnv) -> None:
    """RFC 4978 §5: ``command-auth =/ compress``: before login COMPRESS is not a valid
    command (BAD), the capability is not announced, and the session goes on in clear."""

    def run() -> None:
        imap = DeflateIMAP4_SSL("127.0.0.1", imap_env.tls_port,
                                ssl_context=imap_env.client_ssl(), timeout=15)
        assert "COMPRESS=DEFLATE" not in imap.capabilities
        status, line = imap.compress()
        assert status == "BAD" and b"Log in first" in line, line
        imap.login(ALICE, imap_env.alice_password)
        assert imap.select("INBOX")[0] == "OK"
        imap.logout()

    await asyncio.to_thread(run)


async def test_compress_unknown_mechanism_is_bad(imap_env: ImapEnv) -> None:
    """RFC 4978 §5: ``algorithm = "DEFLATE"``; any other name is a syntax error (BAD) and
    compression does not start (§3: after BAD or NO the server must not compress)."""

    def run() -> None:
        w = Wire(imap_env)
        status, _ = w.cmd("COMPRESS LZ4")
        assert status == "BAD" and b"DEFLATE" in w.last_tagged, w.last_tagged
        status, _ = w.cmd("NOOP")
        assert status == "OK"
        w.close()

    await asyncio.to_thread(run)


async def test_compress_after_starttls(imap_env: ImapEnv) -> None:
    """RFC 4978 §6: COMPRESS runs inside TLS; here TLS from STARTTLS (RFC 9051 §6.2.1) on
    the clear port, then LOGIN, then COMPRESS, then a FETCH answered compressed."""
    await imap_env.deliver(message(1, body="x" * 2000 + "\r\n"))

    def run() -> None:
        imap = DeflateIMAP4("127.0.0.1", imap_env.port, timeout=15)
        imap.starttls(ssl_context=imap_env.client_ssl())
        imap.login(ALICE, imap_env.alice_password)
        assert "COMPRESS=DEFLATE" in imap.capability()[1][0].decode().split()
        status, line = imap.compress()
        assert status == "OK", line
        before = imap.wire.received
        imap.select("INBOX")
        typ, data = imap.fetch("1", "(BODY.PEEK[TEXT])")
        assert typ == "OK" and data[0][1] == b"x" * 2000 + b"\r\n"  # type: ignore[index]
        assert imap.wire.received - before < 1000
        imap.logout()

    await asyncio.to_thread(run)


async def test_compress_garbage_closes_the_connection(imap_env: ImapEnv) -> None:
    """Input that is not a deflate stream after COMPRESS cannot be read as commands: the
    server closes the connection (RFC 4978 §3 leaves no way back to clear text)."""

    def run() -> None:
        w = Wire(imap_env, client=DeflateIMAP4_SSL)
        imap: DeflateIMAP4_SSL = w.imap  # type: ignore[assignment]
        assert imap.compress()[0] == "OK"
        imap.send_raw(b"a NOOP\r\n" * 3 + b"\xff" * 64)  # clear text: not raw deflate
        imap.sock.settimeout(10)
        assert imap.file.read(1) == b""
        imap.shutdown()

    await asyncio.to_thread(run)


async def test_compress_bomb_is_inflated_in_bounded_memory(imap_env: ImapEnv) -> None:
    """A decompression bomb (a 200 MB command line, ~200 KB compressed) costs the server
    what the same line in clear would: it inflates at most 64 KiB a step and stops once
    its reader holds the longest line allowed, then answers ``BYE [TOOBIG]`` (RFC 7888 §4
    limits, as in clear) and closes. Peak memory of the whole process stays far below
    what inflating one network read at once would take."""
    ctx: ssl.SSLContext = imap_env.client_ssl()

    def run() -> bytes:
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imap_env.tls_port),
                                                        timeout=20),
                               server_hostname="127.0.0.1")
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"a LOGIN %s %s\r\n" % (ALICE.encode(), imap_env.alice_password.encode()))
        while not f.readline().startswith(b"a "):
            pass
        sock.sendall(b"c COMPRESS DEFLATE\r\n")
        assert f.readline().startswith(b"c OK")
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        chunk = b"x NOOP " + b"A" * (1 << 20)
        bomb = z.compress(chunk) + b"".join(z.compress(b"A" * (1 << 20)) for _ in range(200))
        bomb += z.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < 400_000
        try:
            sock.sendall(bomb)
        except OSError:
            pass  # the server may close before it has read everything
        inflate = zlib.decompressobj(-15)
        out = b""
        try:
            while data := f.read1(65536):
                out += inflate.decompress(data)
        except OSError:
            pass
        sock.close()
        return out

    tracemalloc.start()
    try:
        answer = await asyncio.to_thread(run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert re.match(rb"\* BYE \[TOOBIG\]", answer), answer
    assert peak < 32 * 1024 * 1024, peak


async def test_compressed_session_survives_large_literals_and_idle(imap_env: ImapEnv) -> None:
    """APPEND of a literal larger than one inflate step (the reader pauses and resumes the
    layer, RFC 4978 with RFC 7888 literals) and an IDLE push, both under compression."""
    big = message(1, body=("ligne de compte rendu " * 40 + "\r\n") * 400)
    assert len(big) > 300_000

    loop = asyncio.get_running_loop()

    def run() -> None:
        w = Wire(imap_env, client=DeflateIMAP4_SSL)
        imap: DeflateIMAP4_SSL = w.imap  # type: ignore[assignment]
        assert imap.compress()[0] == "OK"
        status, tagged = w.append("INBOX", big)
        assert status == "OK", tagged
        w.cmd("SELECT INBOX")
        status, lines = w.cmd("FETCH 1 (BODY.PEEK[])")
        assert status == "OK" and big in lines[0]
        # RFC 2177: the push of a new message reaches the client through the compressor.
        imap.send(b"i IDLE\r\n")
        assert w.response().startswith(b"+ ")
        asyncio.run_coroutine_threadsafe(imap_env.deliver(message(2)), loop).result(15)
        assert w.response() == b"* 2 EXISTS\r\n"
        imap.send(b"DONE\r\n")
        while not w.response().startswith(b"i OK"):
            pass
        w.close()

    await asyncio.to_thread(run)
