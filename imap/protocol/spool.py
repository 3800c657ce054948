"""A large literal kept, while it arrives, in an encrypted anonymous temporary file.

An APPEND literal may be tens of MiB and arrive slowly; held in memory, a few logged-in
connections stalling in the middle of one would make the server hold all of it. The reader
writes such a literal here instead, piece by piece. Messages carry patient data, so nothing
reaches the disk in clear: each 64 KiB segment is sealed with AES-256-GCM under a key that
exists only in this object (never written anywhere), the segment index as nonce and, with the
last-segment flag, as associated data (so segments cannot be reordered or cut off). The file
is created unlinked (``tempfile.TemporaryFile``, mode 0600): it disappears when closed, or
with the process, and what a crash leaves in the file system's free blocks cannot be read.
"""

from __future__ import annotations

import struct
import tempfile

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SpooledLiteral"]

SEGMENT = 64 * 1024
_TAG = 16


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">Q?", index, last)


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


class SpooledLiteral:
    """The octets of one literal, written once in order, then read back whole.

    ``len()`` is the number of octets written; ``has_nul`` says whether one was NUL (RFC 9051
    §4.3 allows it only in literal8).
    """

    def __init__(self, directory: str | None = None) -> None:
        self._aead: AESGCM | None = AESGCM(AESGCM.generate_key(bit_length=256))
        self._file = tempfile.TemporaryFile(dir=directory)
        self._pending = bytearray()
        self._segments = 0
        self._finished = False
        self.size = 0
        self.has_nul = False

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"<SpooledLiteral {self.size} octets>"

    def write(self, data: bytes) -> None:
        """Appends octets; whole segments are sealed and written at once."""
        assert not self._finished, "the literal is complete"
        self.size += len(data)
        if not self.has_nul and b"\x00" in data:
            self.has_nul = True
        self._pending += data
        # Keep at least one octet back: the last segment is sealed as such by finish().
        while len(self._pending) > SEGMENT:
            self._seal(bytes(self._pending[:SEGMENT]), last=False)
            del self._pending[:SEGMENT]

    def finish(self) -> None:
        """Seals what is left as the last segment; the literal is then complete."""
        if self._finished:
            return
        self._seal(bytes(self._pending), last=True)
        self._pending = bytearray()
        self._finished = True
        self._file.flush()

    def _seal(self, plain: bytes, *, last: bool) -> None:
        assert self._aead is not None, "the spool is closed"
        index = self._segments
        self._file.write(self._aead.encrypt(_nonce(index), plain, _aad(index, last)))
        self._segments += 1

    def read(self) -> bytes:
        """The whole literal (blocking file reads: call it in a worker thread)."""
        assert self._finished and self._aead is not None, "read before finish or after close"
        self._file.seek(0)
        pieces: list[bytes] = []
        for index in range(self._segments):
            last = index == self._segments - 1
            want = (self.size - SEGMENT * index if last else SEGMENT) + _TAG
            sealed = self._file.read(want)
            pieces.append(self._aead.decrypt(_nonce(index), sealed, _aad(index, last)))
        data = b"".join(pieces)
        if len(data) != self.size:
            raise OSError("the spooled literal is shorter than written")
        return data

    def close(self) -> None:
        """Deletes the file and forgets the key."""
        self._aead = None
        self._pending = bytearray()
        self._file.close()
