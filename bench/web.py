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
"""

from __future__ import annotations

import argparse
import asyncio
import re
import ssl
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib  # noqa: E402
import httpx  # noqa: E402

from accounts.mailboxes import add_mailbox  # noqa: E402
from accounts.portal_password import set_portal_password  # noqa: E402
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


async def login_loop(proc: ServeProcess, codes: Codes, address: str, usual: str,
                     until: float, result: Measure) -> None:
    async with client(proc) as http:
        while time.monotonic() < until:
            http.cookies.clear()
            start = time.monotonic()
            try:
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
                answer = await http.post("/connexion/code", data={
                    "csrf": token.group(1), "code": code})
                assert answer.headers.get("location") == "/compte", answer.status_code
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--smtp-clients", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
