"""Checkpoints as C2SP signed notes (``tlog-checkpoint`` body, ``signed-note`` signatures).

Why this format: it is the one transparency logs and their witnesses already exchange, so a
checkpoint of this ledger can be checked with existing tools (Go ``sumdb/note``) or by hand::

    <origin>\n
    <tree size, decimal>\n
    <root hash, standard base64>\n
    \n
    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>\n

The signature covers the body (the three lines, final newline included). The key id is the
first four bytes of ``SHA-256(key name || 0x0A || 0x01 || public key)`` (0x01: Ed25519), and
a verifier key is written ``<name>+<hex key id>+<base64(0x01 || public key)>``. The key name
is the origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

DASH = "\u2014"  # EM DASH, as signed-note requires
ED25519 = b"\x01"


class NoteError(ValueError):
    """A note that is not a well-formed checkpoint."""


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[Signature, ...]
    text: str


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """SHA-256(key name || 0x0A || 0x01 || public key), first four bytes."""
    raw = public_key.public_bytes_raw()
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + raw).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    raw = ED25519 + public_key.public_bytes_raw()
    return f"{name}+{key_id(name, public_key).hex()}+{base64.b64encode(raw).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, Ed25519PublicKey]:
    """(name, public key) of a verifier key; the embedded key id must match."""
    try:
        name, kid, raw_b64 = vkey.strip().split("+", 2)
        raw = base64.b64decode(raw_b64, validate=True)
        if raw[:1] != ED25519 or len(raw) != 33:
            raise NoteError("not an Ed25519 verifier key")
        key = Ed25519PublicKey.from_public_bytes(raw[1:])
    except (ValueError, binascii.Error) as exc:
        raise NoteError(f"invalid verifier key: {exc}") from None
    if key_id(name, key).hex() != kid.lower():
        raise NoteError("invalid verifier key: its key id does not match its name and key")
    return name, key


def body(origin: str, size: int, root: bytes) -> str:
    if not origin or "\n" in origin:
        raise NoteError("the origin must be one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign(origin: str, size: int, root: bytes, key: Ed25519PrivateKey) -> str:
    """The signed checkpoint note of a tree of ``size`` leaves with root hash ``root``."""
    text = body(origin, size, root)
    sig = key.sign(text.encode())
    line = base64.b64encode(key_id(origin, key.public_key()) + sig).decode()
    return f"{text}\n{DASH} {origin} {line}\n"


def parse(text: str) -> Checkpoint:
    """Splits a note into checkpoint fields and signature lines (nothing is verified yet)."""
    cut = text.rfind("\n\n")
    if cut < 0 or not text.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    note_body, sig_text = text[: cut + 1], text[cut + 2 :]
    lines = note_body.split("\n")[:-1]
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a tree size and a root hash")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise NoteError(f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise NoteError("the root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    sigs = []
    for line in sig_text.split("\n")[:-1]:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise NoteError(f"malformed signature line {line!r}") from None
        if len(raw) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        sigs.append(Signature(parts[1], raw[:4], raw[4:]))
    if not sigs:
        raise NoteError("the note carries no signature")
    return Checkpoint(origin, int(size_text), root, note_body, tuple(sigs), text)


def verified_by(cp: Checkpoint, keys: Iterable[Ed25519PublicKey]) -> Signature | None:
    """The first signature line made by one of ``keys`` over this note, or None."""
    keys = list(keys)
    for sig in cp.signatures:
        for key in keys:
            if not hmac.compare_digest(key_id(sig.name, key), sig.key_id):
                continue
            try:
                key.verify(sig.signature, cp.body.encode())
            except InvalidSignature:
                continue
            return sig
    return None
