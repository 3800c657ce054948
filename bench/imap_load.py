"""The three IMAP loads of the benchmark, identical for every server they are pointed at.

1. :func:`run_mix` — N clients, each a Thunderbird-like session on INBOX doing a weighted
   mix of SELECT, ``UID FETCH 1:* (FLAGS)``, header FETCH of a page, whole-body FETCH,
   STORE, SEARCH, APPEND + UID EXPUNGE of what it appended, and a short IDLE; counted in
   completed commands per second.
2. :func:`select_fetch` — SELECT then ``UID FETCH 1:* (UID FLAGS)`` on a big folder: the
   first thing a client does on a mailbox it resynchronises.
3. :func:`idle_storm` — many connections in IDLE; memory of the server and the time until
   every one of them has been told of one new message.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.imap_client import BenchClient, ImapError


@dataclass
class Server:
    """Where a load goes: implicit-TLS port, credentials, a client TLS context."""

    name: str
    port: int
    user: str
    password: str
    ctx: ssl.SSLContext


@dataclass
class MixResult:
    ops: int = 0
    errors: int = 0
    per_op: dict[str, int] = field(default_factory=dict)
    time_per_op: dict[str, float] = field(default_factory=dict)
    first_error: str = ""

    def count(self, name: str, seconds: float = 0.0) -> None:
        self.ops += 1
        self.per_op[name] = self.per_op.get(name, 0) + 1
        self.time_per_op[name] = self.time_per_op.get(name, 0.0) + seconds

    def latencies_ms(self) -> dict[str, float]:
        """Mean latency of each kind of operation, in milliseconds."""
        return {name: round(1000 * self.time_per_op[name] / n, 1)
                for name, n in sorted(self.per_op.items())}


# (operation, weight): a reading client mostly pages through headers and opens messages.
MIX: tuple[tuple[str, int], ...] = (
    ("select", 1),
    ("fetch_flags_all", 1),
    ("fetch_headers", 5),
    ("fetch_body", 5),
    ("store", 4),
    ("search", 2),
    ("append_expunge", 1),
    ("idle", 1),
)

HEADER_PAGE = 50


def _appended(n: int) -> bytes:
    return (f"From: <bench@ch-exemple.mssante.fr>\r\nTo: <demo@mssante.test>\r\n"
            f"Subject: brouillon {n}\r\nMessage-ID: <append.{n}.{time.time_ns()}@bench>\r\n"
            f"Date: Mon, 6 Jan 2025 10:00:00 +0100\r\n\r\nBrouillon {n}.\r\n").encode()


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """``name=weight,…`` (names from :data:`MIX`) — to isolate one kind of operation."""
    known = {name for name, _ in MIX}
    out = []
    for item in text.split(","):
        name, _, weight = item.partition("=")
        if name.strip() not in known or not weight.strip().isdigit():
            raise ValueError(f"bad mix item {item!r}: use name=weight with name among "
                             + ", ".join(sorted(known)))
        out.append((name.strip(), int(weight)))
    return tuple(out)


async def _mix_client(server: Server, seed: int, until: float, result: MixResult,
                      mailbox: bytes, mix: tuple[tuple[str, int], ...]) -> None:
    rnd = random.Random(seed)
    names = [name for name, _ in mix]
    weights = [w for _, w in mix]
    client: BenchClient | None = None
    try:
        client = await BenchClient.connect(server.port, server.ctx)
        await client.login(server.user, server.password)
        await client.command(b"SELECT " + mailbox)
        while time.monotonic() < until:
            op = rnd.choices(names, weights)[0]
            t0 = time.monotonic()
            n = max(1, client.exists - 5)  # margin: others may expunge meanwhile
            if op == "select":
                await client.command(b"SELECT " + mailbox)
            elif op == "fetch_flags_all":
                await client.command(b"UID FETCH 1:* (FLAGS)")
            elif op == "fetch_headers":
                first = rnd.randint(1, max(1, n - HEADER_PAGE))
                await client.command(
                    b"FETCH %d:%d (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS "
                    b"(FROM TO SUBJECT DATE MESSAGE-ID)])" % (first, min(n, first + HEADER_PAGE)))
            elif op == "fetch_body":
                await client.command(b"FETCH %d (FLAGS BODY.PEEK[])" % rnd.randint(1, n))
            elif op == "store":
                sign = b"+" if rnd.random() < 0.5 else b"-"
                await client.command(
                    b"STORE %d %sFLAGS (\\Flagged)" % (rnd.randint(1, n), sign))
            elif op == "search":
                if rnd.random() < 0.5:
                    await client.command(b"SEARCH UNSEEN FLAGGED")
                else:
                    await client.command(b'SEARCH SUBJECT "Avis" FROM "cardiologie"')
            elif op == "append_expunge":
                uid = await client.append(mailbox, _appended(seed * 100000 + result.ops),
                                          b"\\Seen")
                result.count("append", time.monotonic() - t0)
                if uid:
                    t0 = time.monotonic()
                    await client.command(b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
                    result.count("store", time.monotonic() - t0)
                    t0 = time.monotonic()
                    await client.command(b"UID EXPUNGE %d" % uid)
                    op = "expunge"
                else:
                    continue
            elif op == "idle":
                await client.start_idle()
                await asyncio.sleep(0.05)
                await client.idle_done()
            result.count(op, time.monotonic() - t0)
    except (ImapError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        result.errors += 1
        if not result.first_error:
            result.first_error = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            await client.close()


async def run_mix(server: Server, clients: int, seconds: float, mailbox: bytes = b"INBOX",
                  mix: tuple[tuple[str, int], ...] = MIX) -> tuple[MixResult, float]:
    """Runs the mix; (result, measured seconds)."""
    result = MixResult()
    start = time.monotonic()
    until = start + seconds
    await asyncio.gather(*(_mix_client(server, 1000 + i, until, result, mailbox, mix)
                           for i in range(clients)))
    return result, time.monotonic() - start


async def select_fetch(server: Server, mailbox: bytes) -> tuple[float, int]:
    """SELECT + ``UID FETCH 1:* (UID FLAGS)``; (seconds, messages seen in EXISTS)."""
    client = await BenchClient.connect(server.port, server.ctx, limit=1 << 22)
    try:
        await client.login(server.user, server.password)
        start = time.monotonic()
        await client.command(b"SELECT " + mailbox)
        await client.command(b"UID FETCH 1:* (UID FLAGS)")
        elapsed = time.monotonic() - start
        await client.command(b"CLOSE")
        return elapsed, client.exists
    finally:
        await client.close()


@dataclass
class IdleResult:
    connected: int
    failed: int
    notified: int
    notify_s: float
    connect_s: float
    first_error: str


async def idle_storm(server: Server, count: int, *, concurrency: int,
                     rss: Callable[[], int], deliver: Callable[[], object],
                     notify_timeout: float = 60.0) -> tuple[IdleResult, int]:
    """Opens ``count`` connections in IDLE on INBOX, then has one message delivered.

    Returns the result and the server RSS (bytes) measured while all connections idle.
    """
    gate = asyncio.Semaphore(concurrency)
    clients: list[BenchClient] = []
    errors: list[str] = []

    async def open_one() -> None:
        async with gate:
            try:
                client = await BenchClient.connect(server.port, server.ctx, limit=4096)
                await client.login(server.user, server.password)
                await client.command(b"SELECT INBOX")
                await client.start_idle()
                clients.append(client)
            except (TimeoutError, ImapError, OSError, ssl.SSLError,
                    asyncio.IncompleteReadError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    start = time.monotonic()
    await asyncio.gather(*(open_one() for _ in range(count)))
    connect_s = time.monotonic() - start
    await asyncio.sleep(1.0)  # let the server settle (buffers, GC) before reading its RSS
    resident = rss()
    notified = 0
    t0 = time.monotonic()
    waits = [asyncio.ensure_future(c.wait_exists()) for c in clients]
    await asyncio.sleep(0)
    maybe = deliver()
    if asyncio.iscoroutine(maybe):
        await maybe
    done, pending = await asyncio.wait(waits, timeout=notify_timeout)
    notify_s = time.monotonic() - t0
    for task in done:
        if task.exception() is None:
            notified += 1
    for task in pending:
        task.cancel()
    gate2 = asyncio.Semaphore(concurrency * 4)

    async def close_one(c: BenchClient) -> None:
        async with gate2:
            await c.close()

    await asyncio.gather(*(close_one(c) for c in clients))
    return IdleResult(len(clients), len(errors), notified, notify_s, connect_s,
                      errors[0] if errors else ""), resident


# -- login per cycle -------------------------------------------------------------------------
# Issue 15's client mix: real clients (Thunderbird's several connections, phones that
# reconnect, imapsync and mbsync runs) log in again and again; each cycle is one connection:
# LOGIN → LIST or STATUS (½) → SELECT → FETCH flags and envelopes → FETCH a whole body →
# COPY (⅓) → STORE flags (½) → APPEND → STORE \Deleted → UID EXPUNGE → LOGOUT.
CYCLE_COPY_TO = b"Archives"


async def _cycle_client(server: Server, seed: int, until: float, result: MixResult,
                        mailbox: bytes) -> None:
    rnd = random.Random(seed)
    cycle = 0
    while time.monotonic() < until:
        cycle += 1
        client: BenchClient | None = None
        try:
            t0 = time.monotonic()
            client = await BenchClient.connect(server.port, server.ctx)
            await client.login(server.user, server.password)
            result.count("connect_login", time.monotonic() - t0)

            async def timed(name: str, command: bytes, c: BenchClient = client) -> None:
                start = time.monotonic()
                await c.command(command)
                result.count(name, time.monotonic() - start)

            if rnd.random() < 0.5:
                if rnd.random() < 0.5:
                    await timed("list", b'LIST "" "*"')
                else:
                    await timed("status", b"STATUS %s (MESSAGES UNSEEN UIDNEXT)" % mailbox)
            await timed("select", b"SELECT " + mailbox)
            n = max(1, client.exists - 5)
            first = rnd.randint(1, max(1, n - HEADER_PAGE))
            await timed("fetch_envelopes", b"FETCH %d:%d (UID FLAGS ENVELOPE RFC822.SIZE)"
                        % (first, min(n, first + HEADER_PAGE)))
            await timed("fetch_body", b"FETCH %d (BODY.PEEK[])" % rnd.randint(1, n))
            if rnd.random() < 1 / 3:
                await timed("copy", b"COPY %d %s" % (rnd.randint(1, n), CYCLE_COPY_TO))
            if rnd.random() < 0.5:
                sign = b"+" if rnd.random() < 0.5 else b"-"
                await timed("store", b"STORE %d %sFLAGS (\\Flagged)" % (rnd.randint(1, n), sign))
            start = time.monotonic()
            uid = await client.append(mailbox, _appended(seed * 100000 + cycle), b"\\Seen")
            result.count("append", time.monotonic() - start)
            if uid:
                await timed("store", b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
                await timed("expunge", b"UID EXPUNGE %d" % uid)
            start = time.monotonic()
            done, client = client, None
            await done.close()  # LOGOUT: the server's BYE, then its tagged OK
            result.count("logout", time.monotonic() - start)
        except (ImapError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            result.errors += 1
            if not result.first_error:
                result.first_error = f"{type(exc).__name__}: {exc}"
        finally:
            if client is not None:
                await client.close()


async def prepare_cycle(server: Server) -> None:
    """The COPY target folder exists on both servers (CREATE; "already exists" is fine)."""
    client = await BenchClient.connect(server.port, server.ctx)
    try:
        await client.login(server.user, server.password)
        await client.command(b"CREATE " + CYCLE_COPY_TO, check=False)
    finally:
        await client.close()


async def run_cycles(server: Server, clients: int, seconds: float,
                     mailbox: bytes = b"INBOX") -> tuple[MixResult, float]:
    """The login-per-cycle mix; (result counting every command, measured seconds)."""
    await prepare_cycle(server)
    result = MixResult()
    start = time.monotonic()
    until = start + seconds
    await asyncio.gather(*(_cycle_client(server, 2000 + i, until, result, mailbox)
                           for i in range(clients)))
    return result, time.monotonic() - start
