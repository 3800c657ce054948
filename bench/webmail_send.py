"""Sending from the webmail against SMTP submission, same gateway, same load, same run.

Load: ``--clients`` (8) signed-in browsers, each posting the compose form (multipart, a
``--attachment`` KB attachment, 2 local recipients, both notifications asked) in a loop for
``--seconds`` (10); then the same number of SMTP submission sessions (implicit TLS, AUTH
once) sending a message of the same size to the same recipients. Both paths end in the same
pipeline commit (and the webmail also files the Sent copy and the delivered DSN), so the
ratio says what the web layer (TLS + HTTP, streamed multipart, encrypted spool, building
the MIME message) costs.

    PYTHONPATH=. python bench/webmail_send.py [--clients 8] [--seconds 10] [--attachment 100]

Prints ``RESULT webmail_send msgs_per_s=… p50_ms=… p99_ms=… smtp_msgs_per_s=…
smtp_p50_ms=… smtp_p99_ms=… web_vs_smtp=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib  # noqa: E402

from tests.fixtures.gateway import RunningGateway, gateway_settings, running_gateway  # noqa: E402
from tests.web.portal_client import csrf, portal, sign_in  # noqa: E402
from tests.web.webmail_write_client import PORTAL_PASSWORD  # noqa: E402


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def web_load(gw: RunningGateway, sender: str, usual: str, to: list[str],
                   clients: int, seconds: float, attachment: bytes) -> list[float]:
    http = []
    for _ in range(clients):
        client = portal(gw)
        answer = await sign_in(gw, client, sender, PORTAL_PASSWORD, usual)
        assert answer.status_code == 303, answer.text
        http.append(client)
    latencies: list[float] = []

    async def one(client: object) -> None:
        token = csrf((await client.get("/courrier/ecrire")).text)  # type: ignore[attr-defined]
        stop = time.monotonic() + seconds
        n = 0
        while time.monotonic() < stop:
            n += 1
            started = time.perf_counter()
            answer = await client.post(  # type: ignore[attr-defined]
                "/courrier/ecrire",
                data={"csrf": token, "action": "envoyer", "a": ", ".join(to),
                      "objet": f"Banc {n}", "corps": "Bonjour.", "avis_remise": "1",
                      "avis_lecture": "1"},
                files=[("pieces", ("resultats.pdf", attachment, "application/pdf"))])
            assert answer.status_code == 303, answer.text[:300]
            latencies.append((time.perf_counter() - started) * 1000)

    try:
        await asyncio.gather(*(one(c) for c in http))
    finally:
        for client in http:
            await client.aclose()
    return latencies


async def smtp_load(gw: RunningGateway, sender: str, password: str, to: list[str],
                    clients: int, seconds: float, attachment: bytes) -> list[float]:
    latencies: list[float] = []

    async def one() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gw.submissions_port, use_tls=True,
                               tls_context=gw.client_context(), timeout=60)
        await smtp.connect()
        await smtp.login(sender, password)
        stop = time.monotonic() + seconds  # the load starts once logged in, as on the web
        n = 0
        try:
            while time.monotonic() < stop:
                n += 1
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), f"Banc {n}"
                msg["Disposition-Notification-To"] = sender
                msg.set_content("Bonjour.")
                msg.add_attachment(attachment, maintype="application", subtype="pdf",
                                   filename="resultats.pdf")
                started = time.perf_counter()
                await smtp.send_message(msg, rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            await smtp.quit()

    await asyncio.gather(*(one() for _ in range(clients)))
    return latencies


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--attachment", type=int, default=100, help="KB")
    args = parser.parse_args()
    attachment = os.urandom(args.attachment * 1024)
    with tempfile.TemporaryDirectory() as tmp:
        settings = gateway_settings(Path(tmp) / "gw", directory={"enabled": False})
        async with running_gateway(settings) as gw:
            from accounts.portal_password import set_portal_password

            sender, password = await gw.add_mailbox("banc.envoi")
            usual = "banc.envoi@exemple.fr"
            assert gw.gw.db is not None
            await set_portal_password(gw.gw.db, sender, PORTAL_PASSWORD, usual)
            to = [(await gw.add_mailbox(f"banc.dest{i}"))[0] for i in range(2)]
            web = await web_load(gw, sender, usual, to, args.clients, args.seconds,
                                 attachment)
            smtp = await smtp_load(gw, sender, password, to, args.clients, args.seconds,
                                   attachment)
    web_rate, smtp_rate = len(web) / args.seconds, len(smtp) / args.seconds
    print(f"RESULT webmail_send clients={args.clients} attachment_kb={args.attachment} "
          f"msgs_per_s={web_rate:.1f} p50_ms={statistics.median(web):.1f} "
          f"p99_ms={_p(web, 0.99):.1f} smtp_msgs_per_s={smtp_rate:.1f} "
          f"smtp_p50_ms={statistics.median(smtp):.1f} smtp_p99_ms={_p(smtp, 0.99):.1f} "
          f"web_vs_smtp={web_rate / smtp_rate if smtp_rate else 0:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
