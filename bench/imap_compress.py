"""COMPRESS=DEFLATE (RFC 4978): octets on the wire for a FLAGS resynchronisation.

Why: a clinician's phone resynchronises its folders over a mobile link, and the answer it
waits for most is ``UID FETCH 1:* (FLAGS)`` on the whole INBOX. This measures the octets
that answer takes on the wire (the IMAP octets crossing TLS, as a client reads them)
in clear and under COMPRESS=DEFLATE, on the same ``--messages`` (5,000) message INBOX,
and the time each takes over loopback::

    RESULT messages=5000 flags_octets_plain=… flags_octets_deflate=… ratio=…
           plain_s=… deflate_s=…

``ratio`` is plain over deflate (higher is better). The client is imaplib with the test
suite's COMPRESS client side (:mod:`tests.imap.deflate_client`); the gateway runs as
``mssante serve`` (a child), seeded offline through its own accept path.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.imap_gateway import BenchServe  # noqa: E402
from bench.imap_seed import make_message, seed_gateway  # noqa: E402
from tests.imap.deflate_client import DeflateIMAP4_SSL  # noqa: E402


def flags_sync(port: int, ca_file: str, user: str, password: str, *, deflate: bool
               ) -> tuple[int, int, float]:
    """One session: LOGIN, [COMPRESS], SELECT, then the measured ``UID FETCH 1:* (FLAGS)``;
    (octets received for it, FETCH lines, seconds)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    imap = DeflateIMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=120)
    try:
        imap.login(user, password)
        if deflate:
            status, line = imap.compress()
            if status != "OK":
                raise RuntimeError(f"COMPRESS refused: {line!r}")
        imap.select("INBOX")
        before = imap.wire.received
        start = time.monotonic()
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
        elapsed = time.monotonic() - start
        if typ != "OK":
            raise RuntimeError(f"UID FETCH answered {typ}")
        return imap.wire.received - before, len(data), elapsed
    finally:
        imap.logout()


def mark(port: int, ca_file: str, user: str, password: str, messages: int) -> None:
    """Realistic flags: most messages read, some answered, a few flagged."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    imap = DeflateIMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=120)
    try:
        imap.login(user, password)
        imap.select("INBOX")
        imap.uid("STORE", f"1:{messages * 4 // 5}", "+FLAGS.SILENT", "(\\Seen)")
        imap.uid("STORE", f"1:{messages // 3}", "+FLAGS.SILENT", "(\\Answered)")
        imap.uid("STORE", f"{messages // 2}:{messages // 2 + messages // 20}",
                 "+FLAGS.SILENT", "(\\Flagged $Important)")
    finally:
        imap.logout()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="INBOX size")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-compress-"))
    gw = BenchServe(work / "gateway", env={"MSSANTE_DIRECTORY_ENABLED": "false"})
    try:
        await asyncio.to_thread(gw.start)
        gw.stop()
        user, password = gw.demo_address, gw.demo_password
        inbox = [make_message(n, small=True, user=user) for n in range(1, args.messages + 1)]
        await seed_gateway(gw.settings(), user, {"INBOX": inbox})
        await asyncio.to_thread(gw.start)
        port, ca = gw.ports["MSSANTE_IMAP_TLS_PORT"], str(gw.ca_file)
        await asyncio.to_thread(mark, port, ca, user, password, args.messages)
        plain, lines_plain, plain_s = await asyncio.to_thread(
            flags_sync, port, ca, user, password, deflate=False)
        packed, lines_packed, deflate_s = await asyncio.to_thread(
            flags_sync, port, ca, user, password, deflate=True)
        if lines_plain != lines_packed:
            raise RuntimeError(f"answers differ: {lines_plain} and {lines_packed} lines")
        print(f"# {lines_plain} FETCH responses each way", flush=True)
        print(f"RESULT messages={args.messages} flags_octets_plain={plain} "
              f"flags_octets_deflate={packed} ratio={plain / packed:.2f} "
              f"plain_s={plain_s:.3f} deflate_s={deflate_s:.3f}", flush=True)
    finally:
        gw.stop()
        gw.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
