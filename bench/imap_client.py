"""A deliberately small IMAP client for the benchmarks: raw asyncio streams over TLS.

Why not aioimaplib or imaplib: the load generator shares the machine's two cores with the
servers it measures, so every microsecond it spends parsing is taken from them. This client
reads line by line, skips literals without looking into them, and only notices what the load
needs (the tagged reply, ``EXISTS``/``EXPUNGE`` counts, ``APPENDUID``). It speaks exactly the
same bytes to the gateway and to Dovecot.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


class ImapError(Exception):
    """A NO/BAD/BYE where the load expected OK (the command text is in the message)."""


@dataclass
class Reply:
    """The tagged status line and the untagged lines that came before it."""

    status: bytes
    tagged: bytes
    lines: list[bytes] = field(default_factory=list)


def client_context(ca_file: str) -> ssl.SSLContext:
    """TLS 1.2+ trusting the gateway's development CA (both servers use its certificate)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    return ctx


class BenchClient:
    """One connection; ``exists`` follows the untagged EXISTS/EXPUNGE it sees."""

    __slots__ = ("reader", "writer", "_n", "exists", "keep", "_idle_tag")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._n = 0
        self.exists = 0
        self.keep = False  # keep untagged lines in Reply.lines (off: cheaper)
        self._idle_tag = b""

    @classmethod
    async def connect(cls, port: int, ctx: ssl.SSLContext, *, limit: int = 1 << 20
                      ) -> BenchClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, limit=limit)
        client = cls(reader, writer)
        greeting = await reader.readline()  # RFC 9051 §7.1: untagged OK greeting
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"unexpected greeting {greeting[:80]!r}")
        return client

    def _tag(self) -> bytes:
        self._n += 1
        return b"b%d" % self._n

    async def command(self, text: bytes, *, check: bool = True) -> Reply:
        """Sends one command line and reads up to its tagged reply."""
        tag = self._tag()
        self.writer.write(tag + b" " + text + b"\r\n")
        return await self._until(tag, text, check)

    async def append(self, mailbox: bytes, message: bytes, flags: bytes = b"") -> int:
        """APPEND with a non-synchronising literal (RFC 7888 LITERAL+); the APPENDUID UID."""
        tag = self._tag()
        self.writer.write(b"%s APPEND %s (%s) {%d+}\r\n%s\r\n"
                          % (tag, mailbox, flags, len(message), message))
        reply = await self._until(tag, b"APPEND", True)
        found = _APPENDUID.search(reply.tagged)
        return int(found.group(2)) if found else 0

    async def _until(self, tag: bytes, text: bytes, check: bool) -> Reply:
        readline = self.reader.readline
        lines: list[bytes] = []
        keep = self.keep
        while True:
            line = await readline()
            if not line:
                raise ImapError(f"connection closed during {text[:40]!r}")
            if line.endswith(b"}\r\n"):
                literal = _LITERAL.search(line)
                if literal is not None:
                    # The literal's bytes, then the rest of the response line after it.
                    await self.reader.readexactly(int(literal.group(1)))
                    continue
            if line[0] == 42:  # b"*"
                if line.endswith(b"EXISTS\r\n"):
                    self.exists = int(line.split(b" ", 2)[1])
                elif line.endswith(b"EXPUNGE\r\n"):
                    self.exists -= 1
                elif line.startswith(b"* BYE"):
                    raise ImapError(f"BYE during {text[:40]!r}: {line[:120]!r}")
                if keep:
                    lines.append(line)
                continue
            if line.startswith(tag):
                status = line[len(tag) + 1:len(tag) + 3]
                if check and status != b"OK":
                    raise ImapError(f"{text[:60]!r} -> {line[:160]!r}")
                return Reply(status, line, lines)
            # continuation or another tag: not expected here, ignore

    async def login(self, user: str, password: str) -> None:
        await self.command(b"LOGIN %s %s" % (_quote(user), _quote(password)))

    async def start_idle(self) -> None:
        """IDLE (RFC 2177) up to the server's continuation request."""
        tag = self._tag()
        self._idle_tag = tag
        self.writer.write(tag + b" IDLE\r\n")
        while True:
            line = await self.reader.readline()
            if not line:
                raise ImapError("connection closed before the IDLE continuation")
            if line.startswith(b"+"):
                return
            if line.endswith(b"EXISTS\r\n"):
                self.exists = int(line.split(b" ", 2)[1])

    async def wait_exists(self) -> int:
        """During IDLE: waits for an untagged EXISTS pushed by the server."""
        while True:
            line = await self.reader.readline()
            if not line:
                raise ImapError("connection closed during IDLE")
            if line.endswith(b"EXISTS\r\n"):
                self.exists = int(line.split(b" ", 2)[1])
                return self.exists

    async def idle_done(self) -> None:
        """Ends IDLE with DONE and reads the tagged OK."""
        self.writer.write(b"DONE\r\n")
        tag, self._idle_tag = self._idle_tag, b""
        await self._until(tag, b"IDLE", True)

    async def close(self) -> None:
        try:
            # Still in IDLE: DONE first (RFC 2177), or the server answers LOGOUT with BAD.
            self.writer.write((b"DONE\r\n" if self._idle_tag else b"") + b"z LOGOUT\r\n")
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


def _quote(text: str) -> bytes:
    """An IMAP quoted string (RFC 9051 §4.3): backslash and quote escaped."""
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
