"""Protocol-level errors, each already knowing the reply the session must send.

Keeping the reply inside the exception (as maddy's ``SMTPError`` does) means
the session never has to build reply strings itself: it catches the error and
writes ``error.response()``.
"""

from __future__ import annotations

__all__ = [
    "BadCharset",
    "CommandTooLarge",
    "ConnectionClosed",
    "LiteralRefused",
    "ParseError",
    "ProtocolError",
]


def _clean(text: str) -> str:
    """Keep reply text on one printable line whatever the reason contains."""
    return "".join(c if " " <= c < "\x7f" else "?" for c in text)[:200] or "Error"


class ProtocolError(Exception):
    """Base of every error raised by ``imap.protocol``."""


class ParseError(ProtocolError):
    """A command was malformed; the connection stays usable.

    The session answers ``<tag> BAD <reason>`` (or ``* BAD`` when no tag could
    be read, RFC 9051 §7.1.3) and goes on reading the next command.
    """

    status: str = "BAD"

    def __init__(self, reason: str, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag
        self.code = code

    def response(self) -> bytes:
        """The full reply line, tagged when the tag was readable."""
        tag = self.tag if self.tag else "*"
        code = f"[{self.code}] " if self.code else ""
        return f"{tag} {self.status} {code}{_clean(self.reason)}\r\n".encode("ascii")


class BadCharset(ParseError):
    """SEARCH named a charset we do not support (RFC 9051 §6.4.4, §7.1 BADCHARSET)."""

    status = "NO"

    def __init__(self, charset: str, tag: str | None = None) -> None:
        super().__init__(
            f"Charset {charset[:40]} is not supported, use UTF-8",
            tag,
            "BADCHARSET (UTF-8 US-ASCII)",
        )
        self.charset = charset


class BadMailboxName(ParseError):
    """A well-formed command named a mailbox that is not valid modified UTF-7.

    RFC 3501 §5.1.3 / RFC 9051 §5.1: the syntax is right, the name is refused: ``NO``
    with RFC 5530 ``CANNOT``, which a client treats as a failed command rather than a
    broken session.
    """

    status = "NO"

    def __init__(self, reason: str, tag: str | None = None) -> None:
        super().__init__(reason, tag, "CANNOT")


class LiteralRefused(ParseError):
    """A literal was refused without ending the connection.

    Synchronising literal over the limit: nothing of it was read (the client is
    waiting for ``+``), answer ``NO [TOOBIG]`` (RFC 7889 APPENDLIMIT semantics).
    Non-synchronising literal over the LITERAL- limit: it was read and
    discarded, answer ``BAD [TOOBIG]`` (RFC 7888 §4).
    """

    def __init__(self, reason: str, tag: str | None, status: str) -> None:
        super().__init__(reason, tag, "TOOBIG")
        self.status = status


class CommandTooLarge(ProtocolError):
    """A line, literal or command exceeded a hard limit; the stream cannot be resynchronised.

    The session sends ``* BYE <reason>`` and closes the connection.
    """

    def __init__(self, reason: str, tag: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag

    def response(self) -> bytes:
        """The untagged BYE line announcing the close (RFC 9051 §7.1.5)."""
        return f"* BYE [TOOBIG] {_clean(self.reason)}\r\n".encode("ascii")


class ConnectionClosed(ProtocolError):
    """The client closed the connection in the middle of a command."""
