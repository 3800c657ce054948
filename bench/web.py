"""Portal logins and autoconfig requests per second at 50 concurrent clients, and how well
the rest of the gateway keeps serving meanwhile (SMTP submission accept rate).

The gateway runs as ``mssante serve`` in its own process (the load generator must not share
its event loop). Load, ``--clients`` (50) concurrent HTTPS clients, each its own TLS
connection kept alive:

- **logins** for ``--seconds`` (20): GET /connexion (CSRF token), POST the portal password
  (argon2id, in the gateway's worker threads), read the 6-digit code from the system
  e-mail the gateway wrote to ``<data dir>/outbox``, GET and POST /connexion/code; a login
  counts when the last answer is the 303 to /compte. Each client signs in as its own account
  (``--clients`` accounts are created first), so every login really verifies a password;
  the per-address argon2 budget of ``[auth]`` is raised for the run (every client is
  127.0.0.1);
- **autoconfig** for ``--seconds``: GET the Thunderbird autoconfig document.

During each phase ``--smtp-clients`` (3) submission sessions send 10 KB messages to the
demo mailbox as fast as they are answered; the same is measured alone first, so the line
says how much of the accept rate the web load leaves. Prints::

    RESULT web_logins_per_s=… autoconfig_per_s=… p99_ms=… autoconfig_p99_ms=…
           smtp_accept_per_s_alone=… smtp_accept_per_s_during_logins=…
           smtp_accept_per_s_during_autoconfig=… argon2=argon2id

(``p99_ms``: of a whole login, password and code.)

With ``--webmail``, the webmail instead: ``--mailboxes`` (5) PER mailboxes are seeded offline
through the pipeline with ``--messages`` (5,000) messages each in INBOX (1–8 KB, as
``bench/imap_seed.py`` makes them), then ``--users`` (50) browsers sign in (password and
code, as above; user ``i`` opens mailbox ``i % --mailboxes``) and for ``--seconds`` each
repeats: open the INBOX list (its first page; one time in four also the next page, by its
link), read one message of the page (which sets \\Seen and records the read proof), and one
time in ten, at random, open the compose form and send a message to another user's mailbox.
``--think`` seconds pass between two pages (0: as fast as answered), and each user starts
after a random wait of up to ``--think`` seconds (a ramp-up: the 50 first lists sent in the
same millisecond are what ``webmail_first_list_after_start`` measures). Then, for reference in
the same run, as many IMAP sessions (implicit TLS) do the same reads: a list
page is ``FETCH`` of 50 messages' ``(UID FLAGS ENVELOPE RFC822.SIZE)``, a reading
``FETCH n BODY[]``. Prints::

    RESULT webmail_pages_per_s=… p50_ms=… p99_ms=… list_p50_ms=… list_p99_ms=…
           read_p99_ms=… send_p99_ms=… users=… messages=… errors=… load_avg=…
    RESULT imap_pages_per_s=… imap_p50_ms=… imap_p99_ms=… imap_list_p99_ms=…
           imap_read_p99_ms=…

    PYTHONPATH=. python bench/web.py --webmail [--users 50] [--messages 5000]
        [--mailboxes 5] [--seconds 20] [--think 0] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib  # noqa: E402
import httpx  # noqa: E402

from accounts.mailboxes import add_mailbox  # noqa: E402
from accounts.portal_password import set_portal_password  # noqa: E402
from bench.imap_client import BenchClient, ImapError, client_context  # noqa: E402
from bench.imap_seed import make_message, seed_gateway  # noqa: E402
from bench.pyspy import PySpy  # noqa: E402
from storage import accounts as account_rows  # noqa: E402
from storage import credentials  # noqa: E402
from storage.database import open_database  # noqa: E402
from tests.fixtures.gateway import ServeProcess  # noqa: E402

PASSWORD = "Tournesol-58!"  # noqa: S105 - a benchmark account's password
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CODE = re.compile(rb"^Subject: [^\r\n]*?(\d{6})", re.MULTILINE)
TO = re.compile(rb"^To: ([^\r\n]+)", re.MULTILINE)


@dataclass
class Measure:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def rate(self, seconds: float) -> float:
        return len(self.latencies) / seconds

    def p99(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


class Codes:
    """The codes the gateway wrote to the outbox, by usual address (new files only)."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.seen: set[str] = set()
        self.latest: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def _scan(self) -> None:
        if not self.outbox.is_dir():
            return
        for path in self.outbox.iterdir():
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            raw = path.read_bytes()
            to, code = TO.search(raw), CODE.search(raw)
            if to and code:
                self.latest[to.group(1).decode().strip()] = code.group(1).decode()

    async def wait(self, usual: str, within: float = 30.0) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            async with self._lock:
                code = self.latest.pop(usual, None)
                if code is None:
                    await asyncio.to_thread(self._scan)
                    code = self.latest.pop(usual, None)
            if code is not None:
                return code
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no code for {usual}")


async def prepare(proc: ServeProcess, count: int) -> list[tuple[str, str]]:
    """``count`` PER mailboxes with a portal password: (address, usual address)."""
    db = await open_database(proc.settings(), may_create_key=False)
    out = []
    try:
        for n in range(count):
            address = f"bench.web{n}@{proc.settings().primary_domain}"
            usual = f"bench.web{n}@exemple.fr"
            await add_mailbox(db, address, type="PER", name=f"Dr Bench Web{n}",
                              idnat=f"8{n + 10**10:011d}", actor="bench")
            await set_portal_password(db, address, PASSWORD, usual)
            out.append((address, usual))
        async with db.read() as conn:  # the hashes the run verifies are argon2id
            account = await account_rows.get_by_address(conn, out[0][0])
            assert account is not None
            hashes = await credentials.list_for_account(conn, account.id, kind="password")
        assert hashes and all((c.secret_hash or "").startswith("$argon2id$") for c in hashes)
    finally:
        await db.close()
    return out


def client(proc: ServeProcess) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(proc.ca_file))
    ctx.check_hostname = False
    port = proc.ports["MSSANTE_WEB_PORT"]
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=ctx, timeout=60)


async def sign_in(http: httpx.AsyncClient, codes: Codes, address: str, usual: str) -> None:
    """The portal login: password, then the code the gateway e-mailed."""
    page = await http.get("/connexion")
    token = CSRF.search(page.text)
    assert token is not None, page.status_code
    answer = await http.post("/connexion", data={
        "csrf": token.group(1), "email": address, "password": PASSWORD})
    assert answer.status_code == 303, answer.status_code
    code = await codes.wait(usual)
    page = await http.get("/connexion/code")
    token = CSRF.search(page.text)
    assert token is not None, page.status_code
    answer = await http.post("/connexion/code", data={"csrf": token.group(1), "code": code})
    assert answer.headers.get("location") == "/compte", answer.status_code


async def login_loop(proc: ServeProcess, codes: Codes, address: str, usual: str,
                     until: float, result: Measure) -> None:
    async with client(proc) as http:
        while time.monotonic() < until:
            http.cookies.clear()
            start = time.monotonic()
            try:
                await sign_in(http, codes, address, usual)
            except (AssertionError, httpx.HTTPError, TimeoutError) as exc:
                result.errors += 1
                result.reasons[type(exc).__name__] += 1
                continue
            result.latencies.append(time.monotonic() - start)


async def autoconfig_loop(proc: ServeProcess, address: str, until: float,
                          result: Measure) -> None:
    async with client(proc) as http:
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                answer = await http.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                                        params={"emailaddress": address})
                assert answer.status_code == 200 and b"<incomingServer" in answer.content
            except (AssertionError, httpx.HTTPError):
                result.errors += 1
                continue
            result.latencies.append(time.monotonic() - start)


async def smtp_loop(proc: ServeProcess, until: float, accepted: list[int]) -> None:
    ctx = ssl.create_default_context(cafile=str(proc.ca_file))
    ctx.check_hostname = False
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=proc.submission_port, timeout=60,
                           start_tls=True, tls_context=ctx)
    await smtp.connect()
    await smtp.login(proc.demo_address, proc.demo_password)
    body = (f"From: <{proc.demo_address}>\r\nTo: <{proc.demo_address}>\r\n"
            "Subject: bench web\r\n\r\n").encode() + (b"x" * 76 + b"\r\n") * 130
    n = 0
    try:
        while time.monotonic() < until:
            n += 1
            msg = body.replace(b"Subject: bench web",
                               f"Subject: bench web\r\nMessage-ID: <w{n}.{time.time_ns()}"
                               "@bench.test>".encode())
            errors, _ = await smtp.sendmail(proc.demo_address, [proc.demo_address], msg)
            if not errors:
                accepted[0] += 1
    finally:
        await smtp.quit()


async def phase(seconds: float, smtp_clients: int, load: list[asyncio.Task[None]] | None,
                proc: ServeProcess) -> float:
    """Runs the SMTP senders beside ``load``; the SMTP accept rate."""
    accepted = [0]
    until = time.monotonic() + seconds
    senders = [asyncio.create_task(smtp_loop(proc, until, accepted))
               for _ in range(smtp_clients)]
    await asyncio.gather(*senders, *(load or []))
    return accepted[0] / seconds


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        proc = ServeProcess(Path(tmp) / "gw", env={
            "MSSANTE_DIRECTORY_ENABLED": "false",
            "MSSANTE_AUTH_ADDRESS_HASH_BUDGET": "1000000",
            "MSSANTE_AUTH_ADDRESS_DELAY_AFTER_FAILURES": "1000000",
            "MSSANTE_AUTH_ADDRESS_LOCK_AFTER_FAILURES": "1000000",
        })
        proc.start(timeout=120)
        try:
            accounts = await prepare(proc, args.clients)
            codes = Codes(proc.data_dir / "outbox")
            alone = await phase(args.seconds, args.smtp_clients, None, proc)

            logins = Measure()
            until = time.monotonic() + args.seconds
            tasks = [asyncio.create_task(login_loop(proc, codes, a, u, until, logins))
                     for a, u in accounts]
            during_logins = await phase(args.seconds, args.smtp_clients, tasks, proc)

            auto = Measure()
            until = time.monotonic() + args.seconds
            tasks = [asyncio.create_task(autoconfig_loop(proc, accounts[0][0], until, auto))
                     for _ in range(args.clients)]
            during_auto = await phase(args.seconds, args.smtp_clients, tasks, proc)
        finally:
            proc.stop()
    print(f"# logins: {len(logins.latencies)} ok, {logins.errors} errors "
          f"{dict(logins.reasons)}; autoconfig: "
          f"{len(auto.latencies)} ok, {auto.errors} errors", file=sys.stderr)
    print(f"RESULT web_logins_per_s={logins.rate(args.seconds):.1f} "
          f"autoconfig_per_s={auto.rate(args.seconds):.1f} p99_ms={logins.p99():.0f} "
          f"autoconfig_p99_ms={auto.p99():.0f} smtp_accept_per_s_alone={alone:.1f} "
          f"smtp_accept_per_s_during_logins={during_logins:.1f} "
          f"smtp_accept_per_s_during_autoconfig={during_auto:.1f} "
          f"smtp_kept_during_logins={during_logins / alone if alone else 0:.2f} "
          f"argon2=argon2id")


# -- the webmail ---------------------------------------------------------------------------

MESSAGE_LINK = re.compile(r'<td class="subject"><a href="(/courrier/dossier/\d+/message/\d+)"')
NEXT_PAGE = re.compile(r'<a rel="next" href="([^"]+)"')


@dataclass
class Timings:
    """Latencies in seconds by kind of page."""

    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, seconds: float) -> None:
        self.by_kind.setdefault(kind, []).append(seconds)

    def all(self) -> list[float]:
        return [t for times in self.by_kind.values() for t in times]

    def count(self) -> int:
        return sum(len(t) for t in self.by_kind.values())


def quantile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def prepare_mailboxes(proc: ServeProcess, count: int) -> list[tuple[str, str, str]]:
    """``count`` PER mailboxes with a portal password: (address, usual address, app
    password for IMAP)."""
    db = await open_database(proc.settings(), may_create_key=False)
    out = []
    try:
        for n in range(count):
            address = f"bench.wm{n}@{proc.settings().primary_domain}"
            usual = f"bench.wm{n}@exemple.fr"
            created = await add_mailbox(db, address, type="PER", name=f"Dr Bench Wm{n}",
                                        idnat=f"8{n + 2 * 10**10:011d}", actor="bench")
            await set_portal_password(db, address, PASSWORD, usual)
            out.append((address, usual, created.app_password))
    finally:
        await db.close()
    return out


async def timed(timings: Timings, kind: str, request: Awaitable[httpx.Response],
                status: int = 200) -> httpx.Response:
    started = time.monotonic()
    answer = await request
    elapsed = time.monotonic() - started
    assert answer.status_code == status, (kind, answer.status_code, answer.text[:200])
    timings.add(kind, elapsed)
    return answer


async def think(rnd: random.Random, seconds: float) -> None:
    """A user's pause between two pages (±50 %, so that users do not move in step)."""
    if seconds > 0:
        await asyncio.sleep(rnd.uniform(0.5, 1.5) * seconds)


async def webmail_user(proc: ServeProcess, http: httpx.AsyncClient, inbox: str,
                       peers: list[str], until: float, timings: Timings, seed: int,
                       pause: float = 0.0) -> None:
    rnd = random.Random(seed)
    # Users arrive spread over one think time, as people do: started together, the first
    # timed list of all 50 queued behind one another in the same millisecond, one sample
    # in ten of a 20 s run (the all-at-once burst is the cold first list, reported apart).
    await asyncio.sleep(rnd.uniform(0, pause))
    n = 0
    while time.monotonic() < until:
        n += 1
        try:
            page = await timed(timings, "list", http.get(inbox))
            await think(rnd, pause)
            links = MESSAGE_LINK.findall(page.text)
            following = NEXT_PAGE.search(page.text)
            if following and rnd.random() < 0.25:
                older = await timed(timings, "list", http.get(
                    following.group(1).replace("&amp;", "&")))
                links = MESSAGE_LINK.findall(older.text) or links
                await think(rnd, pause)
            assert links, "an empty list page"
            await timed(timings, "read", http.get(rnd.choice(links)))
            await think(rnd, pause)
            if rnd.random() < 0.1:
                form = await timed(timings, "compose", http.get("/courrier/ecrire"))
                token = CSRF.search(form.text)
                assert token is not None, "no CSRF token in the compose form"
                await think(rnd, pause)
                await timed(timings, "send", http.post("/courrier/ecrire", data={
                    "csrf": token.group(1), "action": "envoyer", "a": rnd.choice(peers),
                    "objet": f"Banc webmail {seed}.{n}", "corps": "Bonjour,\r\nci-joint.\r\n",
                }), status=303)
                await think(rnd, pause)
        except (AssertionError, httpx.HTTPError) as exc:
            timings.errors += 1
            timings.reasons[f"{type(exc).__name__} {str(exc)[:60]}"] += 1


async def imap_user(proc: ServeProcess, address: str, password: str, until: float,
                    timings: Timings, seed: int, pause: float = 0.0) -> None:
    rnd = random.Random(seed)
    imap = await BenchClient.connect(proc.ports["MSSANTE_IMAP_TLS_PORT"],
                                     client_context(str(proc.ca_file)))
    try:
        await imap.login(address, password)
        await imap.command(b"SELECT INBOX")
        while time.monotonic() < until:
            try:
                pages = [max(1, imap.exists - 49)]
                if rnd.random() < 0.25 and imap.exists > 50:
                    pages.append(max(1, imap.exists - 99))
                for first in pages:
                    started = time.monotonic()
                    await imap.command(b"FETCH %d:%d (UID FLAGS ENVELOPE RFC822.SIZE)"
                                       % (first, min(imap.exists, first + 49)))
                    timings.add("list", time.monotonic() - started)
                    await think(rnd, pause)
                seq = rnd.randint(pages[-1], min(imap.exists, pages[-1] + 49))
                started = time.monotonic()
                await imap.command(b"FETCH %d BODY[]" % seq)
                timings.add("read", time.monotonic() - started)
                await think(rnd, pause)
            except ImapError as exc:
                timings.errors += 1
                timings.reasons[str(exc)[:60]] += 1
    finally:
        await imap.close()


async def webmail_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-webmail-") as tmp:
        proc = ServeProcess(Path(tmp) / "gw", env={
            "MSSANTE_DIRECTORY_ENABLED": "false",
            "MSSANTE_AUTH_ADDRESS_HASH_BUDGET": "1000000",
            "MSSANTE_AUTH_ADDRESS_DELAY_AFTER_FAILURES": "1000000",
            "MSSANTE_AUTH_ADDRESS_LOCK_AFTER_FAILURES": "1000000",
        })
        proc.start(timeout=120)
        try:
            boxes = await prepare_mailboxes(proc, args.mailboxes)
            proc.stop()
            seeded = 0.0
            for address, _usual, _password in boxes:
                seeded += await seed_gateway(proc.settings(), address, {"INBOX": [
                    make_message(n, small=False, user=address)
                    for n in range(1, args.messages + 1)]})
            print(f"# seeded {args.mailboxes} × {args.messages} messages in {seeded:.0f}s",
                  file=sys.stderr, flush=True)
            proc.start(timeout=120)
            codes = Codes(proc.data_dir / "outbox")
            users = [boxes[i % len(boxes)] for i in range(args.users)]
            clients = [client(proc) for _ in users]
            inboxes = []
            for http, (address, usual, _p) in zip(clients, users, strict=True):
                await sign_in(http, codes, address, usual)
                home = await http.get("/courrier/")
                assert home.status_code == 303, home.status_code
                inboxes.append(home.headers["location"])
            addresses = [b[0] for b in boxes]
            # Untimed in the steady-state figures, as the IMAP clients' SELECT below: each
            # user's first list, all at once just after the start (the folder index builds
            # each box's date order then). Reported apart as the cold start.
            cold = Timings()
            await asyncio.gather(*(timed(cold, "list", http.get(inbox))
                                   for http, inbox in zip(clients, inboxes, strict=True)))
            web = Timings()
            load_before = os.getloadavg()[0]
            sampler = PySpy(args.py_spy, proc.process.pid) if args.py_spy else None
            until = time.monotonic() + args.seconds
            await asyncio.gather(*(
                webmail_user(proc, http, inbox, [a for a in addresses if a != user[0]]
                             or addresses, until, web, i, args.think)
                for i, (http, inbox, user) in enumerate(zip(clients, inboxes, users,
                                                            strict=True))))
            load_web = os.getloadavg()[0]
            if sampler is not None:
                sampler.stop()
                print("\n".join(sampler.top(25)), file=sys.stderr)
            for http in clients:
                await http.aclose()
            imap = Timings()
            until = time.monotonic() + args.seconds
            await asyncio.gather(*(imap_user(proc, address, password, until, imap, i,
                                             args.think)
                                   for i, (address, _u, password) in enumerate(users)))
        finally:
            proc.stop()
    print(f"# webmail: {web.count()} pages, {web.errors} errors {dict(web.reasons)}; "
          f"IMAP: {imap.count()} commands, {imap.errors} errors {dict(imap.reasons)}; "
          f"load average {load_before:.2f} before, {load_web:.2f} after the webmail phase",
          file=sys.stderr)
    pages = web.all()
    print(f"RESULT webmail_pages_per_s={len(pages) / args.seconds:.1f} "
          f"p50_ms={quantile_ms(pages, 0.5):.0f} p99_ms={quantile_ms(pages, 0.99):.0f} "
          f"list_p50_ms={quantile_ms(web.by_kind.get('list', []), 0.5):.0f} "
          f"list_p99_ms={quantile_ms(web.by_kind.get('list', []), 0.99):.0f} "
          f"read_p99_ms={quantile_ms(web.by_kind.get('read', []), 0.99):.0f} "
          f"send_p99_ms={quantile_ms(web.by_kind.get('send', []), 0.99):.0f} "
          f"users={args.users} mailboxes={args.mailboxes} messages={args.messages} "
          f"think_s={args.think:g} "
          f"errors={web.errors} load_avg={load_web:.2f}")
    first = cold.all()
    print(f"RESULT webmail_first_list_after_start p50_ms={quantile_ms(first, 0.5):.0f} "
          f"max_ms={1000 * max(first, default=0.0):.0f} users={args.users}")
    reads = imap.all()
    print(f"RESULT imap_pages_per_s={len(reads) / args.seconds:.1f} "
          f"imap_p50_ms={quantile_ms(reads, 0.5):.0f} imap_p99_ms={quantile_ms(reads, 0.99):.0f} "
          f"imap_list_p99_ms={quantile_ms(imap.by_kind.get('list', []), 0.99):.0f} "
          f"imap_read_p99_ms={quantile_ms(imap.by_kind.get('read', []), 0.99):.0f} "
          f"errors={imap.errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--smtp-clients", type=int, default=3)
    parser.add_argument("--webmail", action="store_true",
                        help="measure the webmail (list, read, send) and IMAP reads instead")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--mailboxes", type=int, default=5)
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds a webmail or IMAP user waits between two pages")
    parser.add_argument("--py-spy", type=Path, default=None,
                        help="sample the gateway during the webmail phase into this "
                             "collapsed-stacks file and print the hottest frames")
    args = parser.parse_args()
    asyncio.run(webmail_async(args) if args.webmail else main_async(args))


if __name__ == "__main__":
    main()
