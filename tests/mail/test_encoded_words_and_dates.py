"""RFC 2047 encoded words decoded one by one (:mod:`mail.encodedwords`) and obsolete Date
years (:mod:`mail.dates`); the IMAP corpus (cases 048-056, 091-094) covers them end to end."""

from __future__ import annotations

import pytest

from mail.dates import parse_date
from mail.encodedwords import decode_encoded_words


@pytest.mark.parametrize(("text", "decoded"), [
    # RFC 2047 §6.2: white space between two encoded words is dropped, other text kept.
    ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
    ("=?iso-8859-1?q?caf=E9?=\t =?utf-8?q?_cr=C3=A8me?=", "café crème"),
    ("Re:  =?utf-8?q?x?=  fin", "Re:  x  fin"),
    # A character split across two words of one charset comes out whole.
    ("=?utf-8?b?w6k=?= =?utf-8?q?=C3?= =?utf-8?q?=A9?=", "éé"),
    # RFC 2047 §6.2/§6.3: what cannot be decoded stays as written, the rest is decoded,
    # and the white space around a word kept as written stays.
    ("=?x-inconnu?q?a?= =?utf-8?q?b?=", "=?x-inconnu?q?a?= b"),
    ("=?utf-8?b?QUJD?= =?utf-8?b?Q?=", "ABC =?utf-8?b?Q?="),
    # RFC 2231 §5: a language after the charset.
    ("=?ISO-8859-1*fr?Q?=E9t=E9?=", "été"),
    # Q: "_" is a space, =5F an underscore; lower-case hex is read.
    ("=?utf-8?q?a_b=5Fc=c3=a9?=", "a b_cé"),
    ("pas de mot encodé", "pas de mot encodé"),
])
def test_encoded_words(text: str, decoded: str) -> None:
    assert decode_encoded_words(text) == decoded


@pytest.mark.parametrize(("value", "year"), [
    ("Fri, 1 Jan 60 12:00:00 GMT", 1960),  # RFC 5322 §4.3: 50-99 + 1900
    ("Sat, 1 Jan 00 12:00:00 GMT", 2000),  # 00-49 + 2000
    ("1 Jan 49 12:00 +0000", 2049),
    ("Mon, 6 Jan 125 10:00:00 UT", 2025),  # three digits + 1900
    ("Mon, 6 Jan 2025 10:00:00 +0100", 2025),
])
def test_obsolete_years(value: str, year: int) -> None:
    assert parse_date(value).year == year


def test_unreadable_date_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse_date("demain matin")
