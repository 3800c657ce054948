"""Rows in flight on a node that died: the lease is configurable and short, renewed while
a delivery runs, taken back by the restarted node at once and by ``mssante queue retry``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from config import load_settings
from gateway.node import node_name
from smtp.outbound_rows import list_rows
from storage import queue as queue_rows
from storage.database import open_database
from storage.types import utcnow
from tests.smtp.test_queue_cli import queued, run


def claim_as(tmp_path: Path, worker: str, lease: timedelta) -> None:
    """What a node does when it takes rows (then, here, it dies)."""
    async def go() -> None:
        settings = load_settings(data_dir=tmp_path, env={})
        db = await open_database(settings, may_create_key=True)
        try:
            async with db.begin() as conn:
                taken = await queue_rows.claim_due(conn, worker=worker, limit=10, lease=lease)
                assert taken
        finally:
            await db.close()
    asyncio.run(go())


def rows(tmp_path: Path) -> list[queue_rows.QueueItem]:
    async def go() -> list[queue_rows.QueueItem]:
        settings = load_settings(data_dir=tmp_path, env={})
        db = await open_database(settings, may_create_key=True)
        try:
            async with db.read() as conn:
                return await list_rows(conn)
        finally:
            await db.close()
    return asyncio.run(go())


def test_lease_default_is_short_and_configurable(tmp_path: Path) -> None:
    """Failed before: a fixed lease of 15 minutes, not in the configuration."""
    assert load_settings(data_dir=tmp_path, env={}).smtp.outbound_lease == 120.0
    custom = load_settings(data_dir=tmp_path, env={}, overrides={"smtp": {"outbound_lease": 30}})
    assert custom.smtp.outbound_lease == 30.0


def test_retry_takes_back_a_row_whose_node_died(tmp_path: Path) -> None:
    """Lease lapsed: the node is gone, ``retry`` makes the row due again (failed before:
    refused as 'not waiting')."""
    [row_id] = queued(tmp_path, "bob@hopital-b.mssante.test")
    claim_as(tmp_path, "dead-node", timedelta(seconds=-1))
    code, out, err = run(tmp_path, "retry", str(row_id))
    assert code == 0, err
    assert "1 row(s) due now" in out
    [row] = rows(tmp_path)
    assert (row.state, row.claimed_by, row.claimed_until) == ("deferred", None, None)
    assert row.next_attempt_at <= utcnow()


def test_retry_refuses_a_live_lease_unless_forced(tmp_path: Path) -> None:
    [row_id] = queued(tmp_path, "bob@hopital-b.mssante.test")
    claim_as(tmp_path, "busy-node", timedelta(minutes=2))
    code, _, err = run(tmp_path, "retry", str(row_id))
    assert code == 2
    assert f"queue row {row_id} is not waiting" in err and "--force" in err
    assert rows(tmp_path)[0].claimed_by == "busy-node"
    code, out, err = run(tmp_path, "retry", "--force", str(row_id))
    assert code == 0 and "1 row(s) due now" in out, err
    assert rows(tmp_path)[0].state == "deferred"


def test_node_name_is_stable_and_private(tmp_path: Path) -> None:
    first = node_name(tmp_path)
    assert node_name(tmp_path) == first
    assert (tmp_path / "node-id").stat().st_mode & 0o077 == 0
    other = tmp_path / "other"
    other.mkdir()
    assert node_name(other) != first
