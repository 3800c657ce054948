"""Serving the HTTP application over TLS inside the gateway's own event loop (uvicorn).

The gateway binds the socket itself, so a port in use fails at start like every other
listener, and hands uvicorn the TLS context every listener uses (TLS 1.2+, AEAD only), not
one uvicorn would build from files. uvicorn must not take over the process's signals (the
gateway's runtime owns SIGTERM and its grace period), reconfigure logging, trust
``X-Forwarded-*`` headers from anyone, or announce itself in a ``Server`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_CONCURRENCY = 1000
"""Connections served at once; beyond, uvicorn answers 503 instead of queueing forever."""


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the gateway's runtime handles SIGTERM/SIGINT, not uvicorn


class _ClientCertificateH11(H11Protocol):
    """h11 that hands the application the client certificate verified by the handshake,
    as ``request.state.client_certificate`` (DER, or None): uvicorn keeps it to itself."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, "client_certificate": der or None}


class WebServer:
    """One HTTPS listener serving ``app``; ``port`` is the bound port (0 asks for one)."""

    def __init__(self, app: ASGIApp, host: str, port: int, context: ssl.SSLContext, *,
                 client_certificates: bool = False) -> None:
        self._app = app
        self._client_certificates = client_certificates
        self._host = host
        self._requested_port = port
        self._context = context
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = port

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(511)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app, lifespan="off", log_config=None, access_log=False,
            server_header=False, date_header=True, proxy_headers=False,
            limit_concurrency=MAX_CONCURRENCY, timeout_keep_alive=15,
            timeout_graceful_shutdown=5, h11_max_incomplete_event_size=16 * 1024,
            http=_ClientCertificateH11 if self._client_certificates else "h11",
            ws="none", loop="none",
        )
        config.load()
        config.ssl = self._context
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the web server stopped before it started")
            await asyncio.sleep(0.01)

    async def stop(self, grace: float) -> None:
        if self._server is None or self._task is None:
            return
        self._server.config.timeout_graceful_shutdown = max(1, int(grace))
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace + 2)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = None
        self._task = None
