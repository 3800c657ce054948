"""The client side of RFC 4978 COMPRESS=DEFLATE for imaplib, written from the RFC.

:class:`DeflateIMAP4_SSL` is imaplib's TLS client with one more command, :meth:`compress`:
after the server's tagged OK, what it sends is raw deflate (``wbits=-15``) flushed with
``Z_SYNC_FLUSH``, and what it reads is inflated under imaplib's ``readline``/``read``.
Those two are where :mod:`tests.imap.conftest` records the server's responses for the
grammar checker, so compressed sessions are checked in clear like the others.

:class:`WireCount` counts the octets that cross the TLS layer in each direction
(compressed or not): what COMPRESS saves on a mobile link. The benchmark uses it too.
"""

from __future__ import annotations

import imaplib
import io
import zlib
from dataclasses import dataclass
from typing import Any


@dataclass
class WireCount:
    """IMAP octets on the connection, as they cross TLS (compressed once COMPRESS is on)."""

    received: int = 0
    sent: int = 0


class _WireFile:
    """Replaces imaplib's ``self.file``: counts what it reads and, once compression is
    on, inflates it."""

    def __init__(self, raw: io.BufferedReader, count: WireCount) -> None:
        self._raw = raw
        self._count = count
        self._inflate: Any = None
        self._buf = bytearray()

    def start_inflate(self) -> None:
        self._inflate = zlib.decompressobj(-15)

    def _fill(self) -> bool:
        data = self._raw.read1(65536)
        if not data:
            return False
        self._count.received += len(data)
        self._buf += self._inflate.decompress(data)
        return True

    def readline(self, limit: int = -1) -> bytes:
        if self._inflate is None:
            line = self._raw.readline(limit)
            self._count.received += len(line)
            return line
        while True:
            end = self._buf.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                line = bytes(self._buf[:end + 1])
                break
            if 0 <= limit <= len(self._buf):
                line = bytes(self._buf[:limit])
                break
            if not self._fill():
                line = bytes(self._buf)
                break
        del self._buf[:len(line)]
        return line

    def read(self, size: int) -> bytes:
        if self._inflate is None:
            data = self._raw.read(size)
            self._count.received += len(data)
            return data
        while len(self._buf) < size and self._fill():
            pass
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def close(self) -> None:
        self._raw.close()


class _DeflateMixin:
    """COMPRESS for an imaplib client; ``self.file`` is wrapped (again after STARTTLS)."""

    wire: WireCount
    _deflate: Any
    file: Any
    sock: Any

    def _wrap_file(self) -> None:
        if not isinstance(self.file, _WireFile):
            self.file = _WireFile(self.file, self.wire)

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.wire.sent += len(data)
        self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        """Octets as they are, even under compression (to send what no client should)."""
        self.wire.sent += len(data)
        self.sock.sendall(data)

    def compress(self) -> tuple[str, bytes]:
        """``COMPRESS DEFLATE``: the tagged status and line; compression on after OK."""
        self._wrap_file()
        tag = self._new_tag()  # type: ignore[attr-defined]
        self.send(tag + b" COMPRESS DEFLATE\r\n")
        while True:
            line = self.readline()  # type: ignore[attr-defined]
            if not line:
                raise imaplib.IMAP4.abort("connection closed during COMPRESS")
            if line.startswith(tag + b" "):
                break
        status = line.split()[1].decode()
        if status == "OK":
            # RFC 4978 §3: everything after the CRLF of the tagged OK is compressed.
            self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
            self.file.start_inflate()
        return status, line


class DeflateIMAP4_SSL(_DeflateMixin, imaplib.IMAP4_SSL):  # noqa: N801 - imaplib's naming
    """imaplib over implicit TLS, with COMPRESS=DEFLATE and a count of the wire octets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.wire = WireCount()
        self._deflate = None
        super().__init__(*args, **kwargs)

    def open(self, host: str = "", port: int = imaplib.IMAP4_SSL_PORT,
             timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        self._wrap_file()


class DeflateIMAP4(_DeflateMixin, imaplib.IMAP4):
    """imaplib on the STARTTLS port, with COMPRESS=DEFLATE."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.wire = WireCount()
        self._deflate = None
        super().__init__(*args, **kwargs)
