"""IMAP string atoms used by the precomputed views (ENVELOPE, BODY, BODYSTRUCTURE).

The views are rendered once at delivery and stored as text, so the rendering must already
follow the IMAP grammar exactly: ``NIL`` for an absent value, a quoted string when the
value is plain 7-bit text, a literal otherwise.

Header bytes are carried as ``str`` decoded with UTF-8 and ``surrogateescape`` so that any
byte sequence found in a message survives the round trip to JSON and back: the IMAP server
turns a view into wire bytes with :func:`wire_bytes`, and literal lengths are counted on those
bytes, never on Python characters.
"""

from __future__ import annotations

from collections.abc import Iterable

ENCODING = "utf-8"
ERRORS = "surrogateescape"


def wire_bytes(text: str) -> bytes:
    """The exact bytes a rendered view stands for (inverse of the header decoding)."""
    return text.encode(ENCODING, ERRORS)


def _is_quotable(value: str) -> bool:
    # RFC 3501 §9 / RFC 9051 §9: quoted = DQUOTE *QUOTED-CHAR DQUOTE, QUOTED-CHAR is any
    # 7-bit TEXT-CHAR (not CR, LF or NUL); anything else needs a literal.
    return all(0 < ord(ch) < 0x80 and ch not in "\r\n" for ch in value)


def astring(value: str) -> str:
    """A ``string`` (RFC 3501 §4.3): quoted when possible, literal otherwise."""
    value = value.replace("\x00", "")  # NUL is not allowed even in a literal (RFC 3501 §4.3)
    if _is_quotable(value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    length = len(wire_bytes(value))
    return "{" + str(length) + "}\r\n" + value


def nstring(value: str | None) -> str:
    """An ``nstring``: ``NIL`` for an absent value, else a string (RFC 3501 §4.5)."""
    return "NIL" if value is None else astring(value)


def string_list(values: Iterable[str]) -> str:
    """A parenthesised list of strings separated by one space."""
    return "(" + " ".join(astring(v) for v in values) + ")"


def param_list(params: list[tuple[str, str]]) -> str:
    """``body-fld-param`` (RFC 3501 §9): ``NIL`` when empty, else ``(attr value ...)``."""
    if not params:
        return "NIL"
    return "(" + " ".join(astring(k) + " " + astring(v) for k, v in params) + ")"
