"""The accept path's direct proof text hashes exactly as :func:`storage.proofs.record_hash`
(which ``proofs verify`` uses), for any details and fields."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.proofs import _record_text, record_hash
from storage.types import canonical_json

_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(
    allow_nan=False, allow_infinity=False)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=10)
_text = st.none() | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    details=st.dictionaries(st.text(max_size=6) | st.integers().map(str), _json, max_size=4),
    seq=st.integers(min_value=1, max_value=2**40),
    kind=st.sampled_from(["submitted", "received", "delivered"]),
    message_ref=_text, content_sha256=_text, actor=_text,
)
def test_direct_text_hashes_as_record_hash(
    details: dict[str, object], seq: int, kind: str, message_ref: str | None,
    content_sha256: str | None, actor: str | None,
) -> None:
    created_at = datetime(2026, 3, 1, 8, 30, 0, 123456, tzinfo=UTC)
    stored = canonical_json(json.loads(canonical_json(details)))
    expected = record_hash(
        seq=seq, kind=kind, created_at=created_at, message_ref=message_ref,
        content_sha256=content_sha256, actor=actor, details_text=stored, prev_hash="ab" * 32,
    )
    text = _record_text(seq, kind, created_at.isoformat(timespec="microseconds"), message_ref,
                        content_sha256, actor, stored, "ab" * 32)
    assert hashlib.sha256(text.encode()).hexdigest() == expected
