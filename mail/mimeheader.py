"""Reading header blocks and the structured MIME header fields (RFC 5322, RFC 2045, RFC 2183).

Only header blocks are walked line by line: they are small. Bodies are never split into lines
here (see :mod:`mail.mime`). Values are decoded with UTF-8 and ``surrogateescape`` so that the
original bytes can always be recovered (see :mod:`mail.imapstring`).

The parsers are lenient the way deployed servers are: a malformed field is skipped rather than
refused, because a message that was accepted must always get a view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mail.imapstring import ENCODING, ERRORS

LF = 0x0A

# RFC 2045 §5.1: tspecials, plus space and controls, end a token.
_TSPECIALS = frozenset('()<>@,;:\\"/[]?= \t\r\n')
_LINE_SPLIT = re.compile(r"\r?\n")


def find_body_start(raw: bytes, start: int, end: int) -> int:
    """Offset just after the blank line that ends the header block in ``raw[start:end]``.

    The header range is ``[start, result)`` and includes the blank line (RFC 3501 §6.4.5 says
    every header fetch includes it). Without a blank line the whole range is header and the
    result is ``end``. Bare LF is accepted for robustness.
    """
    if start >= end:
        return end
    # RFC 5322 §2.1: the header is separated from the body by an empty line.
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    if raw[start] == LF:
        return start + 1
    crlf = raw.find(b"\n\r\n", start, end)
    limit = end if crlf < 0 else crlf + 2
    bare = raw.find(b"\n\n", start, limit)
    if bare >= 0:
        return bare + 2
    if crlf >= 0:
        return crlf + 3
    return end


@dataclass(slots=True)
class Header:
    """The fields of one header block, in order, with names and unfolded values."""

    fields: list[tuple[str, str]]  # (lowercased name, unfolded value stripped of outer WSP)

    def get(self, name: str) -> str | None:
        """The first occurrence of a field (RFC 5322 allows one for most of ours)."""
        name = name.lower()
        for key, value in self.fields:
            if key == name:
                return value
        return None


def decode_header_bytes(data: bytes) -> str:
    """Header bytes as text without losing any byte (see :mod:`mail.imapstring`)."""
    return data.decode(ENCODING, ERRORS)


def parse_header(raw: bytes, start: int, end: int) -> Header:
    """Split ``raw[start:end]`` into fields; continuation lines are unfolded (RFC 5322 §2.2.3)."""
    text = decode_header_bytes(raw[start:end])
    fields: list[tuple[str, str]] = []
    name: str | None = None
    parts: list[str] = []
    for line in _LINE_SPLIT.split(text):
        if line[:1] in (" ", "\t") and name is not None:
            parts.append(line)
            continue
        if name is not None:
            fields.append((name, "".join(parts).strip(" \t\r")))
            name = None
        colon = line.find(":")
        if colon <= 0:
            continue  # blank line, mbox "From " line or garbage: not a field
        # RFC 5322 §4.5.1 (obsolete syntax): WSP may precede the colon.
        candidate = line[:colon].rstrip(" \t")
        if not candidate or any(c in " \t" for c in candidate):
            continue
        name = candidate.lower()
        parts = [line[colon + 1 :]]
    if name is not None:
        fields.append((name, "".join(parts).strip(" \t\r")))
    return Header(fields)


def skip_cfws(s: str, i: int) -> int:
    """Skip whitespace and (nested) comments (RFC 5322 §3.2.2)."""
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 0
            while i < n:
                c = s[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return i


def read_token(s: str, i: int) -> tuple[str, int]:
    """An RFC 2045 token starting at ``i`` (possibly empty)."""
    j = i
    n = len(s)
    while j < n and s[j] not in _TSPECIALS and ord(s[j]) > 0x1F:
        j += 1
    return s[i:j], j


def read_quoted(s: str, i: int) -> tuple[str, int]:
    """A quoted-string starting at the quote at ``i``, unescaped (RFC 5322 §3.2.4)."""
    out: list[str] = []
    i += 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i  # unterminated: lenient, take the rest


def strip_comments(s: str) -> str:
    """Remove comments from a short unquoted value such as ``us-ascii (Plain text)``."""
    if "(" not in s:
        return s.strip()
    out: list[str] = []
    i = 0
    while i < len(s):
        if s[i] == "(":
            i = skip_cfws(s, i)
            out.append(" ")
            continue
        out.append(s[i])
        i += 1
    return "".join(out).strip()


def parse_params(s: str, i: int) -> list[tuple[str, str]]:
    """The ``;attribute=value`` list of Content-Type / Content-Disposition (RFC 2045 §5.1).

    Attribute names are lowercased (they are case-insensitive); values are kept as written,
    with quoted-strings unescaped. RFC 2231 sections (``name*0*``) are returned as they appear.
    """
    params: list[tuple[str, str]] = []
    n = len(s)
    while True:
        i = skip_cfws(s, i)
        if i >= n:
            return params
        if s[i] != ";":
            nxt = s.find(";", i)
            if nxt < 0:
                return params
            i = nxt
        i = skip_cfws(s, i + 1)
        eq = s.find("=", i)
        semi = s.find(";", i)
        if eq < 0 or (0 <= semi < eq):
            if semi < 0:
                return params
            i = semi
            continue
        attr = strip_comments(s[i:eq]).lower()
        i = skip_cfws(s, eq + 1)
        if i < n and s[i] == '"':
            value, i = read_quoted(s, i)
        else:
            semi = s.find(";", i)
            stop = n if semi < 0 else semi
            value = strip_comments(s[i:stop])
            i = stop
        if attr and not any(c in " \t" for c in attr):
            params.append((attr, value))


def parse_content_type(value: str | None) -> tuple[str, str, list[tuple[str, str]]] | None:
    """``(type, subtype, params)`` as written, or ``None`` when absent or invalid."""
    if value is None:
        return None
    i = skip_cfws(value, 0)
    mtype, i = read_token(value, i)
    i = skip_cfws(value, i)
    if not mtype or i >= len(value) or value[i] != "/":
        return None
    i = skip_cfws(value, i + 1)
    subtype, i = read_token(value, i)
    if not subtype:
        return None
    return mtype, subtype, parse_params(value, i)


def parse_disposition(value: str | None) -> tuple[str, list[tuple[str, str]]] | None:
    """``(disposition type, params)`` of Content-Disposition (RFC 2183 §2), or ``None``."""
    if value is None:
        return None
    i = skip_cfws(value, 0)
    dtype, i = read_token(value, i)
    if not dtype:
        return None
    return dtype, parse_params(value, i)


def parse_token_value(value: str | None) -> str | None:
    """A single-token field such as Content-Transfer-Encoding (RFC 2045 §6.1)."""
    if value is None:
        return None
    token, _ = read_token(value, skip_cfws(value, 0))
    return token or None


def parse_language(value: str | None) -> list[str] | None:
    """Content-Language tags (RFC 3282 §2): a comma-separated list, comments removed."""
    if value is None:
        return None
    tags = [strip_comments(t) for t in value.split(",")]
    tags = [t for t in tags if t]
    return tags or None
