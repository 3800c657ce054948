"""Parsers of the extension commands in :mod:`imap.protocol.ext_commands`.

:data:`EXT_COMMANDS` is merged into the parser's command table; each function reads the
arguments after the command name from the :class:`~imap.protocol.tokens.Cursor`.
"""

from __future__ import annotations

from collections.abc import Callable

from imap.protocol import ext_commands as x
from imap.protocol.commands import Command
from imap.protocol.tokens import Cursor

__all__ = ["EXT_COMMANDS"]


def _compress(cur: Cursor, tag: str, uid: bool) -> Command:
    # RFC 4978 §5: compress = "COMPRESS" SP algorithm ; algorithm = "DEFLATE"
    cur.sp()
    mechanism = cur.atom("compression mechanism").upper()
    if mechanism != "DEFLATE":
        cur.fail(f"unknown compression mechanism {mechanism[:20]}; DEFLATE is the only one")
    return x.Compress(tag, mechanism)


EXT_COMMANDS: dict[str, Callable[[Cursor, str, bool], Command]] = {
    "COMPRESS": _compress,
}
