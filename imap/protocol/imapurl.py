"""IMAP URLs (RFC 5092) as CATENATE uses them (RFC 4469 §3): one message or part of one.

Accepted forms (keys case-insensitive, RFC 5092 §6)::

    imap://[user[;AUTH=...]@]host[:port]/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]
    /mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]

``mailbox`` and ``section`` are percent-encoded (``enc-mailbox``, ``enc-section``); the
mailbox name is as on the IMAP wire (modified UTF-7, or UTF-8). URLAUTH (``;EXPIRE=``,
``;URLAUTH=``, RFC 4467) is not supported. Pure parsing: :class:`ValueError` names what is
wrong, the caller answers ``NO [BADURL]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

__all__ = ["ImapUrl", "parse_imap_url"]

_AUTHORITY = re.compile(r"imap://(?:(?P<user>[^@/;]*)(?:;[^@/]*)?@)?(?P<host>[^/:]+)"
                        r"(?::(?P<port>[0-9]{1,5}))?(?=/)", re.IGNORECASE)
_PATH = re.compile(
    r"/(?P<mailbox>[^;/?#][^;?#]*?)(?:;UIDVALIDITY=(?P<validity>[1-9][0-9]{0,9}))?"
    r"/;UID=(?P<uid>[1-9][0-9]{0,9})"
    r"(?:/;SECTION=(?P<section>[^/;?#]+))?"
    r"(?:/;PARTIAL=(?P<origin>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?\Z",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """A parsed message URL; ``user``/``host`` only for the absolute form."""

    mailbox: bytes  # the wire form of the name, percent-decoded
    uid: int
    uidvalidity: int | None = None
    section: bytes | None = None
    partial: tuple[int, int | None] | None = None
    user: str | None = None
    host: str | None = None


def parse_imap_url(url: str) -> ImapUrl:
    user = host = None
    rest = url
    if url[:7].lower() == "imap://":
        m = _AUTHORITY.match(url)
        if m is None:
            raise ValueError("the server part of the URL cannot be read")
        user = unquote_to_bytes(m.group("user")).decode("utf-8", "replace") \
            if m.group("user") is not None else None
        host = m.group("host").lower()
        rest = url[m.end():]
    if re.search(r";(?:EXPIRE|URLAUTH)=", rest, re.IGNORECASE):
        raise ValueError("URLAUTH is not supported")
    p = _PATH.match(rest)
    if p is None:
        raise ValueError("expected /mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s]")
    partial = None
    if p.group("origin") is not None:
        length = p.group("length")
        partial = (int(p.group("origin")), int(length) if length else None)
    section = p.group("section")
    return ImapUrl(
        mailbox=unquote_to_bytes(p.group("mailbox")), uid=int(p.group("uid")),
        uidvalidity=int(p.group("validity")) if p.group("validity") else None,
        section=unquote_to_bytes(section) if section else None, partial=partial,
        user=user, host=host,
    )
