"""Memory of a real ``mssante serve`` under hostile unauthenticated SMTP submission clients.

Each client (20 at once, the per-address limit, three rounds) says EHLO on the plaintext
submission port, then sends a 1 MiB command line, announces a 2 GB BDAT chunk before
STARTTLS and sends 1 MiB of it. None of it may stay in memory: the resident size of the
gateway must grow by less than 50 MiB and not keep growing from one round to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess
from tests.security.test_preauth_imap_rss import settled_rss

CONNECTIONS = 20
ROUNDS = 3
FILLER = b"y" * (1024 * 1024)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "serve")
    proc.start(timeout=60)
    try:
        yield proc
    finally:
        proc.kill()


async def _hostile(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()
        writer.write(b"EHLO attacker.test\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        writer.write(b"NOOP " + FILLER + b"\r\n")
        writer.write(b"BDAT 2000000000 LAST\r\n")
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            writer.write(FILLER)
            await writer.drain()
        replies = b""
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(20):
                while chunk := await reader.read(4096):
                    replies += chunk
        return replies
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_hostile_preauth_smtp_clients_do_not_hold_memory(serve: ServeProcess) -> None:
    assert serve.process is not None
    pid = serve.process.pid
    port = serve.ports["MSSANTE_SMTP_SUBMISSION_PORT"]
    before = await asyncio.to_thread(settled_rss, pid)
    afters = []
    for n in range(1, ROUNDS + 1):
        replies = await asyncio.gather(*(_hostile(port) for _ in range(CONNECTIONS)))
        after = await asyncio.to_thread(settled_rss, pid, 2.0)
        afters.append(after)
        print(f"\nSMTP pre-auth RSS, round {n}, {CONNECTIONS} hostile connections: before "
              f"{before:.1f} MiB, after {after:.1f} MiB (+{after - before:.1f})")
        for reply in replies:
            assert b"500 5.5.2" in reply  # the 1 MiB line
            assert b"530 5.7.0" in reply and b"421 4.7.0" in reply, reply[-300:]
    assert max(afters) - before < 50.0
    assert afters[-1] - afters[0] < 8.0
