"""Modified UTF-7 and sequence sets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imap.protocol import STAR, SequenceSet, mutf7_decode, mutf7_encode


def test_rfc3501_example() -> None:
    # RFC 3501 §5.1.3
    assert mutf7_decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"
    assert mutf7_encode("~peter/mail/台北/日本語") == b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7_encode("Tom & Jerry") == b"Tom &- Jerry"
    assert mutf7_decode("Tom &- Jerry") == "Tom & Jerry"
    assert mutf7_encode("Envoyés") == b"Envoy&AOk-s"
    assert mutf7_encode("😀") == b"&2D3eAA-"


@pytest.mark.parametrize(
    "bad",
    [b"&Jjo", b"&AGE-", b"caf\xc3\xa9", b"&U,BTFw-&ZeVnLIqe-", b"&U,BTFx-", b"a\tb"],
)
def test_invalid_mutf7_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        mutf7_decode(bad)


@given(st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_mutf7_round_trip(name: str) -> None:
    # Lone surrogates cannot be encoded as UTF-16 and never reach here from the wire.
    if any("\ud800" <= ch <= "\udfff" for ch in name):
        return
    assert mutf7_decode(mutf7_encode(name)) == name


def test_sequence_set_parse_and_resolve() -> None:
    s = SequenceSet.parse("5:2,7,9:*")
    assert s.ranges == ((5, 2), (7, 7), (9, STAR))
    assert s.resolve(12) == [(2, 5), (7, 7), (9, 12)]
    assert list(s.iter(10)) == [2, 3, 4, 5, 7, 9, 10]
    assert s.contains(3, 10) and not s.contains(6, 10) and s.contains(12, 12)
    assert SequenceSet.parse("*:4").resolve(2) == [(2, 4)]  # RFC 9051 §9: n:* beyond max
    assert SequenceSet.parse("*").resolve(0) == []
    assert SequenceSet.parse("$").saved and SequenceSet.parse("$").format() == "$"
    assert SequenceSet.parse("1:3,2:6").resolve(10) == [(1, 6)]
    assert SequenceSet.parse(b"4:*").format() == "4:*"
    assert SequenceSet.from_ints([1, 2, 3, 5, 8, 9]).format() == "1:3,5,8:9"
    assert str(SequenceSet.from_ints([])) == ""
    with pytest.raises(ValueError, match="'\\$' must be replaced"):
        SequenceSet.parse("$").resolve(3)


@pytest.mark.parametrize(
    "bad", ["", "0", "1:0", "1,", ",1", "1::2", "a", "1 2", "$,1", "4294967296"]
)
def test_sequence_set_invalid(bad: str) -> None:
    with pytest.raises(ValueError):
        SequenceSet.parse(bad)


@given(st.sets(st.integers(min_value=1, max_value=5000), max_size=60))
@settings(max_examples=200, deadline=None)
def test_sequence_set_format_parse_round_trip(values: set[int]) -> None:
    s = SequenceSet.from_ints(values)
    if not values:
        assert s.format() == ""
        return
    back = SequenceSet.parse(s.format())
    assert back == s
    assert set(back.iter(5000)) == values


bounds = st.one_of(st.just(STAR), st.integers(min_value=1, max_value=2000))


@given(st.lists(st.tuples(bounds, bounds), min_size=1, max_size=12), st.integers(0, 2000))
@settings(max_examples=200, deadline=None)
def test_sequence_set_with_star_round_trip(ranges: list[tuple[int, int]], max_value: int) -> None:
    s = SequenceSet(tuple(ranges))
    back = SequenceSet.parse(s.format())
    assert back.resolve(max_value) == s.resolve(max_value)
    expected = {v for v in range(1, max(max_value, 2000) + 1) if s.contains(v, max_value)}
    assert set(back.iter(max_value)) == expected
