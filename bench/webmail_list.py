"""Webmail message list: does a 100,000-message folder open as fast as a 100-message one?

Seeds one mailbox with a small and a big folder through the pipeline (as SMTP stores mail),
then times what the list page does — the folder's UID list from the in-memory index, one
UID-range query for the page, the page's HTML — for the newest page, a page in the middle
and the oldest page, cold (first open after start: the index is loaded and the sidebar's unread
counts are taken), just after a change to the big folder (its unread count is taken again),
and warm. The sidebar (folders with unread counts) is part of each open.

    PYTHONPATH=. python bench/webmail_list.py [--big 100000] [--small 100] [--repeat 50]

Prints ``RESULT webmail_list small_ms=… big_ms=… big_middle_ms=… big_oldest_ms=…
big_cold_ms=… big_after_change_ms=…`` (medians of ``--repeat`` warm opens, in milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accounts.delegations import ALL_RIGHTS  # noqa: E402
from accounts.mailboxes import add_mailbox  # noqa: E402
from bench.imap_seed import seed_gateway, small_message  # noqa: E402
from config import load_settings  # noqa: E402
from gateway.startup import open_storage  # noqa: E402
from mail.changes import ChangeHub  # noqa: E402
from mailstore.store import SqlMailStore  # noqa: E402
from web.sessions import SessionStore  # noqa: E402
from web.webmail.base import Mailbox, Webmail, WebmailDeps  # noqa: E402
from web.webmail.folders import Key, folder_page, human_size  # noqa: E402

USER = "bench.liste@mssante.test"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--profile", action="store_true",
                        help="print the top functions of the warm big-folder opens")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the seeded data directory here and reuse it next time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        settings = load_settings(data_dir=data, env={}, overrides={})
        if not (data / ".seeded").exists():
            db = await open_storage(settings)
            await add_mailbox(db, USER, type="PER", name="Dr Liste", idnat="899999999999")
            await db.close()
            seconds = await seed_gateway(settings, USER, {
                "Petit": [small_message(n, USER) for n in range(1, args.small + 1)],
                "Grand": [small_message(n, USER) for n in range(1, args.big + 1)],
            })
            (data / ".seeded").touch()
            print(f"# seeded {args.small} + {args.big} messages in {seconds:.1f}s",
                  flush=True)
        db = await open_storage(settings)
        try:
            store = SqlMailStore(db, ChangeHub())
            webmail = Webmail(WebmailDeps(db=db, sessions=SessionStore(60, 60), store=store))
            account_id = await _account_id(db)
            boxes = {f.name: Mailbox(f, ALL_RIGHTS, account_id, USER, False)
                     for f in await store.list_folders(account_id)}
            template = webmail.env.get_template("webmail/list.html")

            user = SimpleNamespace(id=account_id, address=USER)

            async def open_page(name: str, before: Key | None) -> float:
                started = time.perf_counter()
                box = boxes[name]
                page = await folder_page(webmail, box, before)  # as the page: rows first
                listed = time.perf_counter()
                own = await webmail.own_mailboxes(user)  # type: ignore[arg-type]
                sidebar = time.perf_counter()
                template.render(csrf="x", user=None, domain="d", own=own, shared=[],
                                current=box, title=box.label, page=page, size=human_size,
                                url=webmail.url, error=None, notice=None, warnings={})
                assert page.messages or not page.total
                now = time.perf_counter()
                parts.append(((sidebar - listed) * 1000, (listed - started) * 1000,
                              (now - sidebar) * 1000))
                return (now - started) * 1000

            parts: list[tuple[float, float, float]] = []

            cold = await open_page("Grand", None)
            print("# cold big open: " + _split(parts[-1]))
            await open_page("Petit", None)
            # A new message in the big folder: its unread count is taken again once.
            await store.store_flags(boxes["Grand"].id, {1: ("\\Flagged",)})
            changed = await open_page("Grand", None)
            print("# after a change: " + _split(parts[-1]))

            async def median(name: str, before: Key | None) -> float:
                return statistics.median([await open_page(name, before)
                                          for _ in range(args.repeat)])

            results: dict[str, float] = {}
            small = await median("Petit", None)
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                await median("Grand", None)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            order = await store.date_order(boxes["Grand"].id)
            for label, before in (("big", None),
                                  ("big_middle", order.key(order.uids[len(order.uids) // 2])),
                                  ("big_oldest", order.key(order.uids[50]))):
                del parts[:]
                results[label] = await median("Grand", before)
                print(f"# {label}: sidebar, rows, HTML medians (ms): " + ", ".join(
                    f"{statistics.median(p[i] for p in parts):.2f}" for i in range(3)))
            big, middle, oldest = results["big"], results["big_middle"], results["big_oldest"]
        finally:
            await db.close()
    print(f"RESULT webmail_list small={args.small} big={args.big} small_ms={small:.2f} "
          f"big_ms={big:.2f} big_middle_ms={middle:.2f} big_oldest_ms={oldest:.2f} "
          f"big_cold_ms={cold:.1f} big_after_change_ms={changed:.1f}")
    return 0


def _split(times: tuple[float, float, float]) -> str:
    sidebar, rows, html = times
    return f"sidebar {sidebar:.1f} ms, rows {rows:.1f} ms, HTML {html:.1f} ms"


async def _account_id(db: object) -> int:
    from storage.accounts import get_by_address

    async with db.read() as conn:  # type: ignore[attr-defined]
        account = await get_by_address(conn, USER)
    assert account is not None
    return account.id


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
