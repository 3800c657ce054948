"""Property tests: the parser only ever raises ParseError, and answers with the tag.

Bounded so the whole file runs in a few seconds; ``fuzz_parser.py`` runs the
same target without bounds.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imap.protocol import ParseError, parse_command, read_tag

_BAD_LINE = re.compile(rb"(\S+) (BAD|NO) .*\r\n\Z")

WORDS = [
    b"FETCH",
    b"UID",
    b"SEARCH",
    b"SORT",
    b"THREAD",
    b"REVERSE",
    b"REFERENCES",
    b"STORE",
    b"LIST",
    b"APPEND",
    b"SELECT",
    b"STATUS",
    b"LOGIN",
    b"AUTHENTICATE",
    b"ID",
    b"ENABLE",
    b"SETQUOTA",
    b"SETACL",
    b"COPY",
    b"MOVE",
    b"EXPUNGE",
    b"CREATE",
    b"RETURN",
    b"CHARSET",
    b"OR",
    b"NOT",
    b"BODY.PEEK[",
    b"HEADER.FIELDS",
    b"BINARY[",
    b"(",
    b")",
    b"[",
    b"]",
    b"<",
    b">",
    b" ",
    b"*",
    b"$",
    b"1:*",
    b"5:2",
    b'"',
    b"\\",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"~{1}\r\n",
    b"NIL",
    b"CHANGEDSINCE",
    b"VANISHED",
    b"QRESYNC",
    b"CONDSTORE",
    b"MODSEQ",
    b"1-Feb-1994",
    b"&",
    b"-",
    b"\xc3\xa9",
    b"\x00",
    b"INBOX",
    b"+FLAGS.SILENT",
    b"\\Seen",
    b"UNCHANGEDSINCE",
    b"USE",
    b"SUBSCRIBED",
]

token_soup = st.lists(st.one_of(st.sampled_from(WORDS), st.binary(max_size=4)), max_size=25).map(
    b"".join
)


def _check(line: bytes) -> None:
    try:
        parse_command(line)
    except ParseError as exc:
        reply = exc.response()
        assert _BAD_LINE.match(reply), reply
        tag = read_tag(line)
        if tag is not None and line[len(tag) : len(tag) + 1] == b" ":
            assert exc.tag == tag and reply.startswith(tag.encode() + b" ")
        elif exc.tag is None:
            assert reply.startswith(b"* BAD ")


@given(st.binary(max_size=200))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_only_parse_error(line: bytes) -> None:
    _check(line)


@given(token_soup)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_command_like_soup_only_parse_error(rest: bytes) -> None:
    _check(b"t1 " + rest)
    _check(b"t2 UID " + rest)


@given(st.sampled_from([b"FETCH 1 ", b"SEARCH ", b"LIST ", b"STORE 1 ", b"SELECT x ",
                        b"SORT (DATE) UTF-8 ", b"THREAD REFERENCES UTF-8 ", b"SORT "]),
       token_soup)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_prefixed_soup_only_parse_error(prefix: bytes, rest: bytes) -> None:
    _check(b"tag " + prefix + rest)


def test_pathological_inputs_are_bounded() -> None:
    for line in [
        b"a SEARCH " + b"(" * 50_000,
        b"a SEARCH " + b"NOT " * 50_000 + b"ALL",
        b"a SEARCH " + b"OR " * 50_000,
        b"a SORT (DATE) UTF-8 " + b"NOT " * 50_000 + b"ALL",
        b"a SORT (" + b"REVERSE DATE " * 20_000 + b") UTF-8 ALL",
        b"a THREAD REFERENCES UTF-8 " + b"(" * 50_000,
        b'a LOGIN "' + b"\\\\" * 50_000,
        b"a FETCH " + b"1," * 50_000 + b" FLAGS",
        b"a FETCH 1 (" + b"FLAGS " * 50_000,
        b"a LIST (" + b"SUBSCRIBED " * 20_000 + b") x y",
        b"a APPEND x {99999999999999999999}\r\n",
    ]:
        _check(line)
