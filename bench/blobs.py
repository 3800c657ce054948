"""Encrypted blob store throughput against plain files with fsync, in the same run.

For 10 KB and 10 MB bodies: write = ``put`` + commit (durable: SQLite WAL with
``synchronous=FULL``), read = authenticated decryption of the whole body, both through
:class:`storage.blobs.BlobStore` on the default SQLite engine. The reference writes the
same bytes to a new plain file and fsyncs it. Prints one line per size::

    RESULT size=10KB write_MBps=… read_MBps=… vs_plain_file=…

``vs_plain_file`` = store write MB/s ÷ plain file write MB/s. Bounded to about 40 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config  # noqa: E402
from storage.database import open_database  # noqa: E402

SIZES = (("10KB", 10 * 1024), ("10MB", 10 * 1024 * 1024))
BUDGET = 6.0  # seconds per measurement
MIN_ITER, MAX_ITER = 3, 2000


def _plain_write(root: Path, bodies: list[bytes]) -> float:
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        fd = os.open(root / f"plain-{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.perf_counter() - start


async def _bench(root: Path, label: str, size: int) -> str:
    settings = config.load_settings(data_dir=root / label, env={})
    db = await open_database(settings, may_create_key=True)
    try:
        # Distinct bodies (dedupe would otherwise skip the work); prepared outside the timing.
        bodies: list[bytes] = []
        ids: list[int] = []
        written = 0
        elapsed = 0.0
        while (elapsed < BUDGET or len(ids) < MIN_ITER) and len(ids) < MAX_ITER:
            body = os.urandom(size)
            start = time.perf_counter()
            async with db.begin() as conn:
                ref = await db.blobs.put(conn, body)
            elapsed += time.perf_counter() - start
            bodies.append(body)
            ids.append(ref.id)
            written += size
        write_mbps = written / elapsed / 1e6

        read = 0
        start = time.perf_counter()
        n = 0
        while (time.perf_counter() - start < BUDGET / 2 or n < MIN_ITER) and n < len(ids) * 3:
            async with db.read() as conn:
                data = await db.blobs.read(conn, ids[n % len(ids)])
            read += len(data)
            n += 1
        read_mbps = read / (time.perf_counter() - start) / 1e6
    finally:
        await db.close()

    plain_dir = root / f"plain-{label}"
    plain_dir.mkdir()
    plain_mbps = len(bodies) * size / _plain_write(plain_dir, bodies) / 1e6
    return (
        f"RESULT size={label} write_MBps={write_mbps:.2f} read_MBps={read_mbps:.2f} "
        f"vs_plain_file={write_mbps / plain_mbps:.3f}"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mssante-bench-", dir="/var/tmp") as tmp:
        for label, size in SIZES:
            print(await _bench(Path(tmp), label, size), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
