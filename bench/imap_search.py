"""SELECT, SEARCH SUBJECT and FETCH ENVELOPE/BODYSTRUCTURE on one folder, cold then warm.

Why: the decoded header fields SEARCH compares and the ENVELOPE/BODYSTRUCTURE views FETCH
serves are stored encrypted; this measures what the first command after a start (cold:
every field read and opened) and the next ones (warm: served from memory) cost::

    RESULT messages=5000 select_s=… search_cold_s=… search_warm_s=… search_sent_s=…
           search_sent_warm_s=… envelope_cold_s=… envelope_warm_s=… bodystructure_warm_s=…
           search_body_s=… search_body_warm_s=… [sort_date_s=… sort_subject_s=…
           thread_references_s=… when SORT and THREAD are announced]

The gateway runs as ``mssante serve`` (a child), seeded offline through its own accept
path, as in :mod:`bench.imap`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.imap_client import BenchClient, client_context  # noqa: E402
from bench.imap_gateway import BenchServe  # noqa: E402
from bench.imap_seed import make_message, seed_gateway  # noqa: E402


async def timed(client: BenchClient, command: bytes) -> float:
    start = time.monotonic()
    await client.command(command)
    return time.monotonic() - start


async def capabilities(client: BenchClient) -> bytes:
    """The server's CAPABILITY line (the bench runs against older servers too)."""
    keep, client.keep = client.keep, True
    try:
        return b" ".join((await client.command(b"CAPABILITY")).lines)
    finally:
        client.keep = keep


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="INBOX size")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    gw = BenchServe(work / "gateway", env={"MSSANTE_DIRECTORY_ENABLED": "false"})
    try:
        await asyncio.to_thread(gw.start)
        gw.stop()
        user, password = gw.demo_address, gw.demo_password
        inbox = [make_message(n, small=False, user=user) for n in range(1, args.messages + 1)]
        await seed_gateway(gw.settings(), user, {"INBOX": inbox})
        await asyncio.to_thread(gw.start)
        ctx = client_context(str(gw.ca_file))
        client = await BenchClient.connect(gw.ports["MSSANTE_IMAP_TLS_PORT"], ctx,
                                           limit=1 << 24)
        try:
            await client.login(user, password)
            figures = {
                "select_s": await timed(client, b"SELECT INBOX"),
                "search_cold_s": await timed(client, b'SEARCH SUBJECT "sortie"'),
                "search_warm_s": await timed(client, b'SEARCH SUBJECT "biologie"'),
                # Criteria the folder index does not answer: the general matcher, every row.
                "search_sent_s": await timed(client, b"SEARCH SENTSINCE 1-Jan-2025"),
                "search_sent_warm_s": await timed(client, b"SEARCH SENTSINCE 2-Jan-2025"),
                "envelope_cold_s": await timed(client, b"FETCH 1:* (ENVELOPE)"),
                "envelope_warm_s": await timed(client, b"FETCH 1:* (ENVELOPE)"),
                "bodystructure_warm_s": await timed(client, b"FETCH 1:* (BODYSTRUCTURE)"),
                # The decoded body text (RFC 9051 §6.4.4), every message read.
                "search_body_s": await timed(client, b'SEARCH BODY "absentword"'),
                "search_body_warm_s": await timed(client, b'SEARCH TEXT "absentword"'),
            }
            if b"SORT" in await capabilities(client):
                figures["sort_date_s"] = await timed(client, b"SORT (DATE) UTF-8 ALL")
                figures["sort_subject_s"] = await timed(client, b"SORT (SUBJECT) UTF-8 ALL")
                figures["thread_references_s"] = await timed(
                    client, b"THREAD REFERENCES UTF-8 ALL")
        finally:
            await client.close()
        print(f"RESULT messages={args.messages} "
              + " ".join(f"{k}={v:.3f}" for k, v in figures.items()), flush=True)
    finally:
        gw.stop()
        gw.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
