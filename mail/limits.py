"""Size rules applied to an accepted message before it is stored.

MSSanté caps each attachment at 10 MB once decoded (``smtp.max_attachment_size``), whatever
the transfer encoding inflates it to on the wire: a 10 MB PDF travels as ~13.7 MB of base64
and must still pass, an 11 MB one must not. The decoded sizes come from the message view
(:mod:`mail.views`), built once per message, so no rule here re-reads the body.

What counts as an attachment is every leaf part except the readable text of the message
(:func:`mail.mime.body_text_parts`), decided on the same MIME tree as BODYSTRUCTURE: a PDF
without a file name, an inline image, a forwarded message, a part without Content-Type
after the body, and whatever lies past the part-count limit all count. A refusal names
the part by file name, else by part number and type, so the sender knows which one.
"""

from __future__ import annotations

from mail.views import Attachment, MessageView
from trustspace.refusal import Refusal


def attachment_label(attachment: Attachment) -> str:
    """How a person recognises the attachment: its file name, else its MIME part number."""
    if attachment.filename:
        return f'"{attachment.filename}"'
    return f"part {attachment.part} ({attachment.content_type})"


def oversized_attachments(view: MessageView, max_decoded: int) -> list[Attachment]:
    """The attachments whose decoded size exceeds ``max_decoded`` octets, in message order."""
    return [a for a in view.search.attachments if a.decoded_size > max_decoded]


def check_attachment_sizes(view: MessageView, max_decoded: int) -> None:
    """Refuses the message when an attachment is larger than allowed once decoded.

    RFC 3463 §3.4 X.3.4 "message too big for system", with a 552 reply (RFC 5321
    §4.2.2: exceeded storage allocation), naming the first offending attachment so the
    sender knows which file to shrink or send another way.
    """
    too_big = oversized_attachments(view, max_decoded)
    if not too_big:
        return
    first = too_big[0]
    more = f" (and {len(too_big) - 1} more)" if len(too_big) > 1 else ""
    raise Refusal(
        552,
        "5.3.4",
        f"attachment {attachment_label(first)} is {_mb(first.decoded_size)} once decoded; "
        f"each attachment may be at most {_mb(max_decoded)}{more}",
    )


def _mb(octets: int) -> str:
    """Octets as a short human figure (1 MB = 1,048,576 octets, as the setting is written)."""
    return f"{octets / (1024 * 1024):.1f} MB ({octets} octets)"
