"""Checkpoints handed to witnesses outside the operator: an HTTPS endpoint and an address.

A signed checkpoint kept only by the operator proves little against the operator itself: a
rewritten ledger can come with rewritten checkpoints. Each new checkpoint (the C2SP signed
note, see :mod:`storage.notes`) is therefore also

- POSTed to ``[proofs] witness_url`` (``text/plain; charset=utf-8``; any 2xx accepts it),
  over HTTPS with the server certificate verified (system CAs, or ``witness_ca_file``);
- mailed to ``[proofs] witness_address`` through the system mail of
  :mod:`accounts.notify` (the outbox, later the ``[notify]`` smarthost), never through the
  trust-space relay: a witness is usually outside the MSSanté space.

The newest tree size handed to each witness is kept in ``meta`` (``witness:url`` /
``witness:mail``), so a failure is retried at the next checkpoint look (the caller's loop,
with back-off) and after a restart, and only the newest checkpoint is sent: it covers every
earlier one (RFC 9162 consistency). A note holds no patient data (origin, size, root hash,
signature); logs name the size and the outcome only.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from accounts.notify import Outbox
from config import Settings
from storage import meta as meta_rows
from storage.database import Database
from storage.schema import proof_checkpoints

log = logging.getLogger("mssante.proofs.witness")
URL_KEY = "witness:url"
MAIL_KEY = "witness:mail"


class WitnessRefused(RuntimeError):
    """The witness endpoint did not accept the checkpoint (status or TLS failure)."""


@dataclass(frozen=True)
class Handed:
    url: int | None = None  # tree size accepted by the endpoint in this call
    mail: int | None = None  # tree size mailed in this call


def _post(url: str, note: str, context: ssl.SSLContext, timeout: float) -> int:
    """One POST over HTTPS (http.client, as the trust-space fetch: https only, no proxy)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise WitnessRefused(f"the witness URL {url!r} is not an https:// URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout,
                                       context=context)
    try:
        conn.request("POST", path, body=note.encode("utf-8"), headers={
            "Content-Type": "text/plain; charset=utf-8",
            "User-Agent": "mssante-gateway checkpoint witness"})
        response = conn.getresponse()
        response.read(65536)
        status = int(response.status)
    except (OSError, http.client.HTTPException) as exc:
        raise WitnessRefused(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if not 200 <= status < 300:
        raise WitnessRefused(f"HTTP {status}")
    return status


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificate and host name verified; TLS 1.2 at least."""
    ca = settings.proofs.witness_ca_file
    context = ssl.create_default_context(
        cafile=str(settings.path(ca, ca)) if ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _newest(conn: Any) -> tuple[int, str] | None:
    row = (await conn.execute(
        select(proof_checkpoints.c.seq, proof_checkpoints.c.note)
        .where(proof_checkpoints.c.note.is_not(None))
        .order_by(proof_checkpoints.c.seq.desc()).limit(1))).first()
    return (int(row.seq), str(row.note)) if row is not None else None


async def hand_to_witnesses(db: Database, settings: Settings, outbox: Outbox | None) -> Handed:
    """Sends the newest signed checkpoint to each configured witness that has not had it.
    Raises :class:`WitnessRefused` when the endpoint refused it (the mail is sent first,
    and the caller retries the endpoint later)."""
    url, address = settings.proofs.witness_url, settings.proofs.witness_address
    if not url and not address:
        return Handed()
    async with db.read() as conn:
        newest = await _newest(conn)
        if newest is None:
            return Handed()
        url_done = int(await meta_rows.get_value(conn, URL_KEY) or 0)
        mail_done = int(await meta_rows.get_value(conn, MAIL_KEY) or 0)
    size, note = newest
    mailed = None
    if address and outbox is not None and size > mail_done:
        await outbox.send(address, f"Checkpoint {settings.proof_origin} {size}", note,
                          kind="proof_checkpoint")
        async with db.begin() as conn:
            await meta_rows.set_value(conn, MAIL_KEY, str(size))
        mailed = size
    posted = None
    if url and size > url_done:
        try:
            await asyncio.to_thread(_post, url, note, tls_context(settings),
                                    settings.proofs.witness_timeout)
        except WitnessRefused as exc:
            log.warning("witness_refused", extra={"fields": {"size": size, "reason": str(exc)}})
            raise
        async with db.begin() as conn:
            await meta_rows.set_value(conn, URL_KEY, str(size))
        posted = size
        log.info("witness_accepted", extra={"fields": {"size": size}})
    return Handed(url=posted, mail=mailed)
