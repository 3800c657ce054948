"""Signed checkpoint notes: format details an outside verifier depends on."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage import notes


def test_note_layout_and_key_id() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    text = notes.sign("mx.example/proofs", 7, bytes(32), key)
    body, sig = text.split("\n\n")
    assert body == "mx.example/proofs\n7\n" + base64.b64encode(bytes(32)).decode()
    assert sig.startswith("\u2014 mx.example/proofs ") and sig.endswith("\n")
    raw = base64.b64decode(sig.split(" ")[2])
    pub = key.public_key().public_bytes_raw()
    assert raw[:4] == hashlib.sha256(b"mx.example/proofs\n\x01" + pub).digest()[:4]
    key.public_key().verify(raw[4:], (body + "\n").encode())
    cp = notes.parse(text)
    assert (cp.origin, cp.size, cp.root) == ("mx.example/proofs", 7, bytes(32))
    assert notes.verified_by(cp, [key.public_key()]) is not None
    assert notes.verified_by(cp, [Ed25519PrivateKey.generate().public_key()]) is None


def test_verifier_keys_round_trip_whatever_their_base64() -> None:
    for _ in range(40):  # some keys encode with '+' in their base64
        pub = Ed25519PrivateKey.generate().public_key()
        vkey = notes.verifier_key("mx.example/proofs", pub)
        name, back = notes.parse_verifier_key(vkey)
        assert name == "mx.example/proofs" and back.public_bytes_raw() == pub.public_bytes_raw()


@pytest.mark.parametrize("text, error", [
    ("o\n1\nAA==\n", "no blank line"),
    ("o\nx\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 o AAAAAAA=\n", "tree size"),
    ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n- o AAAAAAA=\n", "malformed"),
])
def test_malformed_notes_are_refused(text: str, error: str) -> None:
    with pytest.raises(notes.NoteError, match=error):
        notes.parse(text)
