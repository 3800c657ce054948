"""IMAP benchmark: the gateway against a private Dovecot, same messages, same load, same run.

Measures (issue 4, "Benchmark"), every size a command-line option:

1. ``--clients`` (10 and 50) concurrent clients over TLS on a ``--messages`` (5,000) message
   INBOX, a realistic mix (SELECT, ``UID FETCH 1:* (FLAGS)``, header and whole-body FETCH,
   STORE, SEARCH, APPEND, EXPUNGE, IDLE) for ``--seconds`` (30) each, on both servers::

       RESULT clients=10 ops_per_s=… vs_dovecot=…

1b. the login-per-cycle mix of issue 15, ``--clients`` concurrent clients each opening a
   connection per cycle (LOGIN, LIST or STATUS, SELECT, envelopes, a body, COPY, STORE,
   APPEND, STORE \\Deleted, UID EXPUNGE, LOGOUT; ``bench/imap_load.py``), one user::

       RESULT mix=login_cycle clients=10 commands_per_s=… vs_dovecot=…

2. SELECT then ``UID FETCH 1:* (UID FLAGS)`` on a ``--big`` (100,000) message folder, both
   servers (median of ``--repeat`` runs, after one untimed warm-up that lets Dovecot build
   its index, as the gateway built its views at delivery)::

       RESULT mailbox=100000 select_fetch_s=… vs_dovecot=…

3. ``--idle`` (10,000) connections over TLS in IDLE on the gateway: its resident memory
   (minus what it used before the connections) and the time until all have seen one new
   message, appended after they are all idle::

       RESULT idle_connections=10000 rss_mb=… all_notified_s=…

``vs_dovecot`` is always "higher is better for the gateway": a throughput ratio for the mix,
Dovecot's time over ours for the big folder. ``--quick`` runs small sizes for a smoke run;
``--mix name=weight,…`` isolates operations (e.g. ``--mix fetch_headers=1`` to see whether
one kind of command scales with clients); ``--profile FILE`` runs the gateway under cProfile
for the mix and prints its top functions. Lines starting with ``#`` are context (seeding
times, mean latency per operation on each server, first error seen).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.imap_client import BenchClient, client_context  # noqa: E402
from bench.imap_dovecot import MAIL_GID, MAIL_UID, PrivateDovecot, ensure_installed  # noqa: E402
from bench.imap_gateway import BenchServe  # noqa: E402
from bench.imap_load import (  # noqa: E402
    MIX,
    Server,
    idle_storm,
    parse_mix,
    run_cycles,
    run_mix,
    select_fetch,
)
from bench.imap_seed import make_message, seed_gateway, seed_maildir, small_message  # noqa: E402
from bench.pyspy import PySpy  # noqa: E402
from tests.fixtures.gateway import free_port, wait_port  # noqa: E402

BIG_FOLDER = "Big"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="INBOX size for the mix")
    parser.add_argument("--clients", type=str, default="10,50", help="client counts, comma list")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each mix run")
    parser.add_argument("--big", type=int, default=100_000, help="size of the big folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs of SELECT+FETCH (median)")
    parser.add_argument("--idle", type=int, default=10_000, help="IDLE connections (0: skip)")
    parser.add_argument("--connect-concurrency", type=int, default=64,
                        help="TLS connections opened at once in the IDLE test")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: 500 messages, 5 s runs, 5,000 big, 500 idle")
    parser.add_argument("--skip", type=str, default="",
                        help="parts to skip, comma list among mix,cycle,big,idle")
    parser.add_argument("--mix", type=str, default="",
                        help="override the operation weights, e.g. fetch_body=1,store=1")
    parser.add_argument("--workers", type=int, default=1,
                        help="[gateway] workers of the gateway (0: one per CPU)")
    parser.add_argument("--py-spy", type=Path, default=None,
                        help="sample the gateway with py-spy during the mix and the cycle; "
                             "collapsed stacks written here, top 25 own-time frames printed")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the gateway under cProfile, write stats here, print top 25")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.seconds, args.big, args.idle = 500, 5.0, 5000, 500
        args.repeat = 1
    args.client_counts = [int(x) for x in args.clients.split(",") if x.strip()]
    try:
        args.mix_weights = parse_mix(args.mix) if args.mix else MIX
    except ValueError as exc:
        parser.error(str(exc))
    args.skip_parts = {x.strip() for x in args.skip.split(",") if x.strip()}
    return args


def raise_fd_limit(wanted: int) -> int:
    """Many sockets on both sides: RLIMIT_NOFILE up (the gateway child inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, wanted)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def note(text: str) -> None:
    print(f"# {text}", flush=True)


async def main() -> int:
    args = parse_args()
    # SIGTERM (make's Ctrl-C, a timeout): cancel, so that the servers are stopped below.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    limit = raise_fd_limit(args.idle * 2 + 4096)
    note(f"RLIMIT_NOFILE={limit}")
    work = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    work.chmod(0o755)  # noqa: ASYNC240 - Dovecot's unprivileged processes must reach it
    gw = BenchServe(work / "gateway", env={
        "MSSANTE_IMAP_MAX_CONNECTIONS_PER_ADDRESS": str(args.idle + 1000),
        "MSSANTE_DIRECTORY_ENABLED": "false",  # the directory plays no part in IMAP
        "MSSANTE_GATEWAY_WORKERS": str(args.workers),
    })
    note(f"gateway workers={args.workers}")
    dovecot: PrivateDovecot | None = None
    try:
        # First start creates the data dir, PKI and the demo mailbox; then seed offline.
        await asyncio.to_thread(gw.start)
        gw.stop()
        user, password = gw.demo_address, gw.demo_password
        t0 = time.monotonic()
        inbox = [make_message(n, small=False, user=user) for n in range(1, args.messages + 1)]
        big = ([small_message(n, user) for n in range(1, args.big + 1)]
               if "big" not in args.skip_parts else [])
        note(f"generated {len(inbox)} + {len(big)} messages in {time.monotonic() - t0:.1f}s")
        seconds = await seed_gateway(gw.settings(), user, {"INBOX": inbox, BIG_FOLDER: big})
        note(f"gateway seeded through the pipeline in {seconds:.1f}s "
             f"({(len(inbox) + len(big)) / seconds:.0f} msg/s)")

        problem = await asyncio.to_thread(ensure_installed)
        if problem is None:
            dovecot = PrivateDovecot(work / "dovecot", free_port(), user, password,
                                     gw.data_dir / "pki" / "server.pem",
                                     gw.data_dir / "pki" / "server.key")
            dovecot.prepare()
            s1 = await asyncio.to_thread(seed_maildir, dovecot.folder_dir("INBOX"), inbox,
                                         uid=MAIL_UID, gid=MAIL_GID, is_inbox=True)
            s2 = await asyncio.to_thread(seed_maildir, dovecot.folder_dir(BIG_FOLDER), big,
                                         uid=MAIL_UID, gid=MAIL_GID, is_inbox=False)
            os.chown(dovecot.home, MAIL_UID, MAIL_GID)
            note(f"dovecot Maildir written in {s1 + s2:.1f}s")
            try:
                dovecot.start()
                await wait_port(dovecot.port)
            except (RuntimeError, OSError) as exc:
                problem = f"dovecot could not run: {exc} {dovecot.log_tail()}"
                dovecot = None
        big_seeded = bool(big)
        del inbox, big

        gw.profile_to = args.profile
        await asyncio.to_thread(gw.start)
        ctx = client_context(str(gw.ca_file))
        ours = Server("gateway", gw.ports["MSSANTE_IMAP_TLS_PORT"], user, password, ctx)
        theirs = (Server("dovecot", dovecot.port, user, password, ctx)
                  if dovecot is not None else None)
        if problem:
            print(f"RESULT # reference not measured: {problem}", flush=True)

        # Untimed warm-up: Dovecot indexes new Maildirs at first SELECT.
        for server in (ours, theirs):
            if server is None:
                continue
            for folder in (b"INBOX", BIG_FOLDER.encode()) if big_seeded else (b"INBOX",):
                cold, exists = await select_fetch(server, folder)
                note(f"{server.name} first SELECT+FETCH {folder.decode()}: {cold:.2f}s "
                     f"({exists} messages)")

        sampler = PySpy(args.py_spy, gw.process.pid) if args.py_spy is not None else None
        if "mix" not in args.skip_parts:
            for clients in args.client_counts:
                await mix_result(ours, theirs, clients, args.seconds, args.mix_weights,
                                 args.workers)
        if "cycle" not in args.skip_parts:
            for clients in args.client_counts:
                await cycle_result(ours, theirs, clients, args.seconds)
        if sampler is not None:
            sampler.stop()
            for line in sampler.top(25):
                note(line)
        if args.profile is not None:
            # Stop now so cProfile writes the mix's profile (restart for the rest).
            gw.stop(timeout=60)
            print_profile(args.profile)
            gw.profile_to = None
            await asyncio.to_thread(gw.start)

        if "big" not in args.skip_parts:
            await big_result(ours, theirs, args.big, args.repeat)
        if args.idle > 0 and "idle" not in args.skip_parts:
            await idle_result(gw, ours, args.idle, args.connect_concurrency)
    finally:
        if dovecot is not None:
            dovecot.stop()
        gw.stop()
        gw.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


async def mix_result(ours: Server, theirs: Server | None, clients: int, seconds: float,
                     mix: tuple[tuple[str, int], ...], workers: int = 1) -> None:
    mine, took = await run_mix(ours, clients, seconds, mix=mix)
    rate = mine.ops / took
    line = f"RESULT clients={clients} workers={workers} ops_per_s={rate:.1f}"
    if theirs is not None:
        ref, ref_took = await run_mix(theirs, clients, seconds, mix=mix)
        ref_rate = ref.ops / ref_took
        line += f" vs_dovecot={rate / ref_rate:.2f} dovecot_ops_per_s={ref_rate:.1f}"
        note(f"dovecot mean ms per op: {ref.latencies_ms()}")
        if ref.errors:
            line += f" dovecot_errors={ref.errors}"
            note(f"dovecot first error: {ref.first_error}")
    else:
        line += " vs_dovecot=n/a"
    line += f" errors={mine.errors}"
    print(line, flush=True)
    note(f"gateway op counts: {dict(sorted(mine.per_op.items()))}")
    note(f"gateway mean ms per op: {mine.latencies_ms()}")
    if mine.errors:
        note(f"gateway first error: {mine.first_error}")


async def cycle_result(ours: Server, theirs: Server | None, clients: int,
                       seconds: float) -> None:
    mine, took = await run_cycles(ours, clients, seconds)
    rate = mine.ops / took
    line = f"RESULT mix=login_cycle clients={clients} commands_per_s={rate:.1f}"
    if theirs is not None:
        ref, ref_took = await run_cycles(theirs, clients, seconds)
        ref_rate = ref.ops / ref_took
        line += f" vs_dovecot={rate / ref_rate:.2f} dovecot_commands_per_s={ref_rate:.1f}"
        note(f"dovecot cycle mean ms per command: {ref.latencies_ms()}")
        if ref.errors:
            line += f" dovecot_errors={ref.errors}"
            note(f"dovecot first error: {ref.first_error}")
    else:
        line += " vs_dovecot=n/a"
    print(line + f" errors={mine.errors}", flush=True)
    note(f"gateway cycle mean ms per command: {mine.latencies_ms()}")
    if mine.errors:
        note(f"gateway first error: {mine.first_error}")


async def big_result(ours: Server, theirs: Server | None, size: int, repeat: int) -> None:
    folder = BIG_FOLDER.encode()
    mine = [await select_fetch(ours, folder) for _ in range(repeat)]
    ours_s = statistics.median(t for t, _ in mine)
    line = f"RESULT mailbox={size} select_fetch_s={ours_s:.3f}"
    if theirs is not None:
        ref = [await select_fetch(theirs, folder) for _ in range(repeat)]
        ref_s = statistics.median(t for t, _ in ref)
        line += f" vs_dovecot={ref_s / ours_s:.2f} dovecot_s={ref_s:.3f}"
    else:
        line += " vs_dovecot=n/a"
    if mine[0][1] != size:
        line += f" gateway_exists={mine[0][1]}"
    print(line, flush=True)


async def idle_result(gw: BenchServe, ours: Server, count: int, concurrency: int) -> None:
    before = gw.rss_bytes()

    async def deliver() -> None:
        client = await BenchClient.connect(ours.port, ours.ctx)
        try:
            await client.login(ours.user, ours.password)
            await client.append(b"INBOX", (
                b"From: <dr.avis@ch-exemple.mssante.fr>\r\nTo: <demo@mssante.test>\r\n"
                b"Subject: nouveau\r\nMessage-ID: <idle.bench@ch-exemple.mssante.fr>\r\n"
                b"Date: Mon, 6 Jan 2025 10:00:00 +0100\r\n\r\nNouveau message.\r\n"))
        finally:
            await client.close()

    result, during = await idle_storm(ours, count, concurrency=concurrency,
                                      rss=gw.rss_bytes, deliver=deliver)
    rss_mb = (during - before) / (1024 * 1024)
    all_notified = result.notified == result.connected and result.connected == count
    line = (f"RESULT idle_connections={result.connected} rss_mb={rss_mb:.0f} "
            f"all_notified_s={result.notify_s:.2f}")
    if not all_notified:
        line += f" requested={count} notified={result.notified} failed={result.failed}"
    print(line, flush=True)
    note(f"idle: connect+login+select+idle of {result.connected} took {result.connect_s:.1f}s; "
         f"gateway RSS before {before / 2**20:.0f} MB, during {during / 2**20:.0f} MB")
    if result.first_error:
        note(f"idle first error: {result.first_error}")


def print_profile(path: Path) -> None:
    for _ in range(100):
        if path.exists():
            break
        time.sleep(0.1)
    if not path.exists():
        note(f"no profile written at {path}")
        return
    note("gateway profile during the mix, top 25 by own time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(25)
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
