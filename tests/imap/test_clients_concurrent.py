"""Two sessions on one mailbox (aioimaplib): IDLE push, expunge and flags seen by the other;
curl over imaps://; a client quirk switch."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import aioimaplib
import pytest

from tests.fixtures.imap import ALICE, ImapEnv, message, start_imap_env
from tests.fixtures.pki import DevPkiBundle


async def _session(env: ImapEnv) -> aioimaplib.IMAP4_SSL:
    client = aioimaplib.IMAP4_SSL("127.0.0.1", env.tls_port, ssl_context=env.client_ssl(),
                                  timeout=10)
    await client.wait_hello_from_server()
    resp = await client.login(ALICE, env.alice_password)
    assert resp.result == "OK"
    return client


async def test_idle_push_and_concurrent_changes(imap_env: ImapEnv) -> None:
    for n in range(3):
        await imap_env.deliver(message(n))
    watcher = await _session(imap_env)
    actor = await _session(imap_env)
    assert (await watcher.select("INBOX")).result == "OK"
    assert (await actor.select("INBOX")).result == "OK"

    idle = await watcher.idle_start(timeout=10)
    started = time.monotonic()
    await imap_env.deliver(message(10))
    pushed = await asyncio.wait_for(watcher.wait_server_push(), 2)
    assert time.monotonic() - started < 1.0
    assert any(b"4 EXISTS" in (p if isinstance(p, bytes) else p.encode()) for p in pushed)

    assert (await actor.store("2", "+FLAGS", "(\\Deleted)")).result == "OK"
    assert (await actor.expunge()).result == "OK"
    pushed = await asyncio.wait_for(watcher.wait_server_push(), 2)
    text = b" ".join(p if isinstance(p, bytes) else p.encode() for p in pushed)
    assert b"2 EXPUNGE" in text or b"FETCH" in text
    watcher.idle_done()
    await asyncio.wait_for(idle, 5)

    assert (await actor.store("1", "+FLAGS", "(\\Flagged)")).result == "OK"
    resp = await watcher.noop()
    text = b" ".join(line if isinstance(line, bytes) else line.encode() for line in resp.lines)
    assert b"\\Flagged" in text
    resp = await watcher.search("ALL")
    assert resp.lines[0] in (b"1 2 3", "1 2 3")
    await watcher.logout()
    await actor.logout()


async def test_curl_reads_over_imaps(imap_env: ImapEnv) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is required (Debian package curl)")
    await imap_env.deliver(message(1))
    url = f"imaps://127.0.0.1:{imap_env.tls_port}/INBOX;UID=1"
    proc = await asyncio.create_subprocess_exec(
        curl, "-sS", "--cacert", str(imap_env.ca_file), url, "-u",
        f"{ALICE}:{imap_env.alice_password}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"Subject: Compte rendu 1" in out and b"voici le document 1" in out


async def test_workaround_trailing_separator(tmp_path: Path, dev_pki: DevPkiBundle) -> None:
    for enabled in (False, True):
        overrides = {"imap": {"client_workarounds": ["tb-extra-mailbox-sep"]}} if enabled else {}
        env = await start_imap_env(tmp_path / f"d{enabled}", dev_pki, overrides)
        try:
            client = await _session(env)
            resp = await client.select("Archive/")
            assert resp.result == ("OK" if enabled else "NO")
            await client.logout()
        finally:
            await env.gateway.stop(grace=0)
