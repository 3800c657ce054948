"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3, kept by RFC 9051 §5.1.3 for rev1 clients).

Printable ASCII except ``&`` stands for itself, ``&`` is ``&-``, and every other
run of characters is UTF-16BE in base64 with ``,`` instead of ``/``, between
``&`` and ``-``.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["mutf7_decode", "mutf7_encode"]

_DIRECT = re.compile(r"[\x20-\x25\x27-\x7e]+")
_SHIFTED = re.compile(rb"&([A-Za-z0-9+,]*)-")


def _b64(run: str) -> str:
    raw = run.encode("utf-16-be")
    return base64.b64encode(raw).rstrip(b"=").decode("ascii").replace("/", ",")


def mutf7_encode(name: str) -> bytes:
    """Encode a Unicode mailbox name for an IMAP4rev1 client."""
    out: list[str] = []
    pos = 0
    n = len(name)
    while pos < n:
        m = _DIRECT.match(name, pos)
        if m:
            out.append(m.group())
            pos = m.end()
            continue
        if name[pos] == "&":
            out.append("&-")
            pos += 1
            continue
        end = pos
        while end < n and name[end] != "&" and not ("\x20" <= name[end] <= "\x7e"):
            end += 1
        out.append("&" + _b64(name[pos:end]) + "-")
        pos = end
    return "".join(out).encode("ascii")


def mutf7_decode(data: bytes | str) -> str:
    """Decode a modified UTF-7 mailbox name; ``ValueError`` when it is not valid.

    Validation is strict on what RFC 3501 §5.1.3 forbids: 8-bit octets, a
    shifted run encoding only printable ASCII, two adjacent shifted runs, and
    unterminated ``&``.
    """
    raw = data.encode("ascii") if isinstance(data, str) else data
    if any(b > 0x7E or b < 0x20 for b in raw):
        raise ValueError("mailbox name must be 7-bit modified UTF-7")
    out: list[str] = []
    pos = 0
    last_shift_end = -1
    while True:
        amp = raw.find(b"&", pos)
        if amp < 0:
            out.append(raw[pos:].decode("ascii"))
            return "".join(out)
        out.append(raw[pos:amp].decode("ascii"))
        m = _SHIFTED.match(raw, amp)
        if not m:
            raise ValueError("unterminated or invalid '&' sequence in mailbox name")
        body = m.group(1)
        if not body:
            out.append("&")
        else:
            if last_shift_end == amp:
                raise ValueError("adjacent encoded runs in mailbox name")
            padded = body.replace(b",", b"/") + b"=" * (-len(body) % 4)
            try:
                utf16 = base64.b64decode(padded, validate=True)
                text = utf16.decode("utf-16-be")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError("invalid modified base64 in mailbox name") from exc
            if any("\x20" <= c <= "\x7e" for c in text):
                raise ValueError("printable ASCII must not be base64-encoded")
            if _b64(text).encode("ascii") != body:
                raise ValueError("non-canonical modified base64 in mailbox name")
            out.append(text)
            last_shift_end = m.end()
        pos = m.end()
