"""Property tests for the extension syntax (COMPRESS, NOTIFY, CATENATE, REPLACE, PREVIEW,
OBJECTID and SAVEDATE search keys, METADATA, IMAP URLs): the parser only ever raises ParseError with
a BAD/NO line, and the URL parser only ValueError. Bounded to run in seconds."""

from __future__ import annotations

import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imap.protocol.deflate import INFLATE_CHUNK
from imap.protocol.imapurl import parse_imap_url
from tests.imap.test_protocol_fuzz import _check

WORDS = [
    b"COMPRESS", b"DEFLATE", b"NOTIFY", b"SET", b"NONE", b"(STATUS)", b"SELECTED",
    b"SELECTED-DELAYED", b"PERSONAL", b"SUBTREE", b"MAILBOXES", b"MessageNew",
    b"MessageExpunge", b"FlagChange", b"MailboxName", b"REPLACE", b"UID", b"APPEND",
    b"CATENATE", b"TEXT", b"URL", b"PREVIEW", b"(LAZY)", b"LAZY", b"EMAILID", b"THREADID",
    b"SAVEDON", b"SAVEDSINCE", b"SAVEDATESUPPORTED", b"M12", b"1-Feb-2025", b"INBOX",
    b"(", b")", b" ", b'"', b"{3}\r\n", b"{2+}\r\n", b"~{1+}\r\n", b"NIL", b"1", b"*",
    b"/INBOX/;UID=1", b";SECTION=", b"\x00", b"\xc3\xa9", b"/private/", b"/shared/x",
    b"MAXSIZE", b"DEPTH", b"infinity", b"~{2+}\r\n",
]
soup = st.lists(st.one_of(st.sampled_from(WORDS), st.binary(max_size=3)), max_size=20).map(
    b"".join)


@given(st.sampled_from([b"COMPRESS ", b"NOTIFY ", b"NOTIFY SET ", b"REPLACE 1 INBOX ",
                        b"UID REPLACE 2 x ", b"APPEND INBOX CATENATE ", b"FETCH 1 PREVIEW ",
                        b"FETCH 1 (PREVIEW ", b"SEARCH ", b"STATUS INBOX ",
                        b"GETMETADATA ", b"GETMETADATA (", b"SETMETADATA INBOX (",
                        b'SETMETADATA "" (/private/a ']), soup)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_extension_soup_only_parse_error(prefix: bytes, rest: bytes) -> None:
    _check(b"e1 " + prefix + rest)


@given(st.text(max_size=80))
@settings(max_examples=400, deadline=None)
def test_imap_url_only_value_error(url: str) -> None:
    try:
        parse_imap_url(url)
    except ValueError:
        pass
    try:
        parse_imap_url("/INBOX;UIDVALIDITY=1/;UID=1/;SECTION=" + url)
    except ValueError:
        pass


def test_inflate_step_bounds_a_bomb() -> None:
    """The bound the server relies on (imap.protocol.deflate): one decompress step never
    yields more than INFLATE_CHUNK octets, whatever the ratio of the input."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = z.compress(b"\0" * (64 << 20)) + z.flush(zlib.Z_SYNC_FLUSH)
    inflate = zlib.decompressobj(-15)
    out = inflate.decompress(bomb, INFLATE_CHUNK)
    assert len(out) == INFLATE_CHUNK and inflate.unconsumed_tail
