"""``mssante keys rotate`` while a gateway serves: bodies stay readable during and after the
rotation, every body ends under the new master key, and the running gateway seals new
bodies with it without a restart."""

from __future__ import annotations

import asyncio
import imaplib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select

from storage.schema import blobs
from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway

COUNT = 40


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with running_gateway(gateway_settings(tmp_path / "gw")) as running:
        yield running


def mssante(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mssante"))
    return subprocess.run([exe, "--data-dir", str(data_dir), *args], capture_output=True,
                          text=True, timeout=120)


async def submit(gw: RunningGateway, n: int) -> None:
    raw = (f"From: {gw.demo_address}\r\nTo: {gw.demo_address}\r\nSubject: rotation {n}\r\n"
           f"Message-ID: <rotation-{n}@mssante.test>\r\n\r\nbody number {n}\r\n")
    await aiosmtplib.send(raw, sender=gw.demo_address, recipients=[gw.demo_address],
                          hostname="127.0.0.1", port=gw.submission_port, start_tls=True,
                          tls_context=gw.client_context(), username=gw.demo_address,
                          password=gw.demo_password)


async def key_ids(gw: RunningGateway) -> dict[str, str]:
    assert gw.gw.db is not None
    async with gw.gw.db.read() as conn:
        return {r.content_sha256: r.key_id
                for r in await conn.execute(select(blobs.c.content_sha256, blobs.c.key_id))}


def read_all_bodies(gw: RunningGateway, port: int) -> int:
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=gw.client_context())
    try:
        client.login(gw.demo_address, gw.demo_password)
        client.select("INBOX", readonly=True)
        status, data = client.fetch("1:*", "(BODY.PEEK[])")
        assert status == "OK", data
        bodies = [part[1] for part in data if isinstance(part, tuple)]
        assert all(b"body number" in body for body in bodies)
        return len(bodies)
    finally:
        client.logout()


async def test_rotation_without_downtime(gw: RunningGateway) -> None:
    for n in range(COUNT):
        await submit(gw, n)
    before = await key_ids(gw)
    assert len(set(before.values())) == 1
    [old_key] = set(before.values())
    imap = next(s for s in gw.gw.services if s.name == "IMAP")
    port = imap.server.tls_port  # type: ignore[attr-defined]
    data_dir = gw.settings.data_dir

    rotation = asyncio.create_task(asyncio.to_thread(mssante, data_dir, "keys", "rotate"))
    reads = 0
    while not rotation.done():  # every body readable at every moment of the rotation
        assert await asyncio.to_thread(read_all_bodies, gw, port) == COUNT
        reads += 1
    result = await rotation
    assert result.returncode == 0, result.stderr
    assert f"{COUNT} bodies rewrapped" in result.stdout
    assert "back up the key file" in result.stderr

    after = await key_ids(gw)
    new_keys = set(after.values())
    assert len(new_keys) == 1 and old_key not in new_keys
    [new_key] = new_keys
    # the running gateway reads the rewrapped bodies (it learns the new key from the file)
    assert await asyncio.to_thread(read_all_bodies, gw, port) == COUNT
    # and seals what arrives now with the new key, without a restart
    await asyncio.sleep(1.1)
    await submit(gw, COUNT)
    latest = await key_ids(gw)
    assert set(latest.values()) == {new_key}
    assert await asyncio.to_thread(read_all_bodies, gw, port) == COUNT + 1

    listing = mssante(data_dir, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    assert f"{new_key} (active): {COUNT + 1} bodies" in listing.stdout
    assert f"{old_key}: 0 bodies" in listing.stdout
