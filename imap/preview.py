"""RFC 8970 PREVIEW: a short plain-text abstract of a message, from its stored view.

The preview is made from the first text part of the message itself (parts inside an
attached message/rfc822 are someone else's message): the first ``text/plain`` leaf, else
the first ``text/html`` one with its markup removed. Only that part's MIME header and the
start of its body are read (:data:`READ_LIMIT` octets, whatever the size of the message),
its transfer encoding is undone (:mod:`imap.binary`) and its charset decoded; white space
runs become one space and the text is cut at :data:`PREVIEW_CHARS` characters (RFC 8970
§3.2: at most 256). A message without a text part has the empty preview ``""``; NIL is
for a body no longer stored (retention purge).
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
import re
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser

from imap.binary import decode_quoted_printable, transfer_encoding
from mail.views import MessageView

__all__ = ["PREVIEW_CHARS", "READ_LIMIT", "preview"]

PREVIEW_CHARS = 256
"""RFC 8970 §3.2: the preview is no longer than 256 characters."""
READ_LIMIT = 16 * 1024
"""Octets of the part's body read at most: enough for 256 characters of any encoding."""
_MAX_PARTS = 64
_SPACES = re.compile(r"\s+")
_B64_NOISE = re.compile(rb"[^A-Za-z0-9+/=]")

ReadRange = Callable[[int, int], Awaitable[bytes]]


class _Text(HTMLParser):
    """The text of an HTML fragment, without the contents of script and style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr", "td"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def _part_key(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in name.split("."))


def _decode_start(body: bytes, encoding: str, complete: bool) -> bytes:
    """The first octets of a body with its transfer encoding undone, cut cleanly."""
    if encoding == "base64":
        data = _B64_NOISE.sub(b"", body)
        if not complete:
            data = data[: len(data) - len(data) % 4]
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            return b""
    if encoding == "quoted-printable":
        if not complete:
            body = body[: body.rfind(b"\n") + 1] or body
        return decode_quoted_printable(body)
    return body


async def preview(view: MessageView, read: ReadRange) -> str:
    """The RFC 8970 preview text of the message ``view`` describes."""
    messages = [name for name, off in view.parts.items() if off.is_message]
    html: str | None = None
    for name in sorted(view.parts, key=_part_key)[:_MAX_PARTS]:
        off = view.parts[name]
        if off.is_message or any(name.startswith(m + ".") for m in messages):
            continue
        header = await read(off.header_start, off.header_end)
        parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header)
        ctype = parsed.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        end = min(off.body_end, off.body_start + READ_LIMIT)
        body = await read(off.body_start, end)
        data = _decode_start(body, transfer_encoding(header), end == off.body_end)
        charset = parsed.get_content_charset() or "us-ascii"
        try:
            text = data.decode(charset, "replace")
        except LookupError:
            text = data.decode("utf-8", "replace")
        if ctype == "text/plain":
            return _shorten(text)
        if html is None:
            html = text
    if html is None:
        return ""
    parser = _Text()
    parser.feed(html)
    return _shorten("".join(parser.out))


def _shorten(text: str) -> str:
    text = _SPACES.sub(" ", text.replace("\ufffd", " ")).strip()
    # No control characters in an IMAP string (RFC 9051 §4.3: no CR, LF or NUL).
    text = "".join(ch for ch in text if ch >= " " and ch != "\x7f")
    return text[:PREVIEW_CHARS]
