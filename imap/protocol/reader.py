"""Reading one complete IMAP command, literals included, from a stream.

The reader hands the parser the command exactly as it was on the wire, minus
the final CRLF: each literal stays in place after its ``{n}`` marker and its
CRLF, so :func:`imap.protocol.parser.parse_command` needs nothing else.

Lines are found with ``StreamReader.readuntil`` (a C-level buffer scan) and
literals with ``readexactly``: no per-byte Python loop.

Refusal policy (RFC 7888 §4, RFC 7889):

* line longer than ``max_line``, literal larger than ``max_literal`` when it
  cannot be refused politely, or command larger than ``max_command``:
  :class:`CommandTooLarge`; the session sends ``* BYE`` and closes, because the
  rest of the stream cannot be trusted to be a command boundary.
* synchronising literal ``{n}`` larger than ``max_literal``: nothing of it is
  read, :class:`LiteralRefused` with ``NO [TOOBIG]``; the client, still waiting
  for ``+``, abandons the command and the connection stays usable.
* non-synchronising literal ``{n+}`` larger than ``nonsync_limit`` when only
  LITERAL- is announced: it is read and discarded (up to ``max_literal``), the
  rest of the command is drained, then :class:`LiteralRefused` with
  ``BAD [TOOBIG]``.

APPEND is the one command whose literals may be large (the message); it gets its
own :class:`LiteralLimits`, as in Dovecot, where every other command is held to
the line length. An APPEND literal larger than ``spool_threshold`` is not kept in
memory: it goes, piece by piece as it arrives, to an encrypted
:class:`~imap.protocol.spool.SpooledLiteral`; the command bytes then hold its
``{n}`` marker but not its octets, and :attr:`CommandReader.spooled` maps the
offset where they would start to the spool (``parse_command(..., spooled=...)``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from imap.protocol.errors import CommandTooLarge, ConnectionClosed, LiteralRefused
from imap.protocol.spool import SpooledLiteral

__all__ = ["CommandReader", "Continuation", "LiteralLimits"]

Continuation = Callable[[], Awaitable[None]]
"""Async callback that writes (and drains) ``+ Ready for literal data``."""

# RFC 9051 §9 literal = "{" number64 ["+"] "}" CRLF ; RFC 3516 literal8 = "~{" ...
_LITERAL_AT_END = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\Z")
_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c-\x7e]+")
_DRAIN_CHUNK = 1 << 16
# APPEND and RFC 8508 REPLACE carry a message (CATENATE TEXT parts too, RFC 4469).
_APPEND = re.compile(rb"[^ ]+ (?:APPEND|(?:UID )?REPLACE) ", re.IGNORECASE)


@dataclass(frozen=True)
class LiteralLimits:
    """How large a literal and a whole command may be, for one kind of command.

    ``scope`` ends each refusal ("before login"). ``spool_threshold`` (0: never) is the size
    above which a literal is spooled to an encrypted file instead of memory.
    """

    max_literal: int
    max_command: int
    scope: str = ""
    spool_threshold: int = 0


async def _no_continuation() -> None:
    """The continuation of a detached reader: the connection is gone."""


class CommandReader:
    """Reads commands and continuation lines from one client connection.

    ``continuation`` is awaited before each synchronising literal is read (RFC
    9051 §7.5): the server must invite the client before it sends the data.
    ``literal_minus`` selects RFC 7888 LITERAL- (non-synchronising literals
    only up to ``nonsync_limit`` octets) instead of LITERAL+.
    Create the stream with ``limit`` >= ``max_line`` (``asyncio.start_server(...,
    limit=...)``): a line longer than the stream buffer is also CommandTooLarge.
    """

    def __init__(
        self,
        stream: asyncio.StreamReader,
        continuation: Continuation,
        *,
        max_line: int = 65536,
        max_literal: int = 64 * 1024 * 1024,
        max_command: int = 80 * 1024 * 1024,
        literal_minus: bool = False,
        nonsync_limit: int = 4096,
        limit_scope: str = "",
        append_limits: LiteralLimits | None = None,
        spool_dir: str | None = None,
    ) -> None:
        self._stream = stream
        self._continuation = continuation
        self.max_line = max_line
        self.limits = LiteralLimits(max_literal, max_command, limit_scope)
        """Limits of every command but APPEND; the session changes them with its state."""
        self.append_limits = append_limits or self.limits
        """Limits of APPEND."""
        self.literal_minus = literal_minus
        self.nonsync_limit = nonsync_limit
        self.spool_dir = spool_dir
        self.spooled: dict[int, SpooledLiteral] = {}
        """Spooled literals of the last command read, by offset of their data."""

    def release_spools(self) -> None:
        """Deletes the spooled literals of the last command (once it has been handled)."""
        spooled, self.spooled = self.spooled, {}
        for spool in spooled.values():
            spool.close()

    def detach(self) -> None:
        """Forgets the continuation callback once the connection has ended.

        The callback is usually a bound method of the session, which owns this reader: the
        pair is a reference cycle that would keep the stream, and the up to several hundred
        KiB it buffered, alive until the cycle collector happens to run. Breaking it frees
        them as soon as the session is dropped.
        """
        self._continuation = _no_continuation
        self.release_spools()

    async def _line(self, tag: str | None = None) -> bytes | None:
        """One line without its CRLF (a lone LF is tolerated), None at clean EOF."""
        try:
            raw = await self._stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            raise ConnectionClosed("connection closed in the middle of a line") from exc
        except asyncio.LimitOverrunError as exc:
            raise CommandTooLarge(
                f"Line too long (limit {self.max_line} octets)", tag
            ) from exc
        if len(raw) > self.max_line + 2:
            raise CommandTooLarge(f"Line too long (limit {self.max_line} octets)", tag)
        end = -2 if raw.endswith(b"\r\n") else -1
        return raw[:end]

    async def read_line(self) -> bytes | None:
        """A bare line: an AUTHENTICATE response or IDLE's ``DONE`` (RFC 2177)."""
        return await self._line()

    async def _discard(self, size: int) -> None:
        try:
            while size > 0:
                chunk = await self._stream.readexactly(min(size, _DRAIN_CHUNK))
                size -= len(chunk)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionClosed("connection closed inside a literal") from exc

    async def read_command(self) -> bytes | None:
        """One command as on the wire (literals in place), None at clean EOF.

        Spooled APPEND literals are not in place: see :attr:`spooled`.
        """
        self.release_spools()
        try:
            return await self._read_command()
        except BaseException:
            self.release_spools()
            raise

    async def _spool(self, size: int) -> SpooledLiteral:
        """Reads a literal into an encrypted spool file, one bounded piece at a time."""
        spool = SpooledLiteral(self.spool_dir)
        try:
            remaining = size
            while remaining:
                piece = await self._stream.readexactly(min(remaining, _DRAIN_CHUNK))
                spool.write(piece)
                remaining -= len(piece)
            spool.finish()
        except asyncio.IncompleteReadError as exc:
            spool.close()
            raise ConnectionClosed("connection closed inside a literal") from exc
        except BaseException:
            spool.close()
            raise
        return spool

    async def _read_command(self) -> bytes | None:
        line = await self._line()
        if line is None:
            return None
        m = _TAG.match(line)
        tag = m.group().decode("ascii") if m else None
        limits = self.append_limits if _APPEND.match(line) else self.limits
        max_literal, max_command, scope = limits.max_literal, limits.max_command, limits.scope
        parts: list[bytes] = [line]
        total = len(line)
        offset = len(line)  # length of the command bytes built so far
        if total > max_command:
            raise CommandTooLarge(
                f"Command exceeds the limit of {max_command} octets{scope}", tag
            )
        refusal: LiteralRefused | None = None
        while True:
            lit = _LITERAL_AT_END.search(line, max(0, len(line) - 26))
            if lit is None:
                break
            size = int(lit.group(2))
            sync = not lit.group(3)
            if sync:
                if refusal is not None:
                    # RFC 7888 §4: stop before inviting more data for a refused command.
                    raise refusal
                if size > max_literal:
                    raise LiteralRefused(
                        f"Literal of {size} octets exceeds the limit of {max_literal} "
                        f"octets{scope}",
                        tag,
                        "NO",
                    )
            elif size > max_literal:
                raise CommandTooLarge(
                    f"Literal of {size} octets exceeds the limit of {max_literal} "
                    f"octets{scope}",
                    tag,
                )
            if total + size > max_command:
                raise CommandTooLarge(
                    f"Command exceeds the limit of {max_command} octets{scope}", tag
                )
            spool: SpooledLiteral | None = None
            if not sync and self.literal_minus and size > self.nonsync_limit:
                # RFC 7888 §4: LITERAL- caps non-synchronising literals at 4096 octets.
                await self._discard(size)
                if refusal is None:
                    refusal = LiteralRefused(
                        f"Non-synchronizing literal of {size} octets exceeds "
                        f"{self.nonsync_limit} octets, use a synchronizing literal",
                        tag,
                        "BAD",
                    )
                data = b""
            else:
                if sync:
                    await self._continuation()
                if limits.spool_threshold and size > limits.spool_threshold:
                    spool = await self._spool(size)
                    self.spooled[offset + 2] = spool
                    data = b""
                else:
                    try:
                        data = await self._stream.readexactly(size)
                    except asyncio.IncompleteReadError as exc:
                        raise ConnectionClosed("connection closed inside a literal") from exc
            nxt = await self._line(tag)
            if nxt is None:
                raise ConnectionClosed("connection closed after a literal")
            total += size + len(nxt) + 2
            if total > max_command:
                raise CommandTooLarge(
                    f"Command exceeds the limit of {max_command} octets{scope}", tag
                )
            if refusal is None:
                parts.append(b"\r\n")
                parts.append(data)
                parts.append(nxt)
                offset += 2 + len(data) + len(nxt)
            line = nxt
        if refusal is not None:
            raise refusal
        return b"".join(parts)
