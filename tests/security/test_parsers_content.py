"""Found by the ``smtp_content`` fuzz target: the line-length limit missed the last line.

With BDAT a message may end without CRLF (RFC 3030 §2). When the last piece read held a line
break, the text after it was only remembered as the start of the next line, and the end of
the message never checked it: ``BDAT n LAST`` with ``a CRLF`` and 30,000 octets without a
break was accepted although lines are limited to 9,980 octets.
"""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.timeout(60)


async def test_bdat_last_line_longer_than_the_limit_is_refused(gateway: RunningGateway) -> None:
    limit = gateway.settings.smtp.max_line_length
    bob, _ = await gateway.add_mailbox("bob")
    data = (f"From: <{gateway.demo_address}>\r\nTo: <{bob}>\r\n\r\n".encode()
            + b"x" * (limit + 100))

    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", gateway.submission_port, timeout=30) as client:
            client.starttls(context=gateway.client_context())
            client.login(gateway.demo_address, gateway.demo_password)
            client.mail(gateway.demo_address)
            client.rcpt(bob)
            client.send(f"BDAT {len(data)} LAST\r\n".encode() + data)
            return client.getreply()

    code, reply = await asyncio.to_thread(run)
    assert (code, reply) == (550, f"5.6.0 Message refused: a line is longer than {limit} "
                                  "octets (RFC 5321 section 4.5.3.1.6)".encode())
    assert await gateway.inbox_messages(bob) == []
