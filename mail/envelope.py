"""The IMAP ENVELOPE of a message, rendered once at delivery (RFC 3501 §7.4.2, RFC 9051 §7.5.2).

Fields in order: date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id.
Values are the unfolded header text as written: RFC 2047 encoded words are passed raw, the
client decodes them. An absent field is ``NIL``; a present but empty Subject is ``""``; an
address header with no address in it is ``NIL``. Sender and Reply-To default to From.
The first occurrence of a repeated field is used.
"""

from __future__ import annotations

from mail.addresses import Address, parse_address_list
from mail.imapstring import nstring
from mail.mimeheader import Header


def render_address_list(addresses: list[Address]) -> str:
    """``"(" 1*address ")"`` or ``NIL`` (RFC 3501 §9 env-from etc.)."""
    if not addresses:
        return "NIL"
    return "(" + "".join("(" + " ".join(nstring(x) for x in a) + ")" for a in addresses) + ")"


def render_envelope(header: Header) -> str:
    """The parenthesised ENVELOPE of the message whose header is ``header``."""
    from_ = parse_address_list(header.get("from"))
    # RFC 3501 §7.4.2: "If the Sender or Reply-To lines are absent in the [RFC-2822] header,
    # or are present but empty, the server sets the corresponding member of the envelope to
    # be the same value as the from member".
    sender = parse_address_list(header.get("sender")) or from_
    reply_to = parse_address_list(header.get("reply-to")) or from_
    fields = [
        nstring(header.get("date")),
        nstring(header.get("subject")),
        render_address_list(from_),
        render_address_list(sender),
        render_address_list(reply_to),
        render_address_list(parse_address_list(header.get("to"))),
        render_address_list(parse_address_list(header.get("cc"))),
        render_address_list(parse_address_list(header.get("bcc"))),
        nstring(header.get("in-reply-to")),
        nstring(header.get("message-id")),
    ]
    return "(" + " ".join(fields) + ")"
