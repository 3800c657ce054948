"""RFC 4978 COMPRESS=DEFLATE: a raw-deflate layer slid under a connection's streams.

Once the server has written the tagged OK of ``COMPRESS DEFLATE``, everything it writes
and everything it reads is a raw deflate stream (RFC 1951, no zlib header: ``wbits=-15``,
RFC 4978 §3). :func:`start_deflate` puts :class:`DeflateTransport` between the transport
the session was using (TCP or TLS: compression runs inside TLS, RFC 4978 §6) and the
session's stream protocol, so the session keeps its :class:`asyncio.StreamReader` and
only swaps its writer.

* Writing: each ``write`` (the session writes one burst of responses per flush) is
  compressed and ended with ``Z_SYNC_FLUSH``, so the client can decode every response as
  soon as it arrives (RFC 4978 §4 asks for a flush whenever the server waits for input).
* Reading: client input is inflated at most :data:`INFLATE_CHUNK` octets at a time
  (``decompress(data, max_length)``), and not at all while the stream reader holds more
  than its limit: the network transport is paused and the compressed rest kept (at most
  one network read). A decompression bomb therefore costs no more memory than the same
  bytes sent in clear; the command reader's own limits (line, literal, command) apply to
  the inflated text as they do without compression.

Pure protocol code: nothing of the session or storage is imported here.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

__all__ = ["INFLATE_CHUNK", "DeflateTransport", "start_deflate"]

log = logging.getLogger("mssante.imap")

INFLATE_CHUNK = 64 * 1024
"""Largest piece of inflated client input produced at once (memory bound per step)."""


class _InflateSide(asyncio.Protocol):
    """What the network transport now talks to: hands received octets to the layer."""

    def __init__(self, layer: DeflateTransport) -> None:
        self._layer = layer

    def data_received(self, data: bytes) -> None:
        self._layer._received(data)

    def eof_received(self) -> bool | None:
        return self._layer._eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._layer._app.connection_lost(exc)

    def pause_writing(self) -> None:
        self._layer._app.pause_writing()

    def resume_writing(self) -> None:
        self._layer._app.resume_writing()


class DeflateTransport(asyncio.Transport):
    """The transport the session's streams see once compression is on (RFC 4978)."""

    def __init__(self, inner: asyncio.Transport, app: asyncio.Protocol,
                 level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        super().__init__(extra=None)
        self._inner = inner
        self._app = app
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        self._pending = b""  # compressed input not inflated yet
        self._paused = False  # the stream reader is full: inflate nothing more for now
        self._eof = False  # the client ended its side; told to the app once drained
        self._inflate_may_hold_output = False  # last piece was full: zlib may hold more
        self.octets_in = 0
        """Inflated octets handed to the session (for the log's compression ratio)."""
        self.octets_out = 0
        """Octets the session wrote, before compression."""

    # -- writing ---------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self._inner.is_closing():
            return
        self.octets_out += len(data)
        # RFC 4978 §4: flush after each burst, so no response waits in the compressor.
        self._inner.write(self._deflate.compress(data)
                          + self._deflate.flush(zlib.Z_SYNC_FLUSH))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("no half-close under COMPRESS")

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    # -- reading ---------------------------------------------------------------------
    def _received(self, data: bytes) -> None:
        self._pending = self._pending + data if self._pending else data
        self._pump()

    def _pump(self) -> None:
        """Inflates pending input piece by piece while the stream reader has room."""
        while not self._paused and not self._inner.is_closing():
            if not self._pending and not self._inflate_may_hold_output:
                break
            try:
                out = self._inflate.decompress(self._pending, INFLATE_CHUNK)
            except zlib.error:
                log.info("imap_compress_invalid_input")
                self._pending = b""
                self._inner.close()  # the stream cannot be resynchronised
                return
            self._pending = self._inflate.unconsumed_tail
            # A full piece may leave output inside zlib with no input left: ask again.
            self._inflate_may_hold_output = len(out) == INFLATE_CHUNK
            if self._inflate.eof:
                # The client ended the deflate stream: nothing may follow it.
                self._pending = b""
                self._inflate_may_hold_output = False
            if out:
                self.octets_in += len(out)
                self._app.data_received(out)
        if self._pending or self._inflate_may_hold_output:
            self._inner.pause_reading()
        elif self._eof:
            self._eof = False
            if not self._app.eof_received():
                self._inner.close()

    def _eof_received(self) -> bool | None:
        if self._pending or self._inflate_may_hold_output:
            self._eof = True  # told once the rest is inflated
            return True
        return self._app.eof_received()

    def pause_reading(self) -> None:
        """Called by the stream reader when its buffer is over its limit."""
        self._paused = True
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        if self._pending or self._inflate_may_hold_output:
            # Not from inside the reader's own call: it is still updating its state.
            asyncio.get_running_loop().call_soon(self._resume)
        else:
            self._inner.resume_reading()

    def _resume(self) -> None:
        if self._paused:
            return
        self._pump()
        if not self._paused and not self._pending and not self._inflate_may_hold_output:
            self._inner.resume_reading()

    def is_reading(self) -> bool:
        return not self._paused and self._inner.is_reading()

    # -- the rest goes to the transport underneath ------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def close(self) -> None:
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._app


def start_deflate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                  ) -> asyncio.StreamWriter:
    """Turns compression on for both directions; the writer the session uses from now on.

    Call it right after writing (and draining) the tagged OK of COMPRESS: that OK went
    out in clear, everything after it is compressed (RFC 4978 §3). Octets the client sent
    after its COMPRESS command and that are already buffered are compressed input too,
    and are inflated first.
    """
    inner = writer.transport
    app = inner.get_protocol()
    assert isinstance(inner, asyncio.Transport) and isinstance(app, asyncio.Protocol)
    layer = DeflateTransport(inner, app)
    inner.set_protocol(_InflateSide(layer))
    # The reader asks this layer, not the network, to pause: then no more is inflated.
    # (StreamReader has no public way to change its transport.)
    early = bytes(reader._buffer)  # type: ignore[attr-defined]
    reader._buffer.clear()  # type: ignore[attr-defined]
    reader._transport = layer  # type: ignore[attr-defined]
    if reader._paused:  # type: ignore[attr-defined]
        reader._paused = False  # type: ignore[attr-defined]
        inner.resume_reading()
    new_writer = asyncio.StreamWriter(layer, app, reader, asyncio.get_running_loop())
    if early:
        layer._received(early)
    return new_writer
