"""``mssante proofs verify`` catches records cut off together with their checkpoint rows."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from sqlalchemy import delete

from config import load_settings
from storage.database import open_database
from storage.schema import proof_checkpoints
from storage.schema import proofs as proofs_table
from tests.gateway.test_proofs_cli import cli, seed


async def cut(data_dir: Path, keep: int) -> None:
    db = await open_database(load_settings(data_dir=data_dir, env={}), may_create_key=False)
    async with db.begin() as conn:
        await conn.execute(delete(proofs_table).where(proofs_table.c.seq > keep))
        await conn.execute(delete(proof_checkpoints).where(proof_checkpoints.c.seq > keep))
    await db.close()


def test_cut_with_checkpoint_rows_is_named(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    assert cli(tmp_path, "proofs", "checkpoint").returncode == 0
    files = sorted((tmp_path / "checkpoints").iterdir())
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    head = files[0].read_text(encoding="utf-8").splitlines()
    assert head[0] == "mx.mssante.test/proofs" and head[1] == "3" and head[3] == ""
    assert head[4].startswith("\u2014 mx.mssante.test/proofs ")
    assert cli(tmp_path, "proofs", "verify").returncode == 0

    asyncio.run(cut(tmp_path, keep=1))
    bad = cli(tmp_path, "proofs", "verify")
    assert bad.returncode == 1, bad.stdout
    assert (f"records 2..3 were cut off: checkpoint file {files[0].name} signs 3 records, "
            "the database ends at record 1") in bad.stderr
    assert "checkpoint rows were deleted" in bad.stderr
