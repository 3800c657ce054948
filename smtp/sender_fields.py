"""Submission: the originator fields besides From follow the same send-as rule.

Mail clients show ``Sender:`` as who sent a message on the author's behalf and
``Resent-From:``/``Resent-Sender:`` as who forwarded it (RFC 5322 §3.6.2, §3.6.6). A reader
trusts them as much as From, so a user may name in them only its own mailbox or one it may
send as, exactly like MAIL FROM and From; otherwise the message is refused at the end of
DATA with 553 5.7.1 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from trustspace.policy import parse_address
from trustspace.refusal import Refusal


def check_sender_fields(
    senders: Sequence[tuple[str, str]], authenticated: str, may_send_as: Iterable[str] = ()
) -> None:
    """Refuses the first ``(field, address)`` the authenticated user may not send as."""
    if not senders:
        return
    allowed = {parse_address(a, role="sender").key() for a in (authenticated, *may_send_as)}
    for name, value in senders:
        address = parse_address(value, role="sender")
        if address.key() not in allowed:
            raise Refusal(553, "5.7.1", f"{authenticated} is not allowed to send as {address} "
                          f"(in the {name} header)")
