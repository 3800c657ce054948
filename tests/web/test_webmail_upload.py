"""The compose form's streamed multipart reading: attachments go to an encrypted spool as
they arrive (peak memory far below the file size), the 10 MB limit stops the read as soon
as it is passed, and the spool holds no plaintext and is removed."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from web.webmail.upload import UploadRefused, read_upload, remove_stale

BOUNDARY = "----formulaire7Ma4YWxkTrZu0gW"
MB = 1024 * 1024
CHUNK = 64 * 1024


def part_head(name: str, filename: str | None = None, ctype: str = "text/plain") -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename is not None:
        head += f"Content-Type: {ctype}\r\n"
    return (head + "\r\n").encode()


class Body:
    """A multipart body produced piece by piece, counting what the reader consumed."""

    def __init__(self, fields: dict[str, str], files: list[tuple[str, int, bytes]]) -> None:
        self.fields = fields
        self.files = files
        self.sent = 0

    async def stream(self) -> AsyncIterator[bytes]:
        for name, value in self.fields.items():
            yield self._count(part_head(name) + value.encode() + b"\r\n")
        for filename, size, pattern in self.files:
            yield self._count(part_head("pieces", filename, "application/pdf"))
            left = size
            while left > 0:
                piece = (pattern * (CHUNK // len(pattern) + 1))[:min(CHUNK, left)]
                left -= len(piece)
                yield self._count(piece)
            yield self._count(b"\r\n")
        yield self._count(f"--{BOUNDARY}--\r\n".encode())

    def _count(self, data: bytes) -> bytes:
        self.sent += len(data)
        return data


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


async def test_streamed_encrypted_and_bounded(tmp_path: Path) -> None:
    pattern = b"RESULTATS-PATIENT-"
    body = Body({"csrf": "jeton", "a": "b@mssante.test", "corps": "Bonjour é"},
                [("C:\\Documents\\compte rendu.pdf", 9 * MB, pattern), ("", 0, b"x")])
    tracemalloc.start()
    upload = await read_upload(body.stream(), CONTENT_TYPE, max_file=10 * MB,
                               max_total=30 * MB, spool_dir=tmp_path)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * MB, f"peak {peak} octets while reading a 9 MB attachment"
    assert upload.get("corps") == "Bonjour é" and upload.get("a") == "b@mssante.test"
    (f,) = upload.files  # the empty file input is skipped
    assert f.filename == "compte rendu.pdf" and f.size == 9 * MB
    on_disk = f.spool.path.read_bytes()
    assert pattern not in on_disk, "the spool is encrypted"
    assert os.stat(f.spool.path).st_mode & 0o077 == 0
    assert oct(os.stat(tmp_path).st_mode & 0o777) == "0o700"
    data = b"".join(f.spool.chunks())
    assert len(data) == 9 * MB and data.startswith(pattern)
    upload.discard()
    assert await asyncio.to_thread(os.listdir, tmp_path) == []


async def test_too_large_stops_reading_at_the_limit(tmp_path: Path) -> None:
    body = Body({"csrf": "jeton"}, [("imagerie.zip", 50 * MB, b"\0")])
    with pytest.raises(UploadRefused) as refused:
        await read_upload(body.stream(), CONTENT_TYPE, max_file=10 * MB, max_total=300 * MB,
                          spool_dir=tmp_path)
    assert refused.value.status == 413
    assert str(refused.value).startswith("La pièce jointe « imagerie.zip » dépasse 10 Mo")
    assert body.sent < 10 * MB + 2 * CHUNK, "the rest of the body is not read"
    assert await asyncio.to_thread(os.listdir, tmp_path) == [], "nothing is left on disk"


async def test_malformed_and_wrong_type(tmp_path: Path) -> None:
    async def junk() -> AsyncIterator[bytes]:
        yield b"not a multipart body at all"

    with pytest.raises(UploadRefused) as wrong:
        await read_upload(junk(), "text/plain", max_file=MB, max_total=MB, spool_dir=tmp_path)
    assert wrong.value.status == 400
    with pytest.raises(UploadRefused) as total:
        await read_upload(Body({"a": "x" * 2000}, []).stream(), CONTENT_TYPE, max_file=MB,
                          max_total=1000, spool_dir=tmp_path)
    assert "au total" in str(total.value)


def test_stale_spool_files_are_removed(tmp_path: Path) -> None:
    old, fresh, other = tmp_path / "upload-old", tmp_path / "upload-new", tmp_path / "keep"
    for path in (old, fresh, other):
        path.write_bytes(b"x")
    os.utime(old, (1, 1))
    os.utime(other, (1, 1))
    assert remove_stale(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "upload-new"]
