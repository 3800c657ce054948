"""Streamed reading of the compose form (multipart/form-data) with attachments.

The body is parsed as it arrives with python-multipart's push parser, never buffered whole:
text fields are kept (bounded: :data:`MAX_FIELD`, :data:`MAX_FIELDS`), each file part is
written as it comes to an :class:`EncryptedSpool` and counted, and the upload stops as soon
as one file passes the per-attachment limit (the seed's 10 MB) or the request passes its
total — before the rest is read, with :class:`UploadRefused` carrying the French sentence.

Spooled attachments are encrypted at rest: AES-256-GCM in 64 KiB segments under a random
key that exists only in this process's memory, so a file left behind by a crash is noise.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

SEGMENT = 64 * 1024
MAX_FIELD = 256 * 1024
"""Largest text field (the body of a letter)."""
MAX_FIELDS = 64
MAX_FILES = 20


class UploadRefused(Exception):
    """The form cannot be taken; the message says why in French; ``status`` is HTTP's."""

    def __init__(self, message: str, status: int = 413) -> None:
        super().__init__(message)
        self.status = status


def megabytes(octets: int) -> str:
    """``10485760`` → ``10 Mo`` (French unit, as the form says)."""
    value = octets / (1024 * 1024)
    return f"{value:.0f} Mo" if value == int(value) else f"{value:.1f} Mo".replace(".", ",")


class EncryptedSpool:
    """An attachment on disk, encrypted segment by segment under a key held in memory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._pending = bytearray()
        self._segments = 0
        self.size = 0

    def _seal(self, chunk: bytes) -> None:
        nonce = self._segments.to_bytes(12, "big")
        sealed = self._aead.encrypt(nonce, chunk, None)
        self._file.write(len(sealed).to_bytes(4, "big") + sealed)
        self._segments += 1

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self._pending += data
        while len(self._pending) >= SEGMENT:
            self._seal(bytes(self._pending[:SEGMENT]))
            del self._pending[:SEGMENT]

    def close(self) -> None:
        if self._pending:
            self._seal(bytes(self._pending))
            self._pending.clear()
        self._file.close()

    def chunks(self) -> Iterator[bytes]:
        """The plaintext again, one segment at a time."""
        with self.path.open("rb") as f:
            for index in range(self._segments):
                length = int.from_bytes(f.read(4), "big")
                yield self._aead.decrypt(index.to_bytes(12, "big"), f.read(length), None)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def remove_stale(directory: Path, older_than: float = 3600.0) -> int:
    """Removes spool files a crash left behind (unreadable anyway: their keys died with
    the process); files younger than ``older_than`` seconds may belong to a live upload of
    another worker and stay."""
    import time

    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.glob("upload-*"):
        try:
            if time.time() - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


@dataclass
class UploadedFile:
    """One attached file as received: its name, declared type and encrypted spool."""

    filename: str
    content_type: str
    spool: EncryptedSpool

    @property
    def size(self) -> int:
        return self.spool.size


@dataclass
class Upload:
    """The compose form: text fields (repeated names kept in order) and files."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def discard(self) -> None:
        for f in self.files:
            f.spool.discard()


def _disposition(headers: dict[bytes, bytes]) -> tuple[str, str | None]:
    message = Message()
    message["content-disposition"] = headers.get(b"content-disposition", b"").decode(
        "utf-8", "replace")
    name = message.get_param("name", header="content-disposition")
    filename = message.get_filename()
    return (str(name) if name else ""), filename


async def read_upload(stream: AsyncIterator[bytes], content_type: str, *, max_file: int,
                      max_total: int, spool_dir: Path) -> Upload:
    """Parses a multipart form from ``stream``; :class:`UploadRefused` on the first excess."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadRefused("Ce formulaire doit être envoyé en multipart/form-data.", 400)
    upload = Upload()
    state: dict[str, object] = {}
    headers: dict[bytes, bytes] = {}
    header_name = bytearray()
    header_value = bytearray()
    text = bytearray()
    refused: list[UploadRefused] = []

    def on_part_begin() -> None:
        headers.clear()
        state.clear()
        text.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        name, filename = _disposition(headers)
        state["name"] = name
        if filename is not None:
            if not filename:  # an empty file input: nothing chosen
                state["skip"] = True
                return
            if len(upload.files) >= MAX_FILES:
                refused.append(UploadRefused(
                    f"Pas plus de {MAX_FILES} pièces jointes par message."))
                return
            ctype = headers.get(b"content-type", b"application/octet-stream").decode(
                "ascii", "replace").strip() or "application/octet-stream"
            f = UploadedFile(os.path.basename(filename.replace("\\", "/"))[:200], ctype,
                             EncryptedSpool(spool_dir))
            upload.files.append(f)
            state["file"] = f
        elif sum(len(v) for v in upload.fields.values()) >= MAX_FIELDS:
            refused.append(UploadRefused("Ce formulaire a trop de champs.", 400))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if refused or state.get("skip"):
            return
        f = state.get("file")
        if isinstance(f, UploadedFile):
            f.spool.write(data[start:end])
            if f.size > max_file:
                refused.append(UploadRefused(
                    f"La pièce jointe « {f.filename} » dépasse {megabytes(max_file)} : "
                    f"chaque pièce jointe peut faire au plus {megabytes(max_file)}. "
                    "Réduisez-la ou envoyez-la autrement."))
            return
        text.extend(data[start:end])
        if len(text) > MAX_FIELD:
            refused.append(UploadRefused(
                f"Le champ « {state.get('name')} » est trop long "
                f"(au plus {MAX_FIELD // 1024} Kio)."))

    def on_part_end() -> None:
        if refused:
            return
        f = state.get("file")
        if isinstance(f, UploadedFile):
            f.spool.close()
        elif not state.get("skip"):
            name = str(state.get("name", ""))
            upload.fields.setdefault(name, []).append(text.decode("utf-8", "replace"))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    })
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > max_total:
                raise UploadRefused(
                    f"Ce message dépasse {megabytes(max_total)} au total : retirez des "
                    "pièces jointes.")
            # the parser's callbacks encrypt and write to disk: off the event loop
            await asyncio.to_thread(parser.write, chunk)
            if refused:
                raise refused[0]
        parser.finalize()
    except UploadRefused:
        upload.discard()
        raise
    except Exception as exc:  # python-multipart raises its own errors for malformed bodies
        upload.discard()
        raise UploadRefused("Ce formulaire est mal formé ; rechargez la page.", 400) from exc
    return upload
