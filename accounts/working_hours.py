"""Age of a request in working hours: weekends and French public holidays do not count.

The seed promises review "sous 48h ouvrées". An hour counts when it falls on a working day
(Monday to Friday, not a public holiday) in Paris time; every hour of such a day counts, so
48 working hours are two full working days: a request sent on Friday evening is late on
Wednesday evening, not on Sunday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
REVIEW_LIMIT_HOURS = 48.0


def easter(year: int) -> date:
    """Easter Sunday (Gregorian computus, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def public_holidays(year: int) -> set[date]:
    """The eleven national public holidays of metropolitan France."""
    sunday = easter(year)
    return {
        date(year, 1, 1), sunday + timedelta(days=1), date(year, 5, 1), date(year, 5, 8),
        sunday + timedelta(days=39), sunday + timedelta(days=50), date(year, 7, 14),
        date(year, 8, 15), date(year, 11, 1), date(year, 11, 11), date(year, 12, 25),
    }


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in public_holidays(day.year)


def working_hours_between(start: datetime, end: datetime) -> float:
    """Hours between ``start`` and ``end`` (aware datetimes) that fall on working days."""
    if end <= start:
        return 0.0
    start, end = start.astimezone(PARIS), end.astimezone(PARIS)
    total = 0.0
    day = start.date()
    while day <= end.date():
        if is_working_day(day):
            # day boundaries in UTC, so that DST days count 23 or 25 hours as they last
            lo = max(start, datetime(day.year, day.month, day.day, tzinfo=PARIS))
            nxt = day + timedelta(days=1)
            hi = min(end, datetime(nxt.year, nxt.month, nxt.day, tzinfo=PARIS))
            if hi > lo:
                total += (hi.astimezone(UTC) - lo.astimezone(UTC)).total_seconds() / 3600
        day += timedelta(days=1)
    return total
