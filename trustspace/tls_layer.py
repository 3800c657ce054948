"""The TLS protocol the implicit-TLS listeners put between a socket and its session.

SMTP (465) and IMAP (993) start TLS themselves, at the TCP accept, so that a connection is
counted and its handshake bounded before any octet is read. The protocol object they
build for that matters for memory: asyncio's ``SSLProtocol`` allocates a zero-filled
256 KiB read buffer per connection and keeps it for the connection's life, although the
buffer is only used for the instant of one socket read (``get_buffer`` then
``buffer_updated``, called back to back by the event loop, which hands the octets to
OpenSSL at once). 10,000 clients in IMAP IDLE then hold 2.5 GB of buffers.

* On uvloop (what the gateway runs on) the loop's own TLS protocol is used: the same one
  ``loop.start_tls`` uses for STARTTLS, written in Cython, whose buffer is allocated but
  only touched as far as the socket reads into it.
* On plain asyncio (the test suite's loop, or without uvloop) a subclass reads through one
  buffer per process: safe because every read is copied into OpenSSL's memory BIO in
  ``buffer_updated`` before the loop runs anything else.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto as sslproto
import ssl
from typing import Any

__all__ = ["server_tls_protocol"]

_READ_SIZE = sslproto.SSLProtocol.max_size


class _SharedBufferSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol reading through one process-wide buffer."""

    _shared = bytearray(_READ_SIZE)
    _shared_view = memoryview(_shared)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The base class allocated its own buffer: drop it (freed at once) for the shared one.
        self._ssl_buffer = self._shared
        self._ssl_buffer_view = self._shared_view

    def get_buffer(self, n: int) -> memoryview:
        want = n if 0 < n <= _READ_SIZE else _READ_SIZE
        return self._shared_view[:want]


def _uvloop_protocol() -> Any:
    try:
        import uvloop.loop
    except ImportError:  # uvloop is optional (extra "fast")
        return None
    # Not in uvloop's type stubs, but part of its module since 0.15 (start_tls uses it).
    return uvloop.loop.Loop, getattr(uvloop.loop, "SSLProtocol", None)


def server_tls_protocol(loop: asyncio.AbstractEventLoop, app: asyncio.BaseProtocol,
                        context: ssl.SSLContext, waiter: asyncio.Future[None],
                        handshake_timeout: float) -> asyncio.BaseProtocol:
    """A server-side TLS protocol for ``app``; ``waiter`` completes with the handshake.

    The caller sets it as the transport's protocol and calls its ``connection_made``.
    """
    uv = _uvloop_protocol()
    if uv is not None and uv[1] is not None and isinstance(loop, uv[0]):
        protocol: asyncio.BaseProtocol = uv[1](
            loop, app, context, waiter, server_side=True,
            ssl_handshake_timeout=float(handshake_timeout))
        return protocol
    return _SharedBufferSSLProtocol(
        loop, app, context, waiter, server_side=True,
        ssl_handshake_timeout=handshake_timeout)  # type: ignore[arg-type]
