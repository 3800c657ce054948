"""Building the RFC 5322 message a person writes in the webmail.

Header fields are formatted by the standard library (``email.headerregistry``: RFC 2047
encoded words for non-ASCII display names and subjects, addresses with their domains in
A-labels as the trust space keeps them); the body is text/plain UTF-8 in quoted-printable;
attachments are base64-encoded from their chunks as they are read, so a 10 MB file is never
held decoded in memory next to its encoded form. ``Bcc`` is never written into the message
sent (RFC 5322 §3.6.3, the recipients only appear in the envelope).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from mail.headers import new_message_id
from storage.types import utcnow

LINE = 57
"""Octets per base64 line (76 characters, RFC 2045 §6.8)."""


@dataclass(frozen=True)
class Part:
    """An attachment: file name, media type and a way to read its bytes in chunks."""

    filename: str
    content_type: str
    chunks: Callable[[], Iterable[bytes]]


@dataclass
class Letter:
    """What the compose form says, checked; addresses already as the trust space wrote them."""

    author: str
    to: Sequence[str]
    cc: Sequence[str] = ()
    subject: str = ""
    body: str = ""
    author_name: str | None = None
    sender: str | None = None
    """``Sender:`` when someone writes for ``author`` (RFC 5322 §3.6.2)."""
    read_notification: bool = False
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    attachments: Sequence[Part] = field(default_factory=tuple)
    draft_bcc: Sequence[str] = ()
    """Kept only in a draft (saved to Drafts), so that reopening it finds them."""


def one_line(text: str) -> str:
    """A form value made safe for a header field: no CR or LF (no injected fields)."""
    return " ".join(text.replace("\r", "\n").split("\n")).strip()


def named(name: str | None, address: str) -> Address | str:
    """``"Dupont, Hélène" <a@b>`` with the display name quoted or encoded as needed."""
    if not name:
        return address
    local, _, domain = address.rpartition("@")
    return Address(display_name=one_line(name), username=local, domain=domain)


def _headers(letter: Letter, hostname: str, message_id: str | None) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["Date"] = format_datetime(utcnow())
    msg["From"] = named(letter.author_name, letter.author)
    if letter.sender:
        msg["Sender"] = letter.sender
    if letter.to:
        msg["To"] = ", ".join(letter.to)
    if letter.cc:
        msg["Cc"] = ", ".join(letter.cc)
    if letter.draft_bcc:
        msg["Bcc"] = ", ".join(letter.draft_bcc)
    msg["Subject"] = one_line(letter.subject)
    msg["Message-ID"] = message_id or new_message_id(hostname)
    if letter.in_reply_to:
        msg["In-Reply-To"] = one_line(letter.in_reply_to)
    if letter.references:
        msg["References"] = one_line(" ".join(letter.references))
    if letter.read_notification:
        # RFC 8098 §2.1: the MDN goes to the author
        msg["Disposition-Notification-To"] = letter.author
    return msg


def _header_block(msg: EmailMessage) -> bytes:
    """The fields of ``msg`` folded for SMTP, without any body."""
    return b"".join(msg.policy.fold_binary(name, value) for name, value in msg.items())


def _set_text(msg: EmailMessage, body: str) -> None:
    text = body.replace("\r\n", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")


def _attachment_head(a: Part) -> bytes:
    part = EmailMessage(policy=policy.SMTP)
    if a.content_type == "message/rfc822":
        # RFC 2046 §5.2.1: a message part is never base64-encoded; it travels as it is
        part["Content-Type"] = "message/rfc822"
        part.add_header("Content-Disposition", "attachment", filename=a.filename)
        part["Content-Transfer-Encoding"] = "8bit"
        return _header_block(part) + b"\r\n"
    maintype, _, subtype = a.content_type.partition("/")
    if not (maintype and subtype) or not a.content_type.isascii() or " " in a.content_type:
        maintype, subtype = "application", "octet-stream"
    part["Content-Type"] = f"{maintype}/{subtype}"
    part.add_header("Content-Disposition", "attachment", filename=a.filename)
    part["Content-Transfer-Encoding"] = "base64"
    return _header_block(part) + b"\r\n"


def _base64_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        whole = len(pending) - len(pending) % LINE
        for i in range(0, whole, LINE):
            yield base64.b64encode(pending[i:i + LINE]) + b"\r\n"
        pending = pending[whole:]
    if pending:
        yield base64.b64encode(pending) + b"\r\n"


def build_message(letter: Letter, hostname: str, message_id: str | None = None) -> bytes:
    """The message as CRLF bytes: text/plain alone, or multipart/mixed with attachments."""
    head = _headers(letter, hostname, message_id)
    if not letter.attachments:
        _set_text(head, letter.body)
        return head.as_bytes()
    text = EmailMessage(policy=policy.SMTP)
    _set_text(text, letter.body)
    del text["MIME-Version"]
    boundary = "=_" + secrets.token_hex(16)
    head["MIME-Version"] = "1.0"
    head["Content-Type"] = f'multipart/mixed; boundary="{boundary}"'
    out = bytearray(_header_block(head))
    out += b"\r\nThis is a multi-part message in MIME format.\r\n"
    delimiter = f"\r\n--{boundary}\r\n".encode()
    out += delimiter + text.as_bytes()
    for a in letter.attachments:
        out += delimiter + _attachment_head(a)
        if a.content_type == "message/rfc822":
            for chunk in a.chunks():
                out += chunk
            if not out.endswith(b"\r\n"):
                out += b"\r\n"
            continue
        for line in _base64_lines(a.chunks()):
            out += line
    out += f"\r\n--{boundary}--\r\n".encode()
    return bytes(out)
