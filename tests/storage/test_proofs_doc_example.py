"""docs/proofs.md §7 stays true: every value recomputed from the documented definitions."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage import notes
from tests.storage import rfc9162

DOC = Path(__file__).resolve().parents[2] / "docs" / "proofs.md"


def _example() -> str:
    return DOC.read_text(encoding="utf-8").split("## 7. Worked example")[1]


def _value(text: str, label: str) -> str:
    row = next(line for line in text.splitlines() if line.startswith(f"| {label}"))
    return re.findall(r"`([0-9a-f]{64})`", row)[0]


def test_worked_example() -> None:
    text = _example()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    records = [b.strip().encode() for b in blocks[:3]]
    prev = "0" * 64
    for n, raw in enumerate(records, start=1):
        doc = json.loads(raw)
        assert doc["prev_hash"] == prev and doc["seq"] == n
        assert json.dumps(doc, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode() == raw  # canonical as written
        prev = hashlib.sha256(raw).hexdigest()
        assert _value(text, f"hash {n}") == prev
        assert _value(text, f"L{n}") == hashlib.sha256(b"\x00" + raw).hexdigest()
    tree = rfc9162.Tree(records)
    assert _value(text, "N12") == tree.mth(0, 2).hex()
    assert _value(text, "root of size 3") == tree.mth(0, 3).hex()
    assert tree.path(2, 0, 3) == [tree.mth(0, 2)]
    assert tree.path(0, 0, 3) == [tree.mth(1, 2), tree.mth(2, 3)]
    assert tree.proof(2, 3) == [tree.mth(2, 3)]

    note = blocks[3]
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    lines = note.split("\n")
    assert base64.b64decode(lines[2]) == tree.mth(0, 3)
    raw_sig = base64.b64decode(lines[4].split(" ")[2])
    body = "\n".join(lines[:3]) + "\n"
    key.public_key().verify(raw_sig[4:], body.encode())
    pub = key.public_key().public_bytes_raw()
    kid = hashlib.sha256(b"mx.mssante.test/proofs\n\x01" + pub).digest()[:4]
    assert raw_sig[:4] == kid
    encoded = base64.b64encode(b"\x01" + pub).decode()
    vkey = f"mx.mssante.test/proofs+{kid.hex()}+{encoded}"
    assert f"`{vkey}`" in text
    # and the project's own signer writes exactly this note
    assert notes.sign("mx.mssante.test/proofs", 3, tree.mth(0, 3), key) == note
