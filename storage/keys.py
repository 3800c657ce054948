"""The key file: master keys that wrap per-blob data keys, and the proof signing keys.

Format (JSON, UTF-8, mode 0600)::

    {
      "format": "mssante-keyring/1",
      "master_keys":  [{"id": "mk-<16 hex>", "created_at": "<ISO 8601 UTC>",
                        "key": "<base64 of 32 random bytes, AES-256>"}, …],
      "signing_keys": [{"id": "sk-<16 hex>", "created_at": "…",
                        "seed": "<base64 of the 32-byte Ed25519 private key>"}, …]
    }

The last entry of each list is the active one: new blobs are sealed and new checkpoints
signed with it, while older entries stay so that existing data remains readable and old
checkpoints verifiable (rotation = append a key). Losing this file makes every stored body
unreadable, which is why it is never silently recreated when data exists
(see :func:`storage.database.open_database`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from storage.errors import KeyFileMissing, KeyringError, UnknownKeyId
from storage.types import utcnow

FORMAT = "mssante-keyring/1"


@dataclass
class Keyring:
    """Master and signing keys loaded from the key file (newest last, active)."""

    path: Path
    master_keys: dict[str, bytes] = field(default_factory=dict)
    signing_keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    _doc: dict[str, Any] = field(default_factory=dict, repr=False)
    _signature: tuple[int, int] | None = field(default=None, repr=False)
    _checked: float = field(default=0.0, repr=False)

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(path={str(self.path)!r}, master={list(self.master_keys)})"

    @property
    def active_key_id(self) -> str:
        """Id of the master key that seals new blobs."""
        return next(reversed(self.master_keys))

    def master_key(self, key_id: str) -> bytes:
        """The master key ``key_id``; :class:`UnknownKeyId` when the file lacks it.

        A key this process does not know yet may have been added by ``mssante keys rotate``
        in another process: the file is read again before giving up."""
        if key_id not in self.master_keys:
            self.refresh(force=True)
        try:
            return self.master_keys[key_id]
        except KeyError:
            raise UnknownKeyId(
                f"master key {key_id!r} is not in the key file {self.path} "
                f"(it holds {', '.join(self.master_keys) or 'no key'}); "
                "restore the key file that was in use when this data was stored"
            ) from None

    @property
    def signing_key_id(self) -> str:
        """Id of the Ed25519 key that signs new proof checkpoints."""
        return next(reversed(self.signing_keys))

    def signing_key(self, key_id: str | None = None) -> Ed25519PrivateKey:
        """The signing key ``key_id`` (default: the active one)."""
        kid = key_id or self.signing_key_id
        try:
            return self.signing_keys[kid]
        except KeyError:
            raise UnknownKeyId(f"signing key {kid!r} is not in the key file {self.path}") from None

    def verify_key(self, key_id: str) -> Ed25519PublicKey:
        """The public half of signing key ``key_id``."""
        return self.signing_key(key_id).public_key()

    def refresh(self, *, force: bool = False, every: float = 1.0) -> bool:
        """Adopts keys another process appended to the key file (``mssante keys rotate``),
        so that a running gateway seals new bodies with the new key and reads bodies
        rewrapped under it, without a restart. Looks at the file at most once per ``every``
        seconds unless ``force``; keys are only ever added, never dropped. True if the
        active master key changed."""
        now = time.monotonic()
        if not force and now - self._checked < every:
            return False
        self._checked = now
        try:
            st = self.path.stat()
        except OSError:
            return False
        signature = (st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            return False
        try:
            fresh = _parse(self.path, self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, KeyringError):
            return False  # a file being replaced: the keys in memory stay, retry later
        self._signature = signature
        before = self.active_key_id
        # the file's order decides which key is active (the last); a key only this process
        # knew (none should exist: keys are only appended) stays, ahead of the file's
        merged = {k: v for k, v in self.master_keys.items() if k not in fresh.master_keys}
        merged.update(fresh.master_keys)
        self.master_keys = merged
        for kid, signing in fresh.signing_keys.items():
            self.signing_keys.setdefault(kid, signing)
        self._doc = fresh._doc
        return self.active_key_id != before

    def rotate(self) -> str:
        """Adds a new master key (it becomes active) and rewrites the file; returns its id."""
        entry = _new_master_entry()
        self._doc["master_keys"].append(entry)
        _write_atomic(self.path, self._doc)
        self.master_keys[entry["id"]] = base64.b64decode(entry["key"])
        return str(entry["id"])


def _new_master_entry() -> dict[str, str]:
    return {
        "id": f"mk-{secrets.token_hex(8)}",
        "created_at": utcnow().isoformat(),
        "key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def _new_signing_entry() -> dict[str, str]:
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return {
        "id": f"sk-{secrets.token_hex(8)}",
        "created_at": utcnow().isoformat(),
        "seed": base64.b64encode(seed).decode(),
    }


def _write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Writes the file 0600 next to its final name, fsyncs, then renames over it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _parse(path: Path, raw: str) -> Keyring:
    try:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        ring = Keyring(path=path, _doc=doc)
        for entry in doc["master_keys"]:
            key = base64.b64decode(entry["key"], validate=True)
            if len(key) != 32:
                raise ValueError(f"master key {entry['id']!r} is not 32 bytes")
            ring.master_keys[str(entry["id"])] = key
        for entry in doc["signing_keys"]:
            seed = base64.b64decode(entry["seed"], validate=True)
            ring.signing_keys[str(entry["id"])] = Ed25519PrivateKey.from_private_bytes(seed)
        if not ring.master_keys or not ring.signing_keys:
            raise ValueError("it holds no master key or no signing key")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyringError(f"key file {path} is not a valid key file: {exc}") from None
    return ring


def load_or_create_keyring(path: Path, *, may_create: bool) -> Keyring:
    """Loads the key file, or creates it (mode 0600) when absent and ``may_create``.

    Refuses a file readable or writable by group or others (keys must stay private) and a
    missing file when creation is not allowed. Blocking file I/O: call it in a thread.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        if not may_create:
            raise KeyFileMissing(
                f"key file {path} does not exist; restore it from backup "
                "(or set [storage].key_file to where it is)"
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": FORMAT,
            "master_keys": [_new_master_entry()],
            "signing_keys": [_new_signing_entry()],
        }
        _write_atomic(path, doc)
        return _parse(path, json.dumps(doc))
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(
            f"key file {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"cannot read key file {path}: {exc}") from None
    return _parse(path, raw)
