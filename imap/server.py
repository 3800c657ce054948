"""The IMAP listeners: STARTTLS port (143/2143) and implicit TLS port (993/2993, RFC 8314).

Each accepted connection becomes a :class:`~imap.session.Session`. ``stop(grace)`` stops
accepting at once, lets sessions end by themselves for ``grace`` seconds, then tells the
rest ``* BYE`` and closes them (RFC 9051 §7.1.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from imap.protocol import bye
from imap.session import ImapContext, Session

log = logging.getLogger("mssante.imap")


class ImapServer:
    """Both listeners of one gateway process and their live sessions."""

    def __init__(self, ctx: ImapContext) -> None:
        self.ctx = ctx
        self._servers: list[asyncio.Server] = []
        self._per_address: Counter[str] = Counter()
        self.port = 0
        """Bound STARTTLS port (useful when 0 was configured)."""
        self.tls_port = 0
        """Bound implicit-TLS port."""

    async def start(self) -> None:
        s = self.ctx.settings
        host = s.gateway.listen
        limit = s.imap.max_line_length + 1024
        plain = await asyncio.start_server(
            self._plain, host, s.imap.port, limit=limit, reuse_address=True)
        try:
            implicit = await asyncio.start_server(
                self._implicit, host, s.imap.tls_port, limit=limit, ssl=self.ctx.tls_context,
                ssl_handshake_timeout=30, reuse_address=True)
        except BaseException:
            plain.close()
            raise
        self._servers = [plain, implicit]
        self.port = int(plain.sockets[0].getsockname()[1])
        self.tls_port = int(implicit.sockets[0].getsockname()[1])
        log.info("imap_listening", extra={"fields": {"host": host, "port": self.port,
                                                     "tls_port": self.tls_port}})

    async def _plain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, tls=False)

    async def _implicit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, tls=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     tls: bool) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if self._per_address[address] >= self.ctx.settings.imap.max_connections_per_address:
            log.warning("imap_too_many_connections", extra={"fields": {"peer": address}})
            with contextlib.suppress(Exception):
                writer.write(bye("Too many connections from your address, try again later",
                                 "UNAVAILABLE"))
                await writer.drain()
                writer.close()
            return
        self._per_address[address] += 1
        try:
            await Session(self.ctx, reader, writer, tls=tls).run()
        finally:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    async def stop(self, grace: float) -> None:
        for server in self._servers:
            server.close()
        sessions = list(self.ctx.sessions)
        if sessions and grace > 0:
            await asyncio.wait([s.done for s in sessions], timeout=grace)
        remaining = [s for s in self.ctx.sessions]
        for session in remaining:
            session.shutdown()
        if remaining:
            await asyncio.wait([s.done for s in remaining], timeout=2.0)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers = []
