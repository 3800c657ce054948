"""Memory of a real ``mssante serve`` under 200 hostile unauthenticated IMAP connections.

Each connection announces a 60 MB literal in ``LOGIN`` on the plaintext port: half with a
synchronising literal (the attacker sends 512 KiB of it only if invited with ``+``), half
with a non-synchronising one followed at once by 512 KiB. Before the fix the gateway invited
and buffered every one of them (the issue measured 64 MiB per connection). The resident set
size of the gateway process, read from ``/proc/PID/status``, must grow by less than 50 MiB
while the connections are open and come back once they are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess

CONNECTIONS = 200
SENT_PER_CONNECTION = 512 * 1024
MAX_GROWTH_MIB = 50.0
MAX_LEFT_AFTER_MIB = 16.0
MAX_LEFT_PER_ROUND_MIB = 4.0


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def settled_rss(pid: int, seconds: float = 2.0) -> float:
    """RSS once it stops moving (the loop may still be releasing buffers)."""
    deadline = time.monotonic() + seconds
    value = rss_mib(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        value = rss_mib(pid)
    return value


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "serve")
    proc.start(timeout=60)
    try:
        yield proc
    finally:
        proc.kill()


async def _hostile(port: int, non_sync: bool, replies: list[bytes]) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # greeting
    filler = b"x" * SENT_PER_CONNECTION
    if non_sync:
        writer.write(b"a LOGIN {60000000+}\r\n" + filler)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        try:  # a vulnerable server says nothing: it waits for the rest of the 60 MB
            reply = await asyncio.wait_for(reader.readline(), 10)
        except TimeoutError:
            reply = b"(no reply, literal being buffered)"
    else:
        writer.write(b"a LOGIN {60000000}\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), 20)
        if reply.startswith(b"+"):
            writer.write(filler)
            await writer.drain()
    replies.append(reply)
    return writer


async def _attack_round(port: int, pid: int) -> tuple[float, float, list[bytes]]:
    """Opens the hostile connections, measures, closes them, measures: (during, after)."""
    replies: list[bytes] = []
    writers = await asyncio.gather(
        *(_hostile(port, i % 2 == 1, replies) for i in range(CONNECTIONS))
    )
    during = await asyncio.to_thread(settled_rss, pid, 3.0)
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    after = await asyncio.to_thread(settled_rss, pid, 3.0)
    return during, after, replies


async def test_hostile_preauth_literals_do_not_hold_memory(serve: ServeProcess) -> None:
    assert serve.process is not None
    pid = serve.process.pid
    port = serve.ports["MSSANTE_IMAP_PORT"]
    before = await asyncio.to_thread(settled_rss, pid)
    during, after, replies = await _attack_round(port, pid)
    # A second round: what the first one left must be one-time (code paths warmed up,
    # allocator arenas), not kept per connection.
    during2, after2, replies2 = await _attack_round(port, pid)
    for n, (d, a) in enumerate(((during, after), (during2, after2)), 1):
        print(f"\nIMAP pre-auth RSS, round {n}, {CONNECTIONS} hostile connections: before "
              f"{before:.1f} MiB, during {d:.1f} MiB (+{d - before:.1f}), after {a:.1f} MiB "
              f"(+{a - before:.1f})")
    for got in (replies, replies2):
        invited = sum(r.startswith(b"+") for r in got)
        assert invited == 0, f"{invited} unauthenticated connections were invited to send 60 MB"
        closed = sum(r.startswith(b"* BYE [TOOBIG]") for r in got)
        assert closed == CONNECTIONS // 2, f"only {closed} non-synchronising literals refused"
    assert max(during, during2) - before < MAX_GROWTH_MIB
    assert after - before < MAX_LEFT_AFTER_MIB
    assert after2 - after < MAX_LEFT_PER_ROUND_MIB
