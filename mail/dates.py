"""The Date field of a message read as RFC 5322 says, obsolete forms included.

``email.utils.parsedate_to_datetime`` reads most dates, but not the obsolete years the way
RFC 5322 §4.3 defines them: "If a two digit year is encountered whose value is between 00
and 49, the year is interpreted by adding 2000 ... between 50 and 99, or any three digit
year is encountered, the year is interpreted by adding 1900." Python pivots two-digit years
at 69 (so 60 would be 2060) and keeps three-digit years as they are (125 would be the year
125). The year is made four digits first, then Python reads the rest (obsolete zones such
as EST or UT, a missing day of week or seconds, a trailing comment).
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

# day month year, after an optional "Mon," (RFC 5322 §3.3 date, §4.3 obs-year).
_DAY_MONTH_YEAR = re.compile(r"^(\s*(?:[A-Za-z]+\s*,)?\s*\d{1,2}\s+[A-Za-z]+\s+)(\d{2,3})(?=\s)")


def _four_digit_year(match: re.Match[str]) -> str:
    year = int(match.group(2))
    if len(match.group(2)) == 3 or year >= 50:
        year += 1900
    else:
        year += 2000
    return match.group(1) + str(year)


def parse_date(value: str) -> datetime:
    """The date-time of a Date field; raises like ``parsedate_to_datetime`` when unreadable
    (ValueError, TypeError, IndexError, OverflowError)."""
    return parsedate_to_datetime(_DAY_MONTH_YEAR.sub(_four_digit_year, value, count=1))
