"""Webmail pages timed in-process, request by request: what one list page and one reading
cost the server without the network, TLS or the load generator.

Seeds one PER mailbox with ``--messages`` (5,000) messages in INBOX (1–8 KB, as
``bench/imap_seed.py`` makes them), signs a session in directly in the session store, and
sends requests to the webmail's ASGI application (its routes and the security headers
middleware, as ``web.app.build_app`` serves them) through httpx's ASGI transport: ``--repeat``
list pages (the first page, one time in four the next one) and as many readings of messages
of the page (which set \\Seen). Readings are not proved (no pipeline here): the proof's cost
is measured by ``bench/web.py``.

    PYTHONPATH=. python bench/webmail_request.py [--messages 5000] [--repeat 200]
        [--data DIR] [--profile]

Prints ``RESULT webmail_request list_p50_ms=… list_p90_ms=… read_p50_ms=… read_p90_ms=…
list_cpu_ms=… read_cpu_ms=…`` (the last two: medians of the CPU time the process used per
request, client included, which depends far less on the machine's load than the wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from accounts.mailboxes import add_mailbox  # noqa: E402
from bench.imap_seed import make_message, seed_gateway  # noqa: E402
from config import load_settings  # noqa: E402
from gateway.startup import open_storage  # noqa: E402
from mail.changes import ChangeHub  # noqa: E402
from mailstore.store import SqlMailStore  # noqa: E402
from storage.accounts import get_by_address  # noqa: E402
from web.headers import SecurityHeaders  # noqa: E402
from web.sessions import COOKIE, SessionStore  # noqa: E402
from web.webmail import routes  # noqa: E402
from web.webmail.base import WebmailDeps  # noqa: E402

USER = "bench.pages@mssante.test"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--profile", action="store_true",
                        help="print the top functions (cumulative) of the timed requests")
    parser.add_argument("--sort", default="cumulative", help="pstats order of --profile")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the seeded data directory here and reuse it next time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        settings = load_settings(data_dir=data, env={}, overrides={})
        if not (data / ".seeded").exists():
            db = await open_storage(settings)
            await add_mailbox(db, USER, type="PER", name="Dr Pages", idnat="899999999998")
            await db.close()
            seconds = await seed_gateway(settings, USER, {"INBOX": [
                make_message(n, small=False, user=USER) for n in range(1, args.messages + 1)]})
            (data / ".seeded").touch()
            print(f"# seeded {args.messages} messages in {seconds:.1f}s", flush=True)
        db = await open_storage(settings)
        try:
            sessions = SessionStore(3600, 3600)
            deps = WebmailDeps(db=db, sessions=sessions, store=SqlMailStore(db, ChangeHub()))
            app = Starlette(routes=routes(deps), middleware=[Middleware(SecurityHeaders)])
            async with db.read() as conn:
                account = await get_by_address(conn, USER)
            assert account is not None
            session = sessions.rotate(sessions.new())
            session.data["account_id"] = account.id
            async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="https://webmail.test",
                    cookies={COOKIE: session.id}) as http:
                home = await http.get("/courrier/")
                assert home.status_code == 303, home.status_code
                inbox = home.headers["location"]
                lists: list[float] = []
                reads: list[float] = []
                lists_cpu: list[float] = []  # CPU time of this process: less load-dependent
                reads_cpu: list[float] = []
                link = re.compile(r'href="(/courrier/dossier/\d+/message/\d+)"')
                later = re.compile(r'href="(/courrier/dossier/\d+\?avant=[^"]+)"')

                async def timed(url: str, into: list[float], cpu: list[float]) -> str:
                    started, used = time.perf_counter(), time.process_time()
                    got = await http.get(url)
                    cpu.append((time.process_time() - used) * 1000)
                    into.append((time.perf_counter() - started) * 1000)
                    assert got.status_code == 200, got.status_code
                    return got.text

                async def one(i: int) -> None:
                    page = await timed(inbox, lists, lists_cpu)
                    if i % 4 == 0 and (more := later.search(page)):
                        page = await timed(more.group(1).replace("&amp;", "&"), lists,
                                           lists_cpu)
                    messages = link.findall(page)
                    await timed(messages[(i * 7) % len(messages)], reads, reads_cpu)

                for i in range(10):  # warm: indexes, views, templates
                    await one(i)
                for done in (lists, reads, lists_cpu, reads_cpu):
                    done.clear()
                profiler = None
                if args.profile:
                    import cProfile

                    profiler = cProfile.Profile()
                    profiler.enable()
                for i in range(args.repeat):
                    await one(i)
                if profiler is not None:
                    import pstats

                    profiler.disable()
                    pstats.Stats(profiler).sort_stats(args.sort).print_stats(45)
        finally:
            await db.close()

    def q(values: list[float], p: float) -> float:
        return statistics.quantiles(values, n=100)[int(p * 100) - 1]

    print(f"RESULT webmail_request messages={args.messages} repeat={args.repeat} "
          f"list_p50_ms={statistics.median(lists):.2f} list_p90_ms={q(lists, 0.9):.2f} "
          f"read_p50_ms={statistics.median(reads):.2f} read_p90_ms={q(reads, 0.9):.2f} "
          f"list_cpu_ms={statistics.median(lists_cpu):.2f} "
          f"read_cpu_ms={statistics.median(reads_cpu):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
