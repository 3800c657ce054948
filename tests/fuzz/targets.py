"""Fuzz targets: each feeds arbitrary bytes to one parser of input the gateway does not
control, and fails on any exception the parser does not document.

A target is a plain ``Callable[[bytes], None]``, so the same function runs under atheris
(coverage-guided, ``tests/fuzz/run.py``, ``make fuzz``) and as an ordinary test replaying
the committed corpus (``tests/fuzz/test_fuzz.py``). The documented refusals are what the
callers catch and turn into protocol answers (``ParseError`` → IMAP ``BAD``, ``ParamError``
→ SMTP 501/555, ``WhitelistError`` → keep the last good list, ``ExtractError`` → refuse the
file); anything else would reach a session as an internal error.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from config.transport import parse_transport
from directory_ldap.extract import ExtractError, ExtractReader
from imap.protocol import (
    CommandReader,
    CommandTooLarge,
    ConnectionClosed,
    ParseError,
    parse_command,
)
from mail.addresses import parse_address_list
from mail.envelope import render_envelope
from mail.headers import read_header_facts
from mail.imapstring import ENCODING, ERRORS
from mail.mimeheader import (
    parse_content_type,
    parse_disposition,
    parse_header,
    parse_language,
    parse_token_value,
)
from mail.sections import SectionError, parse_section, section_ranges
from mail.views import MessageView, build_view, decode_param, decode_words
from smtp.content import ContentScanner
from smtp.dsn_params import ParamError, parse_mail_params, parse_rcpt_params, xtext_decode
from smtp.limits import SessionLimits
from trustspace.whitelist import WhitelistError, parse_whitelist
from web.autoconfig import (
    AutoconfigError,
    ClientSettings,
    autodiscover_address,
    autodiscover_response,
)

Target = Callable[[bytes], None]


def _text(data: bytes) -> str:
    """Bytes as the header parsers receive them (UTF-8 with surrogate escapes)."""
    return data.decode(ENCODING, ERRORS)


def imap_parser(data: bytes) -> None:
    """One command line (literals inline) through the IMAP grammar, both charsets."""
    for utf8 in (False, True):
        try:
            parse_command(data, utf8=utf8)
        except ParseError:
            pass


_LOOP: asyncio.AbstractEventLoop | None = None


async def _read_all(data: bytes) -> None:
    stream = asyncio.StreamReader(limit=8192)
    stream.feed_data(data)
    stream.feed_eof()

    async def continuation() -> None:
        return None

    reader = CommandReader(stream, continuation, max_line=4096, max_literal=16384,
                           max_command=32768, literal_minus=True, nonsync_limit=1024)
    for _ in range(64):
        try:
            raw = await reader.read_command()
        except (CommandTooLarge, ConnectionClosed):
            return
        except ParseError:
            continue  # a refused literal: the stream is still in step
        if raw is None:
            return
        try:
            parse_command(raw)
        except ParseError:
            pass


def imap_reader(data: bytes) -> None:
    """A whole client stream through the framing reader (lines, literals, limits)."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    _LOOP.run_until_complete(_read_all(data))


def mime_views(data: bytes) -> None:
    """A stored message: views, their JSON round trip and every section's byte range."""
    view = build_view(data)
    assert MessageView.from_json(view.to_json()) == view
    json.dumps(view.search.attachments and [a.filename for a in view.search.attachments])
    assert 0 <= view.text_start <= view.size == len(data)
    for number in view.parts:
        for kind in ("", ".MIME", ".HEADER", ".TEXT"):
            try:
                ranges = section_ranges(view, number + kind)
            except SectionError:
                continue
            for start, end in ranges:
                assert 0 <= start <= end <= len(data)


def headers(data: bytes) -> None:
    """Header block, structured MIME fields, addresses, encoded words, RFC 2231 params."""
    header = parse_header(data, 0, len(data))
    read_header_facts(data)
    render_envelope(header)
    text = _text(data)
    for value in (text, *(v for _k, v in header.fields)):
        parse_address_list(value)
        decode_words(value)
        parse_token_value(value)
        parse_language(value)
        ctype = parse_content_type(value)
        if ctype is not None:
            for name in ("name", "filename", "charset", "boundary"):
                decode_param(ctype[2], name)
        disposition = parse_disposition(value)
        if disposition is not None:
            decode_param(disposition[1], "filename")


def smtp_params(data: bytes) -> None:
    """MAIL/RCPT parameters (SIZE, BODY, RET, ENVID, NOTIFY, ORCPT), xtext, transports."""
    text = data.decode("utf-8", "replace")
    params = text.split()
    try:
        parse_mail_params(params, size_limit=40 * 1024 * 1024, smtputf8_enabled=True)
    except ParamError:
        pass
    try:
        parse_rcpt_params(params)
    except ParamError:
        pass
    for word in params:
        try:
            xtext_decode(word)
        except ValueError:
            pass  # documented: the MAIL/RCPT parsers turn it into a 501
        try:
            parse_transport(word)
        except ValueError:
            pass


_LIMITS = SessionLimits(
    max_message_size=4096, max_recipients=10, max_line_length=200, max_header_count=20,
    max_header_size=1024, max_bad_commands=10, idle_timeout=1.0, session_timeout=1.0,
    max_connections_per_ip=1,
)


def _scan(chunks: list[bytes]) -> tuple[bytes | None, str | None]:
    scanner = ContentScanner(_LIMITS)
    for chunk in chunks:
        scanner.feed(chunk)
    data = scanner.finish()
    return data, None if scanner.error is None else scanner.error.reply()


def smtp_content(data: bytes) -> None:
    """DATA/BDAT content checks: accepting must not depend on how TCP split the octets.

    The first octet chooses the chunk size; the same message fed whole must get the same
    answer, and an accepted message must be exactly what was sent, with CRLF line ends only
    (the smuggling defence).
    """
    if not data:
        return
    step, body = 1 + data[0] % 17, data[1:]
    whole = _scan([body])
    split = _scan([body[i : i + step] for i in range(0, len(body), step)])
    # Which violation is seen first may depend on the split; whether there is one may not.
    assert (whole[0] is None) == (split[0] is None), (whole[1], split[1])
    assert whole[0] == split[0]
    accepted = whole[0]
    if accepted is not None:
        assert accepted == body
        assert accepted.count(b"\r") == accepted.count(b"\n") == accepted.count(b"\r\n")


def whitelist(data: bytes) -> None:
    """The published trust-space XML, as downloaded."""
    try:
        parse_whitelist(data, source="fuzz")
    except WhitelistError:
        pass


# One file per process: test workers and the fuzzing child run this target side by side.
_EXTRACT = Path(tempfile.gettempdir()) / f"mssante-fuzz-extract-{os.getpid()}.txt"


def extract(data: bytes) -> None:
    """The national directory extract (header row, then ``|``-separated rows)."""
    _EXTRACT.write_bytes(data)
    try:
        reader = ExtractReader(_EXTRACT)
        for _row in reader.rows():
            pass
    except ExtractError:
        pass


def sections(data: bytes) -> None:
    """A FETCH section specification (``1.2.HEADER.FIELDS (FROM)``…)."""
    try:
        parse_section(data.decode("utf-8", "replace"))
    except SectionError:
        pass


_CLIENT = ClientSettings(host="mx.mssante.test", domains=("mssante.test",), imap_tls_port=993,
                         imap_port=143, submissions_port=465, submission_port=587,
                         display_name="MSSanté")


def autodiscover(data: bytes) -> None:
    """An Outlook Autodiscover request body, as POSTed by anyone on the network."""
    try:
        address = autodiscover_address(data)
    except AutoconfigError:
        return  # documented: answered 400 with an Autodiscover error document
    try:
        autodiscover_response(_CLIENT, address)
    except (AutoconfigError, LookupError):
        pass  # documented: 400 for a malformed address, 404 for a foreign domain


TARGETS: dict[str, Target] = {
    "autodiscover": autodiscover,
    "imap_parser": imap_parser,
    "imap_reader": imap_reader,
    "mime_views": mime_views,
    "headers": headers,
    "smtp_params": smtp_params,
    "smtp_content": smtp_content,
    "whitelist": whitelist,
    "extract": extract,
    "sections": sections,
}
"""Every target by name; the corpus of each is ``tests/fuzz/corpus/<name>/``."""

CORPUS = Path(__file__).parent / "corpus"
