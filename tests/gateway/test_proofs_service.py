"""A running gateway writes each checkpoint outside the database, and verify reads them."""

from __future__ import annotations

import asyncio
import stat

import pytest

from tests.fixtures.gateway import ServeProcess
from tests.gateway.test_proofs_cli import cli
from tests.security.test_misc_checkpoints import submit

pytestmark = pytest.mark.timeout(180)


async def test_serve_writes_checkpoint_files(serve_process: ServeProcess) -> None:
    proc = serve_process
    await asyncio.to_thread(proc.start)
    await asyncio.to_thread(
        submit, proc.submission_port, proc.ca_file, proc.demo_address, proc.demo_password, 2)
    assert await asyncio.to_thread(proc.stop) == 0  # SIGTERM: the shutdown checkpoint
    directory = proc.data_dir / "checkpoints"
    files = sorted(directory.iterdir())
    assert files, "no checkpoint file was written"
    newest = files[-1].read_text(encoding="utf-8").splitlines()
    assert newest[0] == "mx.mssante.test/proofs" and int(newest[1]) >= 4
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    done = await asyncio.to_thread(cli, proc.data_dir, "proofs", "verify")
    assert done.returncode == 0, done.stderr
    assert f"{len(files)} checkpoint files" in done.stdout
