"""``mssante status``: is the gateway serving, and does anything need an operator's attention?

It looks from outside, as a monitoring script would: each configured listener is connected
to (and the implicit-TLS ones complete a handshake), ``/readyz`` is asked, the database is
read for the queue and the proof ledger, and the certificate, anchor and CRL files are read
for their expiry dates. Exit code 0: everything is fine; 1: at least one line says
``attention`` (a listener down, mail waiting longer than ``delay_warning_hours``, a ledger
not signed for 15 minutes, a certificate or CRL expiring within 14 days, a trust space not
refreshed for two days); 2: the configuration cannot be read.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata

import click

from config import Settings
from gateway.context import EXIT_FAILURE, CliContext, pass_cli, run_command
from gateway.startup import open_storage
from storage.stats import read_stats
from trustspace.expiry import tls_expiries
from trustspace.refresh import last_good_path

CONNECT_TIMEOUT = 3.0
CERT_WARNING = timedelta(days=14)
CHECKPOINT_WARNING = timedelta(minutes=15)
TRUST_WARNING = timedelta(days=2)


@dataclass(frozen=True)
class Line:
    check: str
    state: str  # "ok", "attention" or "info"
    detail: str


def _listeners(settings: Settings) -> list[tuple[str, int, bool]]:
    """(label, port, implicit TLS) of every listener the configuration turns on."""
    out = [
        ("SMTP relay", settings.smtp.relay_port, False),
        ("SMTP submission", settings.smtp.submission_port, False),
        ("SMTP submission (TLS)", settings.smtp.submissions_port, True),
        ("IMAP", settings.imap.port, False),
        ("IMAP (TLS)", settings.imap.tls_port, True),
    ]
    if settings.directory.enabled and not settings.directory.url:
        out += [("LDAP", settings.directory.port, False),
                ("LDAPS", settings.directory.ldaps_port, True)]
    if settings.web.enabled:
        out.append(("HTTPS", settings.web.port, True))
    return out


def _client_context(settings: Settings) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    for anchor in settings.tls_anchor_files:
        if anchor.is_file():
            ctx.load_verify_locations(str(anchor))
    ctx.check_hostname = False  # a local probe: the chain is checked, not the name
    return ctx


def _probe_host(settings: Settings) -> str:
    listen = settings.gateway.listen
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen, listen)  # noqa: S104


async def _probe(host: str, port: int, tls: ssl.SSLContext | None) -> str | None:
    """None when the listener answers (and completes TLS when asked), else why not."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return f"no answer on {host}:{port} ({type(exc).__name__}: {exc})"[:160]
    version = writer.get_extra_info("ssl_object")
    writer.close()
    return None if tls is None or version is not None else "TLS not active"


async def _readyz(host: str, port: int, ctx: ssl.SSLContext) -> Line:
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
            writer.write(f"GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode("ascii"))
            raw = b""
            while len(raw) < 65536 and (chunk := await reader.read(65536)):
                raw += chunk  # "Connection: close": the answer ends at EOF
            writer.close()
        _head, _, body = raw.partition(b"\r\n\r\n")
        answer = json.loads(body)
        failing = {k: v for k, v in answer["checks"].items() if v != "ok"}
        if answer["ready"]:
            return Line("readiness", "ok", ", ".join(answer["checks"]))
        return Line("readiness", "attention",
                    "; ".join(f"{k}: {v}" for k, v in failing.items()))
    except (OSError, TimeoutError, ssl.SSLError, ValueError, KeyError) as exc:
        return Line("readiness", "attention", f"/readyz did not answer: {exc}"[:160])


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


async def collect(settings: Settings) -> list[Line]:
    """Every line of the report, in display order."""
    now = datetime.now(UTC)
    lines = [Line("version", "info", metadata.version("mssante-gateway"))]
    host = _probe_host(settings)
    ctx = _client_context(settings)
    listeners = _listeners(settings)
    problems = await asyncio.gather(*(
        _probe(host, port, ctx if tls else None) for _label, port, tls in listeners
    ))
    for (label, port, _tls), problem in zip(listeners, problems, strict=True):
        lines.append(Line(f"listener {label}", "attention" if problem else "ok",
                          problem or f"{host}:{port}"))
    web_up = settings.web.enabled and not problems[-1]
    if web_up:
        lines.append(await _readyz(host, settings.web.port, ctx))

    db = await open_storage(settings)
    try:
        async with db.read() as conn:
            stats = await read_stats(conn)
    finally:
        await db.close()
    waiting = sum(stats.queue_by_state.get(s, 0) for s in ("queued", "inflight", "deferred"))
    if stats.oldest_waiting is None:
        lines.append(Line("outbound queue", "ok", "empty"))
    else:
        age = now - stats.oldest_waiting
        late = age > timedelta(hours=settings.smtp.delay_warning_hours)
        lines.append(Line("outbound queue", "attention" if late else "ok",
                          f"{waiting} waiting, oldest {_age(age)}"))
    unsigned = stats.proofs_total - stats.last_checkpoint_seq
    if stats.last_checkpoint_at is None:
        state = "attention" if unsigned else "ok"
        lines.append(Line("proof ledger", state,
                          f"{stats.proofs_total} records, never signed"))
    else:
        age = now - stats.last_checkpoint_at
        state = "attention" if unsigned and age > CHECKPOINT_WARNING else "ok"
        lines.append(Line("proof ledger", state, f"{stats.proofs_total} records, last "
                          f"checkpoint {_age(age)} ago, {unsigned} unsigned since"))
    good = last_good_path(settings)
    if good.is_file():
        age = now - datetime.fromtimestamp(good.stat().st_mtime, UTC)
        lines.append(Line("trust space", "attention" if age > TRUST_WARNING else "ok",
                          f"last good list {_age(age)} old"))
    else:
        lines.append(Line("trust space", "attention", f"no last good list at {good}"))
    for item in await asyncio.to_thread(tls_expiries, settings):
        left = item.not_after - now
        state = "attention" if left < CERT_WARNING else "ok"
        when = item.not_after.strftime("%Y-%m-%d")
        detail = f"{item.subject}: {'expired' if left.total_seconds() < 0 else 'valid'} " \
                 f"until {when}" if item.role != "crl" else f"{item.subject}: next update {when}"
        lines.append(Line(f"{item.role} certificate" if item.role != "crl" else "CRL",
                          state, detail))
    return lines


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@pass_cli
def command(cli: CliContext, as_json: bool) -> None:
    """What the running gateway serves and what needs attention (exit 1 if anything)."""
    settings = cli.settings()
    lines = run_command(collect(settings))
    attention = [line for line in lines if line.state == "attention"]
    if as_json:
        click.echo(json.dumps({"attention": bool(attention),
                               "checks": [asdict(line) for line in lines]}, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("check", "state", "detail")
        style = {"ok": "green", "attention": "bold red", "info": ""}
        for line in lines:
            table.add_row(line.check, f"[{style[line.state]}]{line.state}[/]" if style[
                line.state] else line.state, line.detail)
        Console(width=160).print(table)
        click.echo(f"{len(attention)} check(s) need attention" if attention
                   else "everything is fine")
    if attention:
        raise SystemExit(EXIT_FAILURE)
