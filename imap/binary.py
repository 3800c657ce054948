"""RFC 3516 BINARY: a body part with its Content-Transfer-Encoding undone.

A client asking ``BINARY[1.2]`` wants the attachment's octets, not its base64 text; decoding
on the server saves it a third of the transfer and its own decoder. Only the part's MIME
header and body ranges are read from the encrypted store (which decrypts just the segments
they touch), never the whole message. The stored view does not keep each part's encoding,
so it is read from the part's own MIME header, a few hundred octets.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Awaitable, Callable

from imap.protocol import ImapRefusal
from mail.views import MessageView

ReadRange = Callable[[int, int], Awaitable[bytes]]

# RFC 2045 §6.1: the encodings whose content is already the octets (identity encodings).
_IDENTITY = frozenset({"", "7bit", "8bit", "binary"})
_CTE = re.compile(
    rb"(?im)^content-transfer-encoding[ \t]*:[ \t]*((?:[^\r\n]*)(?:\r?\n[ \t][^\r\n]*)*)"
)
_COMMENT = re.compile(rb"\([^()]*\)")


def transfer_encoding(mime_header: bytes) -> str:
    """The lower-case Content-Transfer-Encoding token of a MIME header ("" if absent)."""
    m = _CTE.search(mime_header)
    if m is None:
        return ""
    value = _COMMENT.sub(b" ", m.group(1))  # RFC 5322 §3.2.2 comments
    return value.strip().split(b";")[0].strip().decode("ascii", "replace").lower()


def decode(data: bytes, encoding: str) -> bytes:
    """``data`` with ``encoding`` undone; :class:`ImapRefusal` ``[UNKNOWN-CTE]`` otherwise."""
    if encoding in _IDENTITY:
        return data
    if encoding == "base64":
        # RFC 2045 §6.8: characters outside the alphabet (line breaks) are ignored.
        try:
            return binascii.a2b_base64(data)
        except binascii.Error as exc:
            raise ImapRefusal("NO", "PARSE", f"The part's base64 content is damaged ({exc})"
                              ) from exc
    if encoding == "quoted-printable":
        return decode_quoted_printable(data)
    # RFC 3516 §4.3: an encoding the server cannot undo is refused with UNKNOWN-CTE.
    raise ImapRefusal("NO", "UNKNOWN-CTE",
                      f"Cannot decode content-transfer-encoding {encoding[:40]!r}; fetch the "
                      "part with BODY[] and decode it yourself")


_QP_LINE_END = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


def decode_quoted_printable(data: bytes) -> bytes:
    """RFC 2045 §6.7: white space at the end of an encoded line is not content (rule 3:
    it was added in transport and must be removed), so ``=`` followed by such white space
    and the line break is a soft line break (rule 5); then ``=XX`` and soft breaks are
    undone."""
    return binascii.a2b_qp(_QP_LINE_END.sub(b"", data))


async def read_binary(view: MessageView, part: tuple[int, ...], read: ReadRange) -> bytes | None:
    """The decoded content of ``part`` (the whole message for ``()``); None if absent.

    RFC 3516 §4.2: an empty section is the whole message as stored (its top-level
    encoding describes a body that the header stays attached to).
    """
    if not part:
        return await read(0, view.size)
    offsets = view.parts.get(".".join(str(n) for n in part))
    if offsets is None:
        return None
    body = await read(offsets.body_start, offsets.body_end)
    if offsets.is_message:
        return body  # RFC 2046 §5.2.1: message/rfc822 is never base64/QP encoded
    header = await read(offsets.header_start, offsets.header_end)
    return decode(body, transfer_encoding(header))


async def binary_size(view: MessageView, part: tuple[int, ...], read: ReadRange) -> int:
    """RFC 3516 §4.2 BINARY.SIZE: octets after decoding, reading the body only if encoded."""
    if not part:
        return view.size
    offsets = view.parts.get(".".join(str(n) for n in part))
    if offsets is None:
        return 0
    if not offsets.is_message:
        encoding = transfer_encoding(await read(offsets.header_start, offsets.header_end))
        if encoding not in _IDENTITY:
            return len(decode(await read(offsets.body_start, offsets.body_end), encoding))
    return offsets.body_end - offsets.body_start
