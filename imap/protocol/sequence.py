"""Sequence sets (RFC 9051 §9 ``sequence-set``), for message numbers and UIDs.

``*`` is kept symbolic until the caller resolves the set against the current
maximum (highest sequence number or highest UID), because its value changes
while a mailbox is selected. ``$`` (RFC 5182 SEARCHRES) is kept symbolic too:
the session substitutes the saved search result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["STAR", "SequenceSet"]

STAR = 0
"""Stands for ``*`` in a range bound; real numbers are never 0 (nz-number)."""

_NUM = r"(?:[1-9][0-9]{0,9}|\*)"
_SET_RE = re.compile(rf"{_NUM}(?::{_NUM})?(?:,{_NUM}(?::{_NUM})?)*\Z")
_MAX = 0xFFFFFFFF


def _bound(text: str) -> int:
    if text == "*":
        return STAR
    value = int(text)
    if value > _MAX:
        raise ValueError(f"number {text} is out of range (max 4294967295)")
    return value


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """An ordered list of ranges as the client wrote them, or ``$``.

    ``ranges`` holds ``(first, last)`` pairs where ``STAR`` (0) stands for ``*``;
    a range may be written in either order (RFC 9051 §9: ``5:2`` is ``2:5``).
    """

    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Parse ``1:3,5,7:*`` or ``$``; ``ValueError`` on anything else."""
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        if text == "$":
            return cls(saved=True)
        if not _SET_RE.match(text):
            raise ValueError(f"invalid sequence set {text[:40]!r}")
        ranges: list[tuple[int, int]] = []
        for part in text.split(","):
            lo, sep, hi = part.partition(":")
            a = _bound(lo)
            ranges.append((a, _bound(hi) if sep else a))
        return cls(tuple(ranges))

    @classmethod
    def from_ints(cls, values: Iterable[int]) -> SequenceSet:
        """The most compact set holding exactly ``values`` (for COPYUID, ESEARCH, VANISHED)."""
        ranges: list[tuple[int, int]] = []
        for v in sorted(set(values)):
            if v <= 0:
                raise ValueError("sequence numbers and UIDs start at 1")
            if ranges and ranges[-1][1] + 1 == v:
                ranges[-1] = (ranges[-1][0], v)
            else:
                ranges.append((v, v))
        return cls(tuple(ranges))

    @property
    def has_star(self) -> bool:
        """True when the set mentions ``*``, so its meaning depends on the mailbox."""
        return any(a == STAR or b == STAR for a, b in self.ranges)

    def resolve(self, max_value: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ranges with ``*`` replaced by ``max_value``.

        RFC 9051 §9: ``*`` is the largest number in use, and ``n:*`` with ``n``
        beyond it still covers the largest. With an empty mailbox (max 0) a
        ``*`` matches nothing. ``$`` must be substituted by the session first.
        """
        if self.saved:
            raise ValueError("'$' must be replaced by the saved search result first")
        spans: list[tuple[int, int]] = []
        for a, b in self.ranges:
            if a == STAR:
                a = max_value
            if b == STAR:
                b = max_value
            if a > b:
                a, b = b, a
            if a < 1:
                if b < 1:
                    continue
                a = 1
            spans.append((a, b))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1] + 1:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged

    def iter(self, max_value: int) -> Iterator[int]:
        """Each number of the set once, ascending, ``*`` being ``max_value``."""
        for a, b in self.resolve(max_value):
            yield from range(a, b + 1)

    def contains(self, value: int, max_value: int) -> bool:
        """Whether ``value`` is in the set when ``*`` is ``max_value``."""
        for a, b in self.ranges:
            a = max_value if a == STAR else a
            b = max_value if b == STAR else b
            if min(a, b) <= value <= max(a, b) and value >= 1:
                return True
        return False

    def format(self) -> str:
        """Compact wire form: ``1:3,5,7:*`` (ranges as stored, ``$`` if saved)."""
        if self.saved:
            return "$"
        parts: list[str] = []
        for a, b in self.ranges:
            sa = "*" if a == STAR else str(a)
            parts.append(sa if a == b else f"{sa}:{'*' if b == STAR else b}")
        return ",".join(parts)

    def __str__(self) -> str:
        return self.format()
