"""DATA content (RFC 5321 §4.1.1.4) read in large blocks up to ``<CRLF>.<CRLF>``, unstuffed.

Why not a line reader: at 1 MB a message has ~13,000 lines, and even a reader that stops at
every ``.<CRLF>`` (the end of any line ending with a full stop: most lines of a clinical
letter) costs one coroutine step, one scan and one content check per such line, 100-160 ms
per MB. Here the stream reader is asked for the whole terminator ``<CRLF>.<CRLF>``, so a step
returns everything the socket delivered (tens to hundreds of KB) unless the message really
ended in it; dot-unstuffing is one ``replace`` of the block.

Only ``<CRLF>.<CRLF>`` ends the data: ``<LF>.<LF>``, ``<CR>.<CR>``, ``<LF>.<CRLF>`` and the
like never do (SMTP smuggling), they stay in the content for the bare CR/LF refusal.

The one difficulty is a terminator that begins in octets already taken from the stream (the
CRLF of the DATA command itself when the message is empty, or a block that ended with
``<CR>``, ``<CRLF>``, ``<CRLF>.`` or ``<CRLF>.<CR>``): a search of what is still buffered
would miss it and wait for octets the client will never send. So each step first looks at
how much of the terminator the consumed octets already end with, and reads only what cannot
overrun the earliest possible end of the data:

* nothing: ``readuntil(<CRLF>.<CRLF>)``, or, when it is not buffered yet, all that is
  buffered but its last 4 octets (a terminator starting there is found next time);
* ``<CR>``: ``readuntil(<LF>.<CRLF>)`` in the same way (the octet before a match tells
  whether it is the terminator), so a long run of empty lines is still read in blocks;
* ``<CRLF>``, ``<CRLF>.``, ``<CRLF>.<CR>``: exactly the 3, 2 or 1 octets that would end it.

Nothing after the terminator is ever consumed: pipelined commands stay in the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

TERMINATOR = b"\r\n.\r\n"
_AFTER_CR = TERMINATOR[1:]  # <LF>.<CRLF>
_PREFIXES = tuple(TERMINATOR[:n] for n in range(4, 0, -1))  # longest first


def _started(tail: bytes) -> int:
    """How many octets of the terminator ``tail`` (the last consumed octets) ends with."""
    for prefix in _PREFIXES:
        if tail.endswith(prefix):
            return len(prefix)
    return 0


async def _next_block(reader: asyncio.StreamReader, started: int) -> bytes:
    """The next octets that cannot run past the end of the data (see the module text)."""
    try:
        if started == 0:
            return await reader.readuntil(TERMINATOR)
        if started == 1:
            return await reader.readuntil(_AFTER_CR)
    except asyncio.LimitOverrunError as exc:
        # Not buffered yet (``consumed`` leaves the separator's length minus one octet in
        # the buffer) or found beyond the reader's limit (``consumed`` is where it starts).
        return await reader.read(exc.consumed)
    return await reader.readexactly(len(TERMINATOR) - started)


def unstuff(block: bytes, at_line_start: bool) -> bytes:
    """RFC 5321 §4.5.2: the leading dot of every line was added by the client; dropped."""
    plain = block.replace(b"\n.", b"\n")
    if at_line_start and plain[:1] == b".":
        return plain[1:]
    return plain


async def read_dot_terminated(
    reader: asyncio.StreamReader,
    feed: Callable[[bytes], None],
    progress: Callable[[], None] | None = None,
) -> None:
    """Reads DATA content up to ``<CRLF>.<CRLF>`` and gives it, unstuffed, to ``feed``.

    ``feed`` gets the message in order, in blocks of any size (the terminator's ``.<CRLF>``
    excluded, its leading CRLF kept as the end of the last line); ``progress`` is called
    after every read (the idle timer). A client that closes before the end raises
    :class:`asyncio.IncompleteReadError`; nothing after the terminator is read.
    """
    tail = b"\r\n"  # the last consumed octets: the data starts after the DATA line's CRLF
    held = b""  # a "." or ".\r" just read that may belong to the terminator: fed later
    at_line_start = True
    while True:
        started = _started(tail)
        block = await _next_block(reader, started)
        if progress is not None:
            progress()
        # A terminator can only end at the end of a block (each step stops there).
        ended = (tail + block[-5:]).endswith(TERMINATOR)
        tail = (tail + block[-4:])[-4:]
        data = held + block if held else block
        if ended:
            data, held = data[:-3], b""
        else:
            keep = max(0, _started(tail) - 2)  # the terminator's "." and "\r" are not content
            data, held = (data[:-keep], data[-keep:]) if keep else (data, b"")
        if data:
            feed(unstuff(data, at_line_start))
            at_line_start = data[-1:] == b"\n"
        if ended:
            return
