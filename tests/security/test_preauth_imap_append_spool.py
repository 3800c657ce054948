"""APPEND literals after login are spooled, encrypted, while they arrive, not held in memory.

Twenty logged-in connections each start an APPEND of a 24 MiB message and send 8 MiB of it,
then stall (a slow or hostile client). Before the fix the gateway held each partial literal in
its stream buffer (160 MiB). Now each literal goes, as it arrives, to an anonymous spool file
sealed with AES-GCM under a key that lives only in memory: the resident size of the process
barely moves, and a marker string sent in the message is found in none of the files the
process has open. A complete APPEND still stores the message byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import ServeProcess
from tests.security.test_preauth_imap_rss import settled_rss

CONNECTIONS = 20
ANNOUNCED = 24 * 1024 * 1024
SENT = 8 * 1024 * 1024
MAX_GROWTH_MIB = 50.0
MARKER = b"PATIENT-MARKER-7f3a9c DUPONT Jean "


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "serve")
    proc.start(timeout=60)
    try:
        yield proc
    finally:
        proc.kill()


def _tls(serve: ServeProcess) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(serve.ca_file))
    ctx.check_hostname = False
    return ctx


async def _stalled_append(serve: ServeProcess) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", serve.ports["MSSANTE_IMAP_TLS_PORT"], ssl=_tls(serve))
    await reader.readline()
    writer.write(b"a LOGIN %s %s\r\n" % (serve.demo_address.encode(),
                                        serve.demo_password.encode()))
    while not (line := await reader.readline()).startswith(b"a "):
        assert line, "connection closed during LOGIN"
    assert line.startswith(b"a OK"), line
    writer.write(b"b APPEND INBOX {%d}\r\n" % ANNOUNCED)
    assert (await reader.readline()).startswith(b"+ ")
    head = b"From: demo@mssante.test\r\nSubject: " + MARKER + b"\r\n\r\n"
    line = MARKER + b"x" * (76 - len(MARKER)) + b"\r\n"
    body = head + line * ((SENT - len(head)) // len(line))
    writer.write(body)
    await writer.drain()
    return writer


def _open_files_containing(pid: int, marker: bytes) -> tuple[list[str], list[str]]:
    """(unlinked files the process has open, files of any kind holding ``marker``)."""
    files: list[str] = []
    hits: list[str] = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if not Path(fd).is_file() or target.startswith(("socket:", "pipe:", "anon_inode:")):
                continue
            if target.endswith(" (deleted)"):  # unlinked: a spool file
                files.append(target)
            with open(fd, "rb") as f:
                while chunk := f.read(1 << 20):
                    if marker in chunk:
                        hits.append(target)
                        break
    return files, hits


async def test_stalled_appends_are_spooled_encrypted(serve: ServeProcess) -> None:
    assert serve.process is not None
    pid = serve.process.pid
    before = await asyncio.to_thread(settled_rss, pid)
    files_before, _ = await asyncio.to_thread(_open_files_containing, pid, MARKER)
    writers = await asyncio.gather(*(_stalled_append(serve) for _ in range(CONNECTIONS)))
    during = await asyncio.to_thread(settled_rss, pid, 3.0)
    files, hits = await asyncio.to_thread(_open_files_containing, pid, MARKER)
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    after = await asyncio.to_thread(settled_rss, pid, 3.0)
    files_after, _ = await asyncio.to_thread(_open_files_containing, pid, MARKER)
    print(f"\nIMAP stalled APPENDs ({CONNECTIONS} x {SENT >> 20} MiB sent of {ANNOUNCED >> 20} "
          f"MiB): RSS before {before:.1f} MiB, during {during:.1f} (+{during - before:.1f}), "
          f"after {after:.1f} (+{after - before:.1f}); spool files open {len(files)}")
    assert hits == [], f"plaintext of a message found on disk in {hits}"
    assert during - before < MAX_GROWTH_MIB
    spools = [f for f in files if f not in files_before]
    assert len(spools) >= CONNECTIONS  # the literals went to the (encrypted) spool
    assert all(f.startswith(str(serve.data_dir / "spool") + "/") for f in spools), spools
    assert not set(files_after) - set(files_before)  # gone with the connections


async def test_spooled_append_is_stored_byte_for_byte(serve: ServeProcess) -> None:
    message = (b"From: demo@mssante.test\r\nSubject: spooled\r\n\r\n"
               + b"".join(b"%07d " % i + MARKER + b"\r\n" for i in range(40000)))

    def run() -> bytes:
        imap = imaplib.IMAP4_SSL("127.0.0.1", serve.ports["MSSANTE_IMAP_TLS_PORT"],
                                 ssl_context=_tls(serve), timeout=30)
        imap.login(serve.demo_address, serve.demo_password)
        typ, data = imap.append("INBOX", None, None, message)
        assert typ == "OK", data
        imap.select("INBOX")
        typ, data = imap.uid("FETCH", data[0].split(b" ")[2].rstrip(b"]"), "(BODY.PEEK[])")
        assert typ == "OK", data
        imap.logout()
        return data[0][1]  # type: ignore[index,return-value]
    assert len(message) > 1024 * 1024
    assert await asyncio.to_thread(run) == message
