"""The IMAP listeners: STARTTLS port (143/2143) and implicit TLS port (993/2993, RFC 8314).

Each accepted connection becomes a :class:`~imap.session.Session`. ``stop(grace)`` stops
accepting at once, lets sessions end by themselves for ``grace`` seconds, then tells the
rest ``* BYE`` and closes them (RFC 9051 §7.1.5).

A connection counts against its client address from the TCP accept until it is gone, TLS
handshake included: on the implicit-TLS port the handshake is started here, bounded by
``[tls] handshake_timeout``, and the session starts only once it is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections import Counter
from typing import Any, cast

from config.metrics import CONNECTIONS, SESSIONS
from imap.protocol import bye
from imap.session import ImapContext, Session
from trustspace.proxy_protocol import gated, parse_networks
from trustspace.tls_layer import server_tls_protocol

log = logging.getLogger("mssante.imap")


class _Lease:
    """One accepted connection counted against its address; released exactly once."""

    __slots__ = ("address", "started", "_counts", "_live")

    def __init__(self, counts: Counter[str], address: str) -> None:
        self.address = address
        self.started = False  # the session's stream protocol got the connection
        self._counts = counts
        self._live = True
        counts[address] += 1

    def release(self) -> None:
        if not self._live:
            return
        self._live = False
        self._counts[self.address] -= 1
        if self._counts[self.address] <= 0:
            del self._counts[self.address]


class _SessionStream(asyncio.StreamReaderProtocol):
    """The session's stream protocol; marks its lease once the connection reached it."""

    def __init__(self, reader: asyncio.StreamReader, lease: _Lease, callback: Any) -> None:
        super().__init__(reader, callback)
        self._lease = lease

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._lease.started = True
        super().connection_made(transport)


class _Accept(asyncio.Protocol):
    """First protocol of every connection: counts it at the TCP accept (or refuses it),
    then hands the socket to the session's stream protocol, through a TLS layer on the
    implicit-TLS port. Starting TLS here, before any octet is read, is what lets the
    handshake itself be counted and timed."""

    def __init__(self, server: ImapServer, *, tls: bool) -> None:
        self._server = server
        self._tls = tls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if server._per_address[address] >= server.ctx.settings.imap.max_connections_per_address:
            log.warning("imap_too_many_connections", extra={"fields": {"peer": address}})
            if not self._tls:  # no TLS is spent on a refused connection
                transport.write(  # type: ignore[attr-defined]
                    bye("Too many connections from your address, try again later",
                        "UNAVAILABLE"))
            transport.close()
            return
        lease = _Lease(server._per_address, address)
        reader = asyncio.StreamReader(limit=server._line_limit)
        stream = _SessionStream(
            reader, lease, functools.partial(server._serve, lease=lease, tls=self._tls))
        if not self._tls:
            transport.set_protocol(stream)
            stream.connection_made(transport)
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        tls = server_tls_protocol(loop, stream, server.ctx.tls_context, waiter,
                                  server.ctx.settings.tls.handshake_timeout)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        server._handshaking.add(cast(asyncio.Transport, transport))
        waiter.add_done_callback(
            functools.partial(server._handshake_done, cast(asyncio.Transport, transport), lease))


class ImapServer:
    """Both listeners of one gateway process and their live sessions."""

    def __init__(self, ctx: ImapContext) -> None:
        self.ctx = ctx
        self._servers: list[asyncio.Server] = []
        self._per_address: Counter[str] = Counter()
        self._handshaking: set[asyncio.Transport] = set()
        self._line_limit = ctx.settings.imap.max_line_length + 1024
        self.port = 0
        """Bound STARTTLS port (useful when 0 was configured)."""
        self.tls_port = 0
        """Bound implicit-TLS port."""

    def connection_counts(self) -> dict[str, int]:
        """Live connections per client address, both listeners together (monitoring, and
        tests that none leak)."""
        return {a: n for a, n in self._per_address.items() if n > 0}

    async def start(self, sockets: tuple[socket.socket, socket.socket] | None = None) -> None:
        """Binds both listeners, or (``sockets``: STARTTLS, implicit TLS) serves sockets
        already bound and listening, as a worker process does with its supervisor's."""
        s = self.ctx.settings
        host = s.gateway.listen
        loop = asyncio.get_running_loop()
        balancers = parse_networks(s.gateway.proxy_protocol_from)
        wait = s.gateway.proxy_protocol_timeout
        plain_factory = gated(functools.partial(_Accept, self, tls=False), balancers, wait)
        tls_factory = gated(functools.partial(_Accept, self, tls=True), balancers, wait)
        if sockets is not None:
            plain = await loop.create_server(plain_factory, sock=sockets[0])
        else:
            plain = await loop.create_server(plain_factory, host, s.imap.port,
                                             reuse_address=True)
        try:
            if sockets is not None:
                implicit = await loop.create_server(tls_factory, sock=sockets[1])
            else:
                implicit = await loop.create_server(tls_factory, host, s.imap.tls_port,
                                                    reuse_address=True)
        except BaseException:
            plain.close()
            raise
        self._servers = [plain, implicit]
        self.port = int(plain.sockets[0].getsockname()[1])
        self.tls_port = int(implicit.sockets[0].getsockname()[1])
        log.info("imap_listening", extra={"fields": {"host": host, "port": self.port,
                                                     "tls_port": self.tls_port}})

    def _handshake_done(
        self, transport: asyncio.Transport, lease: _Lease, waiter: asyncio.Future[None]
    ) -> None:
        """Implicit TLS: a handshake that failed, timed out or was cut ends the connection
        here (the TLS layer tells nobody else); a completed one started the session."""
        self._handshaking.discard(transport)
        error = None if waiter.cancelled() else waiter.exception()
        if lease.started:
            return
        level = logging.WARNING if isinstance(error, ssl.SSLError) else logging.INFO
        log.log(level, "imap_tls_failed", extra={"fields": {
            "peer": lease.address, "reason": _tls_failure(error)}})
        transport.close()
        lease.release()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     lease: _Lease, tls: bool) -> None:
        listener = "imaps" if tls else "imap"
        CONNECTIONS.labels("imap", listener).inc()
        SESSIONS.labels("imap", listener).inc()
        try:
            await Session(self.ctx, reader, writer, tls=tls).run()
        finally:
            SESSIONS.labels("imap", listener).dec()
            lease.release()

    async def stop(self, grace: float) -> None:
        for server in self._servers:
            server.close()
        for transport in list(self._handshaking):
            transport.abort()  # nothing to say before TLS is up
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


def _tls_failure(error: BaseException | None) -> str:
    """A short reason for the log: the TLS alert or error name, never client data."""
    if error is None:
        return "closed during handshake"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return type(error).__name__
