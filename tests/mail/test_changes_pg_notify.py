"""Cross-node change notification: two gateways on one PostgreSQL database see each other's
changes (docs/architecture.md §4, LISTEN/NOTIFY); SQLite stays in-process."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from accounts.authenticator import Authenticator
from config import load_settings
from gateway.runtime import Gateway
from gateway.startup import open_storage, prepare_tls
from mail.changes import ChangeHub
from mail.pipeline import Delivery, LocalTarget, Pipeline
from storage.accounts import get_by_address
from storage.notify import _chunks, parse_payload
from tests.fixtures.imap import ALICE, ImapEnv, message, start_imap_env
from tests.fixtures.pki import ALL_PORTS_EPHEMERAL, DevPkiBundle
from tests.fixtures.postgres import PgCluster
from trustspace.refresh import TrustSpaceManager, ensure_default_whitelist


async def _second_node(data_dir: Path, dev_pki: DevPkiBundle, url: str,
                       key_file: Path) -> Gateway:
    """Another gateway process's core on the same database (no accounts created), with
    the first node's key file as every node of one database needs (README, "Several
    nodes")."""
    shutil.copytree(dev_pki.settings.pki_dir, data_dir / "pki", dirs_exist_ok=True)
    shutil.copy2(key_file, data_dir / "master.key")
    overrides = {k: dict(v) for k, v in ALL_PORTS_EPHEMERAL.items()}
    overrides["database"] = {"url": url}
    settings = load_settings(data_dir=data_dir, env={}, overrides=overrides)
    gateway = Gateway(settings)
    prepare_tls(settings)
    ensure_default_whitelist(settings)
    gateway.trust = TrustSpaceManager(settings)
    await gateway.trust.load_initial()
    gateway.db = await open_storage(settings)
    gateway.authenticator = Authenticator(gateway.db)
    gateway.pipeline = Pipeline(gateway.db, settings, gateway.changes)
    await gateway.pipeline.start()
    await gateway.start_change_channel()
    return gateway


async def _idle_until_exists(env: ImapEnv, started: asyncio.Event) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", env.tls_port, ssl=env.client_ssl(), server_hostname="127.0.0.1")
    try:
        await reader.readline()
        writer.write(b"a LOGIN %s %s\r\nb SELECT INBOX\r\nc IDLE\r\n"
                     % (ALICE.encode(), env.alice_password.encode()))
        while not (await reader.readline()).startswith(b"+"):
            pass
        started.set()
        line = await asyncio.wait_for(reader.readline(), 5)
        seen = time.monotonic()
        writer.write(b"DONE\r\nd LOGOUT\r\n")
        return line, seen
    finally:
        writer.close()


async def test_two_gateways_on_postgresql_push_idle_within_a_second(
    tmp_path: Path, dev_pki: DevPkiBundle, pg_cluster: PgCluster,
) -> None:
    url = pg_cluster.url(await pg_cluster.create_database())
    env = await start_imap_env(tmp_path / "one", dev_pki, {"database": {"url": url}})
    other: Gateway | None = None
    try:
        await env.gateway.start_change_channel()
        other = await _second_node(tmp_path / "two", dev_pki, url, env.settings.key_file)
        started = asyncio.Event()
        idle = asyncio.create_task(_idle_until_exists(env, started))
        await asyncio.wait_for(started.wait(), 5)
        assert other.db is not None and other.pipeline is not None
        async with other.db.read() as conn:
            account = await get_by_address(conn, ALICE)
        assert account is not None
        inbox = await env.folder_id(ALICE, "INBOX")
        sent = time.monotonic()
        await other.pipeline.submit(Delivery(
            raw=message(1), sender="sender@mssante.test",
            local=[LocalTarget(ALICE, account.id, inbox)],
        ))
        line, seen = await idle
        assert line == b"* 1 EXISTS\r\n"
        assert seen - sent < 1.0
    finally:
        if other is not None:
            await other.stop(grace=0)
        await env.gateway.stop(grace=0)


async def test_sqlite_has_no_channel_and_stays_in_process(imap_env: ImapEnv) -> None:
    await imap_env.gateway.start_change_channel()
    assert imap_env.gateway._change_channel is None
    hub = ChangeHub()
    event = hub.watch(7)
    sent: list[set[int]] = []
    hub.attach(sent.append)
    hub.wake([7])  # a remote change wakes local watchers and is not sent back out
    assert event.is_set() and sent == []
    event.clear()
    hub.changed([7, 8])
    assert event.is_set() and sent == [{7, 8}]


def test_payloads_skip_own_node_and_stay_under_the_notify_limit() -> None:
    chunks = _chunks("abc", list(range(100_000, 103_000)))
    assert len(chunks) > 1 and all(len(c) < 8000 for c in chunks)
    ids = [i for c in chunks for i in parse_payload(c, "other")]
    assert ids == list(range(100_000, 103_000))
    assert parse_payload(chunks[0], "abc") == []
    assert parse_payload("garbage", "x") == [] and parse_payload("n:1,x", "y") == []
