"""RFC 2047 encoded words decoded one by one, for search and sorting (never for ENVELOPE,
which gives the header as written).

Each encoded word stands on its own (RFC 2047 §6.2, §6.3): one that cannot be decoded (a
charset nobody knows, a broken encoding) is shown as written, and the others of the same field
are still decoded. White space between two decoded encoded words is dropped (RFC 2047
§6.2); the rest of the text is kept as it is. Adjacent words of one charset are decoded
together, so a character that a mailer split across two words (which RFC 2047 §5 forbids,
and which happens) comes out whole. RFC 2231 §5 allows a language after the charset
(``=?utf-8*fr?q?...?=``); the language does not change the text.
"""

from __future__ import annotations

import binascii
import codecs
import re

_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def _codec(charset: str) -> str | None:
    """The codec of an encoded word's charset (its RFC 2231 language removed), or None."""
    name = charset.split("*", 1)[0]
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def _octets(encoding: str, text: str) -> bytes | None:
    """The octets of an encoded word's text, or None when they cannot be read."""
    if encoding in "qQ":
        # RFC 2047 §4.2: "_" is the octet 0x20, "=XX" an octet; other characters as they are.
        try:
            data = text.replace("_", " ").encode("ascii")
        except UnicodeEncodeError:
            return None
        return _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), data)
    # RFC 2047 §4.1 (base64): letters outside the alphabet make the word ill-formed (§6.3);
    # they are skipped, as RFC 2045 §6.8 does in bodies, and the padding is restored.
    cleaned = _NOT_BASE64.sub("", text)
    if len(cleaned) % 4 == 1:
        return None
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        return None


def decode_encoded_words(text: str) -> str:
    """``text`` with each decodable encoded word replaced by its characters."""
    if "=?" not in text:
        return text
    out: list[str] = []
    run: list[bytes] = []  # octets of adjacent decoded words of one charset
    run_codec: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal run, run_codec
        if run and run_codec is not None:
            out.append(b"".join(run).decode(run_codec, "replace"))
        run, run_codec = [], None

    for m in _WORD.finditer(text):
        between = text[pos:m.start()]
        codec = _codec(m.group(1))
        data = None if codec is None else _octets(m.group(2), m.group(3))
        adjacent = bool(run) and (between == "" or between.isspace())
        if data is None or codec is None:
            flush()
            out.append(between + m.group(0))
        elif adjacent and codec == run_codec:
            run.append(data)
        else:
            flush()
            if not adjacent:
                out.append(between)
            run, run_codec = [data], codec
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)
