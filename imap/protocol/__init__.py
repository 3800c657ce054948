"""IMAP wire protocol: command reader, parser and response writer.

Pure protocol code (as Dovecot's lib-imap): it imports nothing of storage or
of the rest of the project, so the session and command handlers in
``imap/`` build on it and it can be tested and fuzzed on its own.

Typical session loop::

    reader = CommandReader(stream, send_continuation, max_line=..., max_literal=...)
    raw = await reader.read_command()          # CommandTooLarge -> e.response(), close
    try:
        cmd = parse_command(raw, utf8=session.utf8)
    except ParseError as e:                    # incl. BadCharset, LiteralRefused
        writer.write(e.response())
"""

from imap.protocol.commands import *  # noqa: F403
from imap.protocol.commands import __all__ as _commands_all
from imap.protocol.errors import (
    BadCharset,
    CommandTooLarge,
    ConnectionClosed,
    LiteralRefused,
    ParseError,
    ProtocolError,
)
from imap.protocol.fetch_items import FetchAttr, Section
from imap.protocol.mutf7 import mutf7_decode, mutf7_encode
from imap.protocol.parser import parse_command, read_tag
from imap.protocol.reader import CommandReader, LiteralLimits
from imap.protocol.response import (
    Atom,
    ImapRefusal,
    Literal,
    ResponseCode,
    bye,
    continuation,
    encode_astring,
    encode_mailbox,
    encode_string,
    fetch_response,
    serialize,
    tagged,
    untagged,
    untagged_data,
)
from imap.protocol.search_keys import *  # noqa: F403
from imap.protocol.search_keys import __all__ as _search_all
from imap.protocol.sequence import STAR, SequenceSet
from imap.protocol.spool import SpooledLiteral

__all__ = [
    *_commands_all,
    *_search_all,
    "Atom",
    "BadCharset",
    "CommandReader",
    "CommandTooLarge",
    "ConnectionClosed",
    "FetchAttr",
    "ImapRefusal",
    "Literal",
    "LiteralLimits",
    "LiteralRefused",
    "ParseError",
    "ProtocolError",
    "ResponseCode",
    "STAR",
    "Section",
    "SequenceSet",
    "SpooledLiteral",
    "bye",
    "continuation",
    "encode_astring",
    "encode_mailbox",
    "encode_string",
    "fetch_response",
    "mutf7_decode",
    "mutf7_encode",
    "parse_command",
    "read_tag",
    "serialize",
    "tagged",
    "untagged",
    "untagged_data",
]
