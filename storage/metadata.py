"""What a message's headers say, sealed under the data key of its body.

Why: the Subject, the From/To/Cc texts and the file names of attachments name patients
("CR patient Jean DUPONT…") as surely as the body does. IMAP needs them decoded beforehand
(SEARCH fields, the ENVELOPE and BODYSTRUCTURE views), so they are stored with the message
row, but only sealed: AES-256-GCM under a key derived from the body's own data key (the
one :mod:`storage.blobs` wraps with the master key). Hence whoever reads the database file
without the key file learns nothing from them, and the retention purge, which erases the
data key, makes them unreadable with the body.

The metadata key is HKDF-Expand (RFC 5869 §2.3, one block: HMAC-SHA-256 of the info and
0x01) of the data key, which is already uniformly random, so the body's segment nonces and
the metadata nonces never meet under one key. Each sealed value is ``nonce (12 random
octets) || ciphertext+tag``; its associated data binds the kind of value (``view``,
``fields``) and the body's SHA-256, so a sealed value moved to a message of another
content, or from one column to the other, fails authentication.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import BlobIntegrityError

_INFO = b"mssante-message-metadata/1\x01"
_AAD = b"mssante-message-metadata/1:"
VIEW = b"view"
"""Kind of the sealed IMAP view (JSON of :class:`mail.views.MessageView`)."""
FIELDS = b"fields"
"""Kind of the sealed search fields (see :func:`pack_fields`)."""

_SEPARATOR = "\x00"


class MetadataKey:
    """Seals and opens the header-derived values of the messages of one stored body."""

    __slots__ = ("_aead", "_sha")

    def __init__(self, data_key: bytes, content_sha256: bytes) -> None:
        self._aead = AESGCM(hmac.digest(data_key, _INFO, "sha256"))
        self._sha = content_sha256

    def __repr__(self) -> str:  # never print key material
        return f"MetadataKey(sha256={self._sha.hex()[:16]}…)"

    def seal(self, kind: bytes, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, _AAD + kind + b":" + self._sha)

    def open(self, kind: bytes, sealed: bytes) -> bytes:
        """The plaintext; :class:`BlobIntegrityError` when it was altered or moved."""
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], _AAD + kind + b":" + self._sha)
        except (InvalidTag, ValueError):
            raise BlobIntegrityError(
                f"message metadata ({kind.decode()}) of body {self._sha.hex()[:16]}… failed "
                "authentication; the row was altered or copied from another message"
            ) from None


def pack_fields(values: Sequence[str | None]) -> bytes:
    """The search fields as one byte string: NUL-separated, each value after a ``+``, a
    missing one as ``-`` (decoding a JSON document per message would cost more than the
    decryption). A NUL inside a value, meaningless to SEARCH, becomes U+FFFD."""
    parts = ["-" if v is None else "+" + v.replace(_SEPARATOR, "\ufffd") for v in values]
    return _SEPARATOR.join(parts).encode("utf-8", "surrogatepass")


def unpack_fields(data: bytes) -> list[str | None]:
    """The values given to :func:`pack_fields`, in order."""
    return [None if v == "-" else v[1:]
            for v in data.decode("utf-8", "surrogatepass").split(_SEPARATOR)]
