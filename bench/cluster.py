"""Throughput of one and of two gateway nodes on one PostgreSQL behind HAProxy.

Both runs use the same machine, the same private PostgreSQL cluster and the same balancer
(HAProxy in TCP mode, PROXY protocol v2, round robin). Load, for ``--seconds`` each:

- SMTP: ``--clients`` concurrent clients, each sending one 10 KB message per connection
  over implicit TLS with AUTH PLAIN (a hospital MTA or a phone reconnecting);
- IMAP: ``--clients`` concurrent clients, each looping LOGIN, SELECT INBOX, FETCH 1:* FLAGS,
  LOGOUT over implicit TLS.

Prints::

    RESULT nodes=1 smtp_msgs_per_s=… imap_cycles_per_s=… errors=…
    RESULT nodes=2 smtp_msgs_per_s=… imap_cycles_per_s=… errors=…
    RESULT scaling_smtp=… scaling_imap=…

On a 2-core machine two nodes share the same two cores (and PostgreSQL and HAProxy run
there too), so the second node adds little: the figure says how much the shared database
and the balancer cost, not how a cluster of separate machines scales.
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

import aiosmtplib  # noqa: E402

from tests.fixtures.gateway import ServeProcess  # noqa: E402
from tests.fixtures.haproxy import haproxy  # noqa: E402
from tests.fixtures.postgres import private_cluster  # noqa: E402

BODY = ("x" * 76 + "\r\n") * 130  # about 10 KB


def node(root: Path, url: str, first: Path | None = None) -> ServeProcess:
    root.mkdir(parents=True)
    if first is not None:
        shutil.copy2(first / "master.key", root / "master.key")
        shutil.copytree(first / "pki", root / "pki")
    return ServeProcess(root, env={
        "MSSANTE_DATABASE_URL": url, "MSSANTE_DIRECTORY_ENABLED": "false",
        "MSSANTE_GATEWAY_PROXY_PROTOCOL_FROM": "127.0.0.1"})


async def smtp_client(port: int, ctx: ssl.SSLContext, login: tuple[str, str], until: float,
                      counts: list[int]) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        raw = (f"From: {login[0]}\r\nTo: {login[0]}\r\nSubject: bench {n}\r\n\r\n{BODY}").encode()
        try:
            await aiosmtplib.send(raw, sender=login[0], recipients=[login[0]],
                                  hostname="127.0.0.1", port=port, use_tls=True,
                                  tls_context=ctx, username=login[0], password=login[1],
                                  timeout=30)
            counts[0] += 1
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            counts[1] += 1


async def imap_client(port: int, ctx: ssl.SSLContext, login: tuple[str, str], until: float,
                      counts: list[int]) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
            await reader.readline()
            for tag, command in (("a", f'LOGIN "{login[0]}" "{login[1]}"'),
                                 ("b", "SELECT INBOX"), ("c", "FETCH 1:* (FLAGS)"),
                                 ("d", "LOGOUT")):
                writer.write(f"{tag} {command}\r\n".encode())
                while True:
                    line = await reader.readline()
                    if not line:
                        raise ConnectionError("closed")
                    if line.startswith(f"{tag} ".encode()):
                        if not line.startswith(f"{tag} OK".encode()):
                            raise ConnectionError(line.decode(errors="replace"))
                        break
            writer.close()
            counts[0] += 1
        except (OSError, ConnectionError, ssl.SSLError):
            counts[1] += 1


async def measure(ports: dict[str, int], ctx: ssl.SSLContext, login: tuple[str, str],
                  clients: int, seconds: float) -> tuple[float, float, int]:
    smtp = [0, 0]
    until = time.monotonic() + seconds
    await asyncio.gather(*(smtp_client(ports["submissions"], ctx, login, until, smtp)
                           for _ in range(clients)))
    imap = [0, 0]
    until = time.monotonic() + seconds
    await asyncio.gather(*(imap_client(ports["imaps"], ctx, login, until, imap)
                           for _ in range(clients)))
    return smtp[0] / seconds, imap[0] / seconds, smtp[1] + imap[1]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds, not counted")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    nodes: list[ServeProcess] = []
    try:
        with private_cluster() as cluster:
            url = cluster.url(await cluster.create_database())
            nodes.append(node(work / "n1", url))
            await asyncio.to_thread(nodes[0].start, 60)
            nodes.append(node(work / "n2", url, first=work / "n1"))
            await asyncio.to_thread(nodes[1].start, 60)
            login = (nodes[0].demo_address, nodes[0].demo_password)
            ctx = ssl.create_default_context(cafile=str(nodes[0].ca_file))
            rates: dict[int, tuple[float, float, int]] = {}
            for count in (1, 2):
                backends = {name: [n.ports[var] for n in nodes[:count]] for name, var in (
                    ("submissions", "MSSANTE_SMTP_SUBMISSIONS_PORT"),
                    ("imaps", "MSSANTE_IMAP_TLS_PORT"))}
                with haproxy(work / f"haproxy{count}", backends) as balancer:
                    # Warm-up, not counted: first TLS contexts, connection pools, caches.
                    await measure(balancer.ports, ctx, login, args.clients, args.warmup)
                    rates[count] = await measure(balancer.ports, ctx, login, args.clients,
                                                 args.seconds)
                smtp, imap, errors = rates[count]
                print(f"RESULT nodes={count} smtp_msgs_per_s={smtp:.1f} "
                      f"imap_cycles_per_s={imap:.1f} errors={errors}", flush=True)
            print(f"RESULT scaling_smtp={rates[2][0] / max(rates[1][0], 1e-9):.2f} "
                  f"scaling_imap={rates[2][1] / max(rates[1][1], 1e-9):.2f}", flush=True)
    finally:
        for n in nodes:
            n.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
