"""Age of a request in working hours (weekends and French public holidays excluded)."""

from __future__ import annotations

from datetime import date, datetime

from accounts.working_hours import PARIS, easter, public_holidays, working_hours_between


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


def test_easter_and_moving_holidays() -> None:
    assert easter(2024) == date(2024, 3, 31)
    assert easter(2025) == date(2025, 4, 20)
    assert easter(2026) == date(2026, 4, 5)
    days = public_holidays(2026)
    assert date(2026, 4, 6) in days  # lundi de Pâques
    assert date(2026, 5, 14) in days  # Ascension
    assert date(2026, 5, 25) in days  # lundi de Pentecôte
    assert len(days) == 11


def test_weekend_does_not_count() -> None:
    # Friday 18:00 → Monday 18:00: 6 hours of Friday + 18 of Monday
    assert working_hours_between(paris(2026, 11, 27, 18), paris(2026, 11, 30, 18)) == 24.0


def test_public_holiday_does_not_count() -> None:
    # Thursday 24 Dec 12:00 → Monday 28 Dec 12:00: 12 h of Thursday + 12 h of Monday
    assert working_hours_between(paris(2026, 12, 24, 12), paris(2026, 12, 28, 12)) == 24.0


def test_late_after_two_working_days() -> None:
    start = paris(2026, 12, 4, 20)  # a Friday evening
    # 4 h of Friday, none of the weekend, 24 of Monday, then Tuesday
    assert working_hours_between(start, paris(2026, 12, 8, 16)) == 44.0
    assert working_hours_between(start, paris(2026, 12, 8, 20)) == 48.0
    assert working_hours_between(start, start) == 0.0
