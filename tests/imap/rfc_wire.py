"""A raw IMAP client for the RFC conformance tests: imaplib's TLS connection, commands sent
as typed, and every response kept whole (a line with its literals), as the server wrote it.

imaplib's parsed answers hide what the RFCs are about (the order of untagged responses, the
exact response codes, literal8 versus literal), so the tests read the wire.
"""

from __future__ import annotations

import imaplib
import re

from tests.fixtures.imap import ALICE, BOB, ImapEnv

_LITERAL_AT_END = re.compile(rb"(~?)\{(\d+)\}\r\n$")


class Wire:
    """One logged-in connection; :meth:`cmd` returns ``(status, untagged responses)``."""

    def __init__(self, env: ImapEnv, user: str = ALICE, *,
                 client: type[imaplib.IMAP4_SSL] = imaplib.IMAP4_SSL) -> None:
        password = env.alice_password if user == ALICE else env.bob_password
        assert user in (ALICE, BOB)
        self.imap = client("127.0.0.1", env.tls_port, ssl_context=env.client_ssl(), timeout=15)
        self.traffic: list[bytes] = []
        self.last_tagged = b""
        status, _ = self.cmd(f'LOGIN {user} "{password}"')
        assert status == "OK"

    def response(self) -> bytes:
        """One whole response: a line, and each literal it announces with what follows."""
        out = b""
        while True:
            line = self.imap.readline()
            if not line:
                raise ConnectionError("connection closed")
            out += line
            m = _LITERAL_AT_END.search(line)
            if m is None:
                break
            out += self.imap.read(int(m.group(2)))
        self.traffic.append(out)
        return out

    def cmd(self, text: str | bytes) -> tuple[str, list[bytes]]:
        """Sends one command line; status of the tagged reply and the untagged ones."""
        tag = self.imap._new_tag()  # type: ignore[attr-defined]
        data = text if isinstance(text, bytes) else text.encode()
        self.imap.send(tag + b" " + data + b"\r\n")
        untagged: list[bytes] = []
        while True:
            resp = self.response()
            if resp.startswith(tag + b" "):
                self.last_tagged = resp
                return resp.split()[1].decode(), untagged
            untagged.append(resp.rstrip(b"\r\n"))

    def append(self, mailbox: str, raw: bytes, flags: str = "", *, literal8: bool = False
               ) -> tuple[str, bytes]:
        """APPEND with a non-synchronising literal (LITERAL+; ``literal8``: RFC 3516 ``~{n+}``,
        which may hold NUL): status and tagged line."""
        tag = self.imap._new_tag()  # type: ignore[attr-defined]
        fl = f"({flags}) " if flags else ""
        tilde = "~" if literal8 else ""
        self.imap.send(tag + f" APPEND {mailbox} {fl}{tilde}{{{len(raw)}+}}\r\n".encode()
                       + raw + b"\r\n")
        while True:
            resp = self.response()
            if resp.startswith(tag + b" "):
                self.last_tagged = resp
                return resp.split()[1].decode(), resp

    def close(self) -> None:
        try:
            self.cmd("LOGOUT")
        except (OSError, imaplib.IMAP4.abort, ConnectionError):
            pass
        self.imap.shutdown()
