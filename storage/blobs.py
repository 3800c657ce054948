"""Encrypted, content-addressed body store.

Each distinct body (by SHA-256 of its plaintext) is stored once, whatever the number of
recipients, under a fresh random 256-bit data key. The data key is wrapped with AES-256-GCM
by the active master key of the key file; the master key id is stored with the blob so
keys can rotate. The body is cut into fixed-size plaintext segments, each sealed with
AES-256-GCM; a partial read decrypts only the segments that cover the range.

Segment nonce: the segment index (96-bit big-endian). It is unique under the blob's data key
because a data key seals exactly one body, once.

Segment associated data binds: format version, the body's SHA-256, its total size, the
segment size, the index and a last-segment flag. Hence altering any byte, swapping or
reordering segments (within a blob or between blobs), dropping trailing segments or
editing the recorded size all fail authentication and raise :class:`BlobIntegrityError`:
no altered byte is ever returned.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import and_, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.engine import insert_or_ignore
from storage.errors import BlobIntegrityError, BlobNotFound
from storage.keys import Keyring
from storage.metadata import MetadataKey
from storage.schema import blob_segments, blobs
from storage.types import utcnow

_SEGMENT_AAD = b"mssante-blob-segment/1"
_KEY_AAD = b"mssante-blob-key/1"
THREAD_THRESHOLD = 256 * 1024
"""Bodies larger than this are hashed and sealed in a worker thread (keep the loop free)."""


@dataclass(frozen=True)
class BlobRef:
    """A stored body: its id, SHA-256 (hex) and plaintext size.

    ``metadata`` (from :meth:`BlobStore.put_many`) seals what the message's headers say
    under the body's data key (:mod:`storage.metadata`).
    """

    id: int
    content_sha256: str
    size: int
    metadata: MetadataKey | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class _BlobRow:
    id: int
    sha: bytes
    size: int
    segment_size: int
    segment_count: int
    key_id: str
    wrapped_key: bytes


_BLOB_COLUMNS = (
    blobs.c.id,
    blobs.c.content_sha256,
    blobs.c.size,
    blobs.c.segment_size,
    blobs.c.segment_count,
    blobs.c.key_id,
    blobs.c.wrapped_key,
    blobs.c.purged_at,
)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """One row of the batched read, as the driver returns it (no type processing)."""

    id: int
    content_sha256: str
    size: int
    segment_size: int
    segment_count: int
    key_id: str
    wrapped_key: bytes
    purged_at: Any  # datetime (PostgreSQL) or ISO text (SQLite); only None matters here
    idx: int | None
    data: bytes | None


def _segment_count(size: int, segment_size: int) -> int:
    """An empty body still has one (empty, authenticated) segment."""
    return max(1, -(-size // segment_size))


def _aad(sha: bytes, size: int, segment_size: int, idx: int, last: bool) -> bytes:
    return _SEGMENT_AAD + sha + struct.pack(">QII?", size, segment_size, idx, last)


def _nonce(idx: int) -> bytes:
    return idx.to_bytes(12, "big")


def _when(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class BlobStore:
    """Stores and reads encrypted bodies inside the caller's transaction."""

    def __init__(self, keyring: Keyring, segment_size: int) -> None:
        self.keyring = keyring
        self.segment_size = segment_size
        self.segments_decrypted = 0
        """Running count of decrypted segments (metrics; shows partial reads stay partial)."""
        self._masters: dict[str, AESGCM] = {}

    def _master(self, key_id: str) -> AESGCM:
        """The AES-GCM of master key ``key_id``, built once (it unwraps every data key)."""
        aead = self._masters.get(key_id)
        if aead is None:
            aead = self._masters[key_id] = AESGCM(self.keyring.master_key(key_id))
        return aead

    def _unwrap(self, blob_id: int, key_id: str, wrapped: bytes, sha: bytes) -> bytes:
        """The data key of a blob, authenticated under its master key."""
        try:
            return self._master(key_id).decrypt(
                wrapped[:12], wrapped[12:], _KEY_AAD + sha + key_id.encode())
        except (InvalidTag, ValueError):
            raise BlobIntegrityError(
                f"blob {blob_id}: its data key failed authentication under master key "
                f"{key_id!r} (wrong key file, or the blob record was altered)"
            ) from None

    def metadata_key(self, blob_id: int, key_id: str, wrapped_key: bytes,
                     content_sha256: str) -> MetadataKey:
        """The key sealing the header-derived values of the messages of a stored body, from
        its blob row (a purged body has no data key left: :class:`BlobNotFound`)."""
        if not wrapped_key:
            raise BlobNotFound(f"blob {blob_id} was purged (retention period)")
        sha = bytes.fromhex(content_sha256)
        return MetadataKey(self._unwrap(blob_id, key_id, bytes(wrapped_key), sha), sha)

    # -- writing -------------------------------------------------------------------------
    async def put(self, conn: AsyncConnection, data: bytes) -> BlobRef:
        """Stores ``data`` (or finds it already stored) and returns its reference.

        Runs in ``conn``'s transaction: nothing is visible until the caller commits.
        """
        [ref] = await self.put_many(conn, [data])
        return ref

    async def put_many(self, conn: AsyncConnection, bodies: Sequence[bytes]) -> list[BlobRef]:
        """Stores several bodies with a fixed number of statements, whatever their count.

        The accept path commits many messages at once; one lookup, one insert of blob rows
        and one insert of segments keep the cost of a batch close to that of its bytes.
        Identical bodies (in the batch or already stored) share one blob.
        """
        if not bodies:
            return []
        total = sum(len(b) for b in bodies)
        if total > THREAD_THRESHOLD:
            digests = await asyncio.to_thread(lambda: [hashlib.sha256(b).digest() for b in bodies])
        else:
            digests = [hashlib.sha256(b).digest() for b in bodies]
        hexes = [d.hex() for d in digests]
        key_columns = (blobs.c.id, blobs.c.content_sha256, blobs.c.key_id, blobs.c.wrapped_key)
        found = {
            r.content_sha256: r
            for r in await conn.execute(
                select(*key_columns, blobs.c.purged_at).where(
                    blobs.c.content_sha256.in_(set(hexes))
                )
            )
        }
        ids: dict[str, int] = {h: r.id for h, r in found.items() if r.purged_at is None}
        keys: dict[str, MetadataKey] = {
            h: self.metadata_key(r.id, r.key_id, r.wrapped_key, h)
            for h, r in found.items() if r.purged_at is None
        }
        todo: dict[str, int] = {}  # hex → index of a body to seal
        for i, h in enumerate(hexes):
            if h not in ids and h not in todo:
                todo[h] = i
        if todo:
            self.keyring.refresh()  # a key added by ``mssante keys rotate`` becomes active
            key_id = self.keyring.active_key_id
            work = [(h, bodies[i], digests[i]) for h, i in todo.items()]

            def seal_all() -> list[tuple[str, int, bytes, list[bytes], bytes]]:
                return [(h, len(b), *self._seal(b, d, key_id)) for h, b, d in work]

            sealed = (
                await asyncio.to_thread(seal_all)
                if sum(len(b) for _, b, _ in work) > THREAD_THRESHOLD
                else seal_all()
            )
            now = utcnow()
            fresh: list[dict[str, Any]] = []
            for h, size, wrapped, segments, data_key in sealed:
                keys[h] = MetadataKey(data_key, bytes.fromhex(h))
                values = {
                    "size": size, "segment_size": self.segment_size,
                    "segment_count": len(segments), "key_id": key_id, "wrapped_key": wrapped,
                    "created_at": now, "purged_at": None,
                }
                if h in found:  # purged earlier, the same body arrives again: store it anew
                    ids[h] = found[h].id
                    await conn.execute(update(blobs).where(blobs.c.id == ids[h]).values(**values))
                else:
                    fresh.append({"content_sha256": h, **values})
            if fresh:
                stmt = insert_or_ignore(conn, blobs, ["content_sha256"]).returning(
                    blobs.c.id, blobs.c.content_sha256
                )
                for r in await conn.execute(stmt, fresh):
                    ids[r.content_sha256] = r.id
            stored_now = {h for h, *_ in sealed if h in ids}
            missing = [h for h, *_ in sealed if h not in ids]
            if missing:  # a concurrent transaction stored the same bodies first
                for r in await conn.execute(
                    select(*key_columns).where(blobs.c.content_sha256.in_(missing))
                ):
                    ids[r.content_sha256] = r.id
                    keys[r.content_sha256] = self.metadata_key(
                        r.id, r.key_id, r.wrapped_key, r.content_sha256)
            rows = [
                {"blob_id": ids[h], "idx": n, "data": seg}
                for h, _size, _wrapped, segments, _key in sealed
                if h in stored_now
                for n, seg in enumerate(segments)
            ]
            if rows:
                await conn.execute(blob_segments.insert(), rows)
        return [BlobRef(ids[h], h, len(b), keys[h])
                for h, b in zip(hexes, bodies, strict=True)]

    def rewrap_key(self, blob_id: int, key_id: str, wrapped: bytes, sha_hex: str,
                   new_key_id: str) -> bytes:
        """The blob's data key, unwrapped with ``key_id`` and wrapped anew with ``new_key_id``
        (master key rotation: the body and its segments are not touched)."""
        digest = bytes.fromhex(sha_hex)
        data_key = self._unwrap(blob_id, key_id, wrapped, digest)
        nonce = secrets.token_bytes(12)
        return nonce + self._master(new_key_id).encrypt(
            nonce, data_key, _KEY_AAD + digest + new_key_id.encode())

    def _seal(self, data: bytes, digest: bytes,
              key_id: str) -> tuple[bytes, list[bytes], bytes]:
        data_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce = secrets.token_bytes(12)
        wrapped = wrap_nonce + self._master(key_id).encrypt(
            wrap_nonce, data_key, _KEY_AAD + digest + key_id.encode()
        )
        aead = AESGCM(data_key)
        size, seg = len(data), self.segment_size
        count = _segment_count(size, seg)
        view = memoryview(data)
        out = [
            aead.encrypt(
                _nonce(i),
                view[i * seg : (i + 1) * seg],  # AESGCM reads the buffer: no copy
                _aad(digest, size, seg, i, i == count - 1),
            )
            for i in range(count)
        ]
        return wrapped, out, data_key

    # -- reading -------------------------------------------------------------------------
    @staticmethod
    def _check(row: Any, blob_id: int) -> _BlobRow:
        if row is None or row.id is None:
            raise BlobNotFound(f"blob {blob_id} does not exist")
        if row.purged_at is not None:
            raise BlobNotFound(
                f"blob {blob_id} was purged on {_when(row.purged_at)} (retention period)"
            )
        try:
            sha = bytes.fromhex(row.content_sha256)
        except ValueError:
            raise BlobIntegrityError(
                f"blob {blob_id}: recorded content hash is malformed"
            ) from None
        if row.segment_count != _segment_count(row.size, row.segment_size):
            raise BlobIntegrityError(
                f"blob {blob_id}: {row.segment_count} segments recorded for {row.size} bytes; "
                "the blob record was altered"
            )
        return _BlobRow(
            row.id,
            sha,
            row.size,
            row.segment_size,
            row.segment_count,
            row.key_id,
            bytes(row.wrapped_key),
        )

    async def size(self, conn: AsyncConnection, blob_id: int) -> int:
        """Plaintext size of a stored body."""
        size = (await conn.execute(select(blobs.c.size).where(blobs.c.id == blob_id))).scalar()
        if size is None:
            raise BlobNotFound(f"blob {blob_id} does not exist")
        return int(size)

    async def read(
        self, conn: AsyncConnection, blob_id: int, offset: int = 0, length: int | None = None
    ) -> bytes:
        """Plaintext bytes ``[offset, offset+length)`` (clipped to the body), authenticated.

        One query loads the blob record and only the segments covering the range, and only
        those are decrypted. A whole-body read also checks the SHA-256 of the result
        against the recorded content hash.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"invalid range offset={offset} length={length}")
        # The segment size is per blob (the setting may change), so the covering range is
        # computed in SQL; it is a superset, trimmed below once the size is known.
        cover = [
            blob_segments.c.blob_id == blobs.c.id,
            blob_segments.c.idx >= literal(offset) // blobs.c.segment_size,
        ]
        if length is not None:
            upper = max(offset + length - 1, offset)
            cover.append(blob_segments.c.idx <= literal(upper) // blobs.c.segment_size)
        fetched = (
            await conn.execute(
                select(*_BLOB_COLUMNS, blob_segments.c.idx, blob_segments.c.data)
                .select_from(blobs.outerjoin(blob_segments, and_(*cover)))
                .where(blobs.c.id == blob_id)
                .order_by(blob_segments.c.idx)
            )
        ).all()
        blob = self._check(fetched[0] if fetched else None, blob_id)
        end = blob.size if length is None else min(blob.size, offset + length)
        whole = offset == 0 and end == blob.size
        if end <= offset and not whole:
            return b""
        seg = blob.segment_size
        first = offset // seg
        last = max(first, (end - 1) // seg) if end > 0 else 0
        rows = [r for r in fetched if r.idx is not None and first <= r.idx <= last]
        got = [r.idx for r in rows]
        if got != list(range(first, last + 1)):
            missing = sorted(set(range(first, last + 1)) - set(got))
            raise BlobIntegrityError(
                f"blob {blob_id}: segments {missing} are missing; the stored body is truncated"
            )
        payload = [bytes(r.data) for r in rows]
        total = sum(len(p) for p in payload)
        if total > THREAD_THRESHOLD:
            plain = await asyncio.to_thread(self._open, blob, first, payload)
        else:
            plain = self._open(blob, first, payload)
        self.segments_decrypted += len(payload)
        start = offset - first * seg
        out = plain[start : start + (end - offset)]
        if whole and hashlib.sha256(out).digest() != blob.sha:
            raise BlobIntegrityError(f"blob {blob_id}: content does not match its SHA-256")
        return out

    async def read_many(
        self, conn: AsyncConnection, requests: Sequence[tuple[int, int, int | None]]
    ) -> list[bytes]:
        """The bytes of several ``(blob_id, offset, length)`` ranges with ONE query.

        A FETCH over many messages would otherwise cost one statement (and, on SQLite, one
        crossing to the database thread) per message. The statement loads the record of
        every blob named and only the segments that cover the requested ranges; each range
        is then authenticated and decrypted exactly as :meth:`read` does (a whole-body range
        is checked against its SHA-256 too). Results come back in request order; a missing
        or purged blob raises as :meth:`read` does.
        """
        if not requests:
            return []
        for _blob_id, offset, length in requests:
            if offset < 0 or (length is not None and length < 0):
                raise ValueError(f"invalid range offset={offset} length={length}")
        # One covering span per blob (a superset of its requests), as literal SQL: building
        # an expression tree per message costs more than the query itself. The segment size
        # is per blob, so the covering segment indexes are computed in SQL, as in read().
        spans: dict[int, tuple[int, int | None]] = {}
        for blob_id, offset, length in requests:
            upper = None if length is None else max(offset + length - 1, offset)
            held = spans.get(blob_id)
            if held is not None:
                offset = min(offset, held[0])
                upper = None if upper is None or held[1] is None else max(upper, held[1])
            spans[blob_id] = (offset, upper)
        covers: list[str] = []
        for blob_id, (offset, upper) in spans.items():
            # Integers only (int() below), so the text holds no value of any client.
            clause = f"(b.id = {int(blob_id)} AND s.idx >= {int(offset)} / b.segment_size"
            if upper is not None:
                clause += f" AND s.idx <= {int(upper)} / b.segment_size"
            covers.append(clause + ")")
        ids = ", ".join(str(int(b)) for b in spans)
        # Only table names and integers are interpolated: a statement with hundreds of bound
        # parameters costs more to prepare than to run.
        sql = (
            "SELECT b.id, b.content_sha256, b.size, b.segment_size, b.segment_count, "  # noqa: S608
            "b.key_id, b.wrapped_key, b.purged_at, s.idx, s.data "
            f"FROM {blobs.name} AS b LEFT OUTER JOIN {blob_segments.name} AS s "
            f"ON s.blob_id = b.id AND ({' OR '.join(covers)}) "
            f"WHERE b.id IN ({ids}) ORDER BY b.id, s.idx"
        )
        fetched = [_Fetched(*tuple(r)) for r in await conn.exec_driver_sql(sql)]
        records: dict[int, Any] = {}
        segments: dict[int, dict[int, bytes]] = {}
        for r in fetched:
            records.setdefault(r.id, r)
            if r.idx is not None and r.data is not None:
                segments.setdefault(r.id, {})[r.idx] = bytes(r.data)
        checked: dict[int, _BlobRow] = {}
        keys: dict[int, AESGCM] = {}
        out: list[bytes] = []
        for blob_id, offset, length in requests:
            blob = checked.get(blob_id)
            if blob is None:
                blob = checked[blob_id] = self._check(records.get(blob_id), blob_id)
            end = blob.size if length is None else min(blob.size, offset + length)
            whole = offset == 0 and end == blob.size
            if end <= offset and not whole:
                out.append(b"")
                continue
            seg = blob.segment_size
            first = offset // seg
            last = max(first, (end - 1) // seg) if end > 0 else 0
            have = segments.get(blob_id, {})
            missing = [i for i in range(first, last + 1) if i not in have]
            if missing:
                raise BlobIntegrityError(
                    f"blob {blob_id}: segments {missing} are missing; the stored body is "
                    "truncated"
                )
            payload = [have[i] for i in range(first, last + 1)]
            aead = keys.get(blob_id)
            if aead is None:
                aead = keys[blob_id] = self._data_key(blob)
            if sum(len(p) for p in payload) > THREAD_THRESHOLD:
                plain = await asyncio.to_thread(self._decrypt, blob, aead, first, payload)
            else:
                plain = self._decrypt(blob, aead, first, payload)
            self.segments_decrypted += len(payload)
            start = offset - first * seg
            data = plain[start : start + (end - offset)]
            if whole and hashlib.sha256(data).digest() != blob.sha:
                raise BlobIntegrityError(f"blob {blob_id}: content does not match its SHA-256")
            out.append(data)
        return out

    def _open(self, blob: _BlobRow, first: int, payload: list[bytes]) -> bytes:
        return self._decrypt(blob, self._data_key(blob), first, payload)

    def _data_key(self, blob: _BlobRow) -> AESGCM:
        """Unwraps the blob's data key under its master key (authenticated)."""
        return AESGCM(self._unwrap(blob.id, blob.key_id, blob.wrapped_key, blob.sha))

    @staticmethod
    def _decrypt(blob: _BlobRow, aead: AESGCM, first: int, payload: list[bytes]) -> bytes:
        parts: list[bytes] = []
        for n, ct in enumerate(payload):
            idx = first + n
            is_last = idx == blob.segment_count - 1
            try:
                pt = aead.decrypt(
                    _nonce(idx), ct, _aad(blob.sha, blob.size, blob.segment_size, idx, is_last)
                )
            except InvalidTag:
                raise BlobIntegrityError(
                    f"blob {blob.id}: segment {idx} failed authentication; the stored body "
                    "was altered, reordered or truncated"
                ) from None
            expected = blob.size - idx * blob.segment_size if is_last else blob.segment_size
            if len(pt) != expected:
                raise BlobIntegrityError(f"blob {blob.id}: segment {idx} has a wrong length")
            parts.append(pt)
        return b"".join(parts)

    # -- retention -----------------------------------------------------------------------
    async def purge(self, conn: AsyncConnection, blob_id: int) -> bool:
        """Destroys a body: segments deleted, data key erased; the row (hash, size) stays.

        Returns False when the blob was already purged or does not exist.
        """
        result = await conn.execute(
            update(blobs)
            .where(blobs.c.id == blob_id, blobs.c.purged_at.is_(None))
            .values(purged_at=utcnow(), wrapped_key=b"")
        )
        if result.rowcount == 0:
            return False
        await conn.execute(delete(blob_segments).where(blob_segments.c.blob_id == blob_id))
        return True


async def any_blob_stored(conn: AsyncConnection) -> bool:
    """True when the database holds at least one blob row (encrypted data exists)."""
    return bool((await conn.execute(select(func.count()).select_from(blobs))).scalar())
