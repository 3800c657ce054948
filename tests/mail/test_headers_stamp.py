"""Date and Received stamps written at accept time (the current-second date is reused)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from mail.headers import ReceivedInfo, date_value, received_field


def test_date_value_is_now_in_rfc5322_form_and_reused_within_a_second() -> None:
    first = date_value()
    parsed = parsedate_to_datetime(first)  # RFC 5322 §3.3 date-time, with its offset
    assert parsed.tzinfo is not None
    assert abs(parsed - datetime.now(UTC)) < timedelta(seconds=2)
    second = int(time.time())
    again, third = date_value(), date_value()
    if int(time.time()) == second:  # both within one second: the same text
        assert again == third
    time.sleep(1.05)
    assert parsedate_to_datetime(date_value()) > parsed


def test_date_value_of_a_given_moment() -> None:
    moment = datetime(2024, 3, 18, 9, 0, tzinfo=UTC)
    assert parsedate_to_datetime(date_value(moment)) == moment


def test_received_field_quotes_comment_specials() -> None:
    info = ReceivedInfo(
        helo="ws (x)", client_ip="192.0.2.7", client_name=None, by_host="mx.mssante.test",
        protocol="ESMTPSA", smtp_id="ID1", auth_login="dr(x)\\y@mssante.test",
        auth_method="PLAIN", when=datetime(2024, 3, 18, 9, 0, tzinfo=UTC),
    )
    text = received_field(info).decode("ascii")
    assert "from ws??x? (unknown [192.0.2.7])" in text
    assert "(Authenticated sender: dr\\(x\\)\\\\y@mssante.test, method PLAIN)" in text
    assert text.endswith("\r\n") and "with ESMTPSA id ID1;" in text
