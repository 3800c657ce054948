"""Proof ledger: append rate with the Merkle tree, full verification time, inclusion proofs.

Appends ``--records`` records (default 20 000, about half a minute on a loaded machine) in
transactions of ``--batch`` records (the accept path groups messages per commit), signs a
checkpoint, then times ``proofs.verify`` over the whole ledger (chain, tree, checkpoints,
checkpoint files) and the mean time of an inclusion proof for random records against the
full tree. Default SQLite engine in a temporary directory; ``--url`` for PostgreSQL.
Prints::

    RESULT records=… append_per_s=… verify_s=… inclusion_proof_ms=…

The 10 M figure: ``python bench/proofs.py --records 10000000 --batch 1000`` (long).
``--data-dir DIR`` keeps the ledger: a second run with the same DIR and record count skips
the appends (``append_per_s=reused``) and times verification again (for profiling).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config  # noqa: E402
from storage import proofs  # noqa: E402
from storage.database import open_database  # noqa: E402

PROOFS_SAMPLED = 200


async def run(root: Path, records: int, batch: int, url: str, workers: int | None) -> str:
    env = {"MSSANTE_DATABASE_URL": url} if url else {}
    settings = config.load_settings(data_dir=root, env=env)
    db = await open_database(settings, may_create_key=True)
    try:
        start = time.perf_counter()
        async with db.read() as conn:
            done = await proofs.tree_size(conn)
        reused = done == records
        if done not in (0, records):
            raise SystemExit(f"{root} holds {done} records, not {records}: use another dir")
        while done < records:
            items = [
                proofs.NewProof("delivered", f"<{done + i}@bench.mssante.test>", "ab" * 32,
                                "dr@bench.mssante.test", {"recipient": "r@chu.mssante.fr"})
                for i in range(min(batch, records - done))
            ]
            async with db.begin() as conn:
                await proofs.append_many(conn, items)
            done += len(items)
        append_s = time.perf_counter() - start
        if not reused:
            async with db.begin() as conn:
                await proofs.checkpoint(conn, db.keyring, origin=settings.proof_origin,
                                        directory=settings.checkpoint_dir)
        start = time.perf_counter()
        async with db.read() as conn:
            report = await proofs.verify(conn, db.keyring, directory=settings.checkpoint_dir,
                                        workers=workers)
        verify_s = time.perf_counter() - start
        if not report.ok:
            raise SystemExit(f"verification failed: {report.problems[:3]}")
        rnd = random.Random(1)
        start = time.perf_counter()
        async with db.read() as conn:
            for _ in range(PROOFS_SAMPLED):
                await proofs.inclusion_proof(conn, rnd.randint(1, records), records)
        proof_ms = (time.perf_counter() - start) * 1000 / PROOFS_SAMPLED
    finally:
        await db.close()
    append = "reused" if reused else f"{records / append_s:.0f}"
    return (f"RESULT records={records} append_per_s={append} "
            f"verify_s={verify_s:.2f} inclusion_proof_ms={proof_ms:.2f} "
            f"verify_workers={workers or 'auto'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="records per transaction")
    parser.add_argument("--url", default="", help="database URL (default: SQLite file)")
    parser.add_argument("--workers", type=int, default=None,
                        help="verification processes (default: by ledger size and cores)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the ledger here and reuse it on the next run")
    args = parser.parse_args()
    if args.data_dir is not None:
        print(asyncio.run(run(args.data_dir, args.records, args.batch, args.url,
                              args.workers)), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-proofs-") as tmp:
        print(asyncio.run(run(Path(tmp), args.records, args.batch, args.url, args.workers)),
              flush=True)


if __name__ == "__main__":
    main()
