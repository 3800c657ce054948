"""Several nodes on one PostgreSQL: starting at the same moment on an empty database, and
nodes whose key file lacks the keys the database records (README "Several nodes")."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.runtime import Gateway
from gateway.startup import StartupError
from storage.schema import accounts
from tests.fixtures.gateway import gateway_settings
from tests.fixtures.postgres import PgCluster


def node_settings(root: Path, url: str, *, key_file: Path | None = None,
                  pki_from: Path | None = None) -> object:
    """A node's settings: its own data directory, the shared database, no directory
    service (slapd is beside the point here)."""
    storage = {"key_file": str(key_file)} if key_file is not None else {}
    if pki_from is not None:
        shutil.copytree(pki_from, root / "pki")
    return gateway_settings(root, database={"url": url}, storage=storage,
                            directory={"enabled": False})


async def test_two_nodes_starting_together_on_an_empty_database(
        tmp_path: Path, pg_cluster: PgCluster) -> None:
    """Both nodes come up; the first-start accounts exist once; the node that lost the
    race says so instead of dying with a traceback (failed before: AccountRefused)."""
    url = pg_cluster.url(await pg_cluster.create_database())
    shared_key = tmp_path / "shared" / "master.key"
    first = node_settings(tmp_path / "n1", url, key_file=shared_key)
    # The key file is made once, before the nodes start (README "Several nodes").
    from storage.keys import load_or_create_keyring
    shared_key.parent.mkdir(mode=0o700)
    load_or_create_keyring(shared_key, may_create=True)
    second = node_settings(tmp_path / "n2", url, key_file=shared_key)
    nodes = [Gateway(first), Gateway(second)]  # type: ignore[arg-type]
    try:
        results = await asyncio.gather(*(n.start() for n in nodes), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        winners = [n for n in nodes if n.first_start is not None]
        assert len(winners) == 1
        db = nodes[0].db
        assert db is not None
        async with db.read() as conn:
            count = (await conn.execute(select(func.count()).select_from(accounts))).scalar()
        assert count == 2  # postmaster and the demo mailbox, once
    finally:
        for n in nodes:
            await n.stop(grace=0)


async def test_node_with_another_key_file_is_refused(tmp_path: Path,
                                                      pg_cluster: PgCluster) -> None:
    """A node with its own, different key file would seal bodies and sign checkpoints that
    the other nodes cannot read or verify: refused at start, naming the missing keys
    (failed before: the second node started with a key of its own)."""
    url = pg_cluster.url(await pg_cluster.create_database())
    first = Gateway(node_settings(tmp_path / "n1", url))  # type: ignore[arg-type]
    await first.start()
    try:
        assert first.db is not None
        wanted = set(first.db.keyring.master_keys) | set(first.db.keyring.signing_keys)
    finally:
        await first.stop(grace=0)
    stranger = Gateway(node_settings(tmp_path / "n2", url))  # type: ignore[arg-type]
    with pytest.raises(StartupError) as refused:
        await stranger.start()
    text = str(refused.value)
    assert all(key_id in text for key_id in wanted), text
    assert "key file" in text
    # Nothing of the stranger's keys went into the database: a node with the right key
    # file still starts.
    joined = Gateway(node_settings(tmp_path / "n3", url,  # type: ignore[arg-type]
                                   key_file=tmp_path / "n1" / "master.key",
                                   pki_from=tmp_path / "n1" / "pki"))
    await joined.start()
    await joined.stop(grace=0)


async def test_nodes_with_different_key_files_racing_on_an_empty_database(
        tmp_path: Path, pg_cluster: PgCluster) -> None:
    """Two nodes each with a key file of its own start together on an empty database:
    exactly one is refused (failed before: both started, each with its own keys)."""
    url = pg_cluster.url(await pg_cluster.create_database())
    nodes = [Gateway(node_settings(tmp_path / f"n{i}", url))  # type: ignore[arg-type]
             for i in (1, 2)]
    try:
        results = await asyncio.gather(*(n.start() for n in nodes), return_exceptions=True)
        refused = [r for r in results if isinstance(r, StartupError)]
        assert len(refused) == 1, results
        assert [r for r in results if r is not None and r not in refused] == []
    finally:
        for n in nodes:
            await n.stop(grace=0)
