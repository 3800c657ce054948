"""Submission: the originator fields besides From follow the same send-as rule.

Mail clients show ``Sender:`` as who sent a message on the author's behalf and
``Resent-From:``/``Resent-Sender:`` as who forwarded it (RFC 5322 §3.6.2, §3.6.6). A reader
trusts them as much as From, so a user may name in them only its own mailbox or one it may
send as, exactly like MAIL FROM and From; otherwise the message is refused at the end of
DATA with 553 5.7.1 naming the field.

The other way round, a message written for someone else needs a ``Sender:`` (RFC 5322
§3.6.2: "the agent responsible for the actual transmission"): a secretary sending as a
doctor must be visible to the recipient, so submission adds ``Sender: <login>`` when the
message has none and its From is not (only) the logged-in user.
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


def on_behalf_of(from_addresses: Sequence[str], authenticated: str) -> list[str]:
    """The From mailboxes written for when they are not just the logged-in user (empty when
    the user writes as itself); the message then needs a Sender field."""
    me = authenticated.lower()
    authors = [a.lower() for a in from_addresses]
    if authors == [me] or not authors:
        return []
    return [a for a in authors if a != me] or authors


def sender_field(address: str) -> bytes:
    """``Sender: <address>`` (UTF-8 only for an internationalised address, RFC 6532)."""
    return f"Sender: <{address}>\r\n".encode()
