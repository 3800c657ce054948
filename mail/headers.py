"""The header fields the gateway reads and adds when it accepts a message.

The rule is "change nothing else": the fields added here (Received, and on submission
Message-ID and Date when missing) are *prepended* to the message as received, so every
original octet — ``X-MSS-CODECDA``, ``X-MSS-INS``, ``X-MSS-NIL``, ``X-MSS-MES``, an
``IHE_XDM.ZIP`` part — is a byte-for-byte suffix of what is stored. Only the header block is
parsed (it is small); the body is never walked here.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.utils import format_datetime

from mail.addresses import parse_address_list
from mail.mimeheader import find_body_start, parse_header
from trustspace.refusal import ascii_text

CRLF = b"\r\n"
FOLD = "\r\n\t"  # RFC 5322 §2.2.3: folding is CRLF followed by white space
MAX_COMMENT = 400
"""Longest text kept in one comment, so every line stays far below 998 octets (RFC 5322 §2.1.1)."""

_NOT_ATOM = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_COMMENT_SPECIAL = re.compile(r"([()\\])")


@dataclass(frozen=True)
class HeaderFacts:
    """What the accept path needs from the header block of a message."""

    header_end: int
    """Offset just after the blank line ending the header (the message length without one)."""
    from_addresses: tuple[str, ...]
    """Every mailbox of every From field (RFC 5322 §3.6.2), as ``local@domain``."""
    message_id: str | None
    has_date: bool
    sender_addresses: tuple[tuple[str, str], ...] = ()
    """``(field name, local@domain)`` for every mailbox of the other fields a reader takes
    as who sent the message: Sender, Resent-From and Resent-Sender (RFC 5322 §3.6.2,
    §3.6.6), in the order they appear."""


SENDER_FIELDS = {"sender": "Sender", "resent-from": "Resent-From",
                 "resent-sender": "Resent-Sender"}
"""The originator fields besides From that mail clients show as the sender or forwarder."""


def _mailboxes(value: str) -> list[str]:
    out = []
    for _display, _adl, mailbox, host in parse_address_list(value):
        if mailbox is None or host is None:
            continue  # RFC 3501 §7.4.2 group start/end markers, not mailboxes
        out.append(f"{mailbox}@{host}")
    return out


def read_header_facts(raw: bytes) -> HeaderFacts:
    """Parses only the top-level header block of ``raw``."""
    end = find_body_start(raw, 0, len(raw))
    header = parse_header(raw, 0, end)
    addresses: list[str] = []
    senders: list[tuple[str, str]] = []
    for name, value in header.fields:
        if name == "from":
            addresses += _mailboxes(value)
        elif name in SENDER_FIELDS:
            senders += [(SENDER_FIELDS[name], a) for a in _mailboxes(value)]
    message_id = header.get("message-id")
    return HeaderFacts(
        header_end=end,
        from_addresses=tuple(addresses),
        message_id=message_id or None,
        has_date=header.get("date") is not None,
        sender_addresses=tuple(senders),
    )


def new_message_id(hostname: str) -> str:
    """A globally unique msg-id (RFC 5322 §3.6.4): time, randomness, our host name."""
    return f"<{time.time_ns():x}.{secrets.token_hex(8)}@{_atom(hostname)}>"


_now_text: tuple[int, str] = (-1, "")
"""The current second and its RFC 5322 text: formatting a date costs more than the rest of
a Received field, and under load many messages are stamped within the same second."""


def date_value(when: datetime | None = None) -> str:
    """An RFC 5322 §3.3 date-time, in local time with its offset, as Postfix writes it."""
    global _now_text
    if when is not None:
        return format_datetime(when.astimezone())
    second = int(time.time())
    if _now_text[0] != second:
        # Recomputed each second, so a change of UTC offset (summer time) shows at once.
        _now_text = (second, format_datetime(datetime.fromtimestamp(second, UTC).astimezone()))
    return _now_text[1]


def protocol_name(*, tls: bool, authenticated: bool, utf8: bool) -> str:
    """The ``with`` keyword of the Received field.

    RFC 3848 §2: ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both); RFC 6531 §3.7.3 replaces
    the ``ESMTP`` prefix by ``UTF8SMTP`` when the transaction used SMTPUTF8.
    """
    base = "UTF8SMTP" if utf8 else "ESMTP"
    suffix = ("S" if tls else "") + ("A" if authenticated else "")
    return base + suffix


@dataclass(frozen=True)
class ReceivedInfo:
    """Everything one Received field records (RFC 5321 §4.4)."""

    helo: str
    client_ip: str
    client_name: str | None
    """Reverse DNS name of the client, None when unknown."""
    by_host: str
    protocol: str
    smtp_id: str
    tls_version: str | None = None
    tls_cipher: str | None = None
    tls_bits: int | None = None
    auth_login: str | None = None
    auth_method: str | None = None
    peer_subject: str | None = None
    peer_fingerprint: str | None = None
    recipient: str | None = None
    """Named in ``for <…>`` only when there is exactly one (as Postfix does)."""
    when: datetime | None = None


def received_field(info: ReceivedInfo) -> bytes:
    """The folded ``Received:`` field, CRLF-terminated, ASCII only.

    Layout as Postfix writes it (RFC 5321 §4.4 Time-stamp-line; comments are CFWS), e.g.::

        Received: from ws.example (host.example [192.0.2.7])
        \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
        \t(Authenticated sender: dr.x@mssante.test, method PLAIN)
        \tby mx.mssante.test (mssante-gateway) with ESMTPSA id 4Xk2…
        \tfor <dr.y@mssante.test>; Mon, 18 Mar 2024 10:00:00 +0100
    """
    ip = _atom(info.client_ip) or "unknown"
    name = _atom(info.client_name or "") or "unknown"
    parts = [f"from {_atom(info.helo) or 'unknown'} ({name} [{ip}])"]
    if info.tls_version:
        bits = f" ({info.tls_bits}/{info.tls_bits} bits)" if info.tls_bits else ""
        parts.append(
            f"(using {_comment(info.tls_version)} with cipher {_comment(info.tls_cipher or '')}"
            f"{bits})"
        )
    if info.peer_subject is not None:
        parts.append(
            f'(Client certificate "{_comment(info.peer_subject)}" '
            f"sha256 {_comment(info.peer_fingerprint or '')} verified OK)"
        )
    if info.auth_login is not None:
        parts.append(
            f"(Authenticated sender: {_comment(info.auth_login)}, "
            f"method {_comment(info.auth_method or '')})"
        )
    parts.append(
        f"by {_atom(info.by_host)} (mssante-gateway) with {info.protocol} id {info.smtp_id}"
    )
    stamp = date_value(info.when)
    if info.recipient:
        parts.append(f"for <{_comment(info.recipient)}>; {stamp}")
    else:
        parts[-1] += f"; {stamp}"
    return ("Received: " + FOLD.join(parts)).encode("ascii") + CRLF


def field(name: str, value: str) -> bytes:
    """One unfolded header field, CRLF-terminated, ASCII (``value`` is ours, never user text)."""
    return f"{name}: {value}".encode("ascii") + CRLF


def prepend(raw: bytes, fields: list[bytes]) -> bytes:
    """``fields`` then the original message, untouched (one copy of the body, made once)."""
    return b"".join((*fields, raw))


_BCC_FIELD = re.compile(rb"bcc[ \t]*:", re.IGNORECASE)


def without_bcc(raw: bytes) -> bytes:
    """``raw`` without its top-level Bcc fields (folded lines included), or ``raw`` itself
    when it has none.

    RFC 5322 §3.6.3: the addresses of a Bcc field are not shown to the other recipients,
    so what is transmitted carries no Bcc field (the blind recipients are in the envelope;
    the sender's own copy keeps it, see :func:`with_bcc`). Clients usually remove it before
    submitting; some leave it, and MTAs remove it then (Postfix's cleanup does)."""
    end = find_body_start(raw, 0, len(raw))
    header = raw[:end]
    if b"bcc" not in header.lower():
        return raw
    kept: list[bytes] = []
    dropping = False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = _BCC_FIELD.match(line) is not None
        if not dropping:
            kept.append(line)
    return b"".join(kept) + raw[end:]


def with_bcc(raw: bytes, addresses: list[str]) -> bytes:
    """``raw`` with a Bcc field naming ``addresses`` added at the end of its header: the
    copy the sender keeps (RFC 5322 §3.6.3: "the sender's copy" may show the blind
    recipients, so that they know whom they wrote to). ``raw`` itself when there are none."""
    if not addresses:
        return raw
    end = find_body_start(raw, 0, len(raw))
    blank = 2 if raw[:end].endswith(b"\r\n\r\n") else 1 if raw[:end].endswith(b"\n\n") else 0
    field = _SMTPUTF8.fold("Bcc", ", ".join(addresses)).encode("utf-8")
    return raw[: end - blank] + field + raw[end - blank:]


_SMTPUTF8 = policy.SMTP.clone(utf8=True)


def _comment(text: str) -> str:
    """``text`` safe inside a comment: ASCII, no controls, parentheses and \\ quoted."""
    clean = ascii_text(" ".join(text.split()))[:MAX_COMMENT]
    # RFC 5322 §3.2.2: "(", ")" and "\" are quoted-pairs inside a comment.
    return _COMMENT_SPECIAL.sub(r"\\\1", clean)


def _atom(text: str) -> str:
    """A host name or address literal as a client gave it, reduced to safe characters."""
    return _NOT_ATOM.sub("?", text.strip())[:255]


_CODECDA = re.compile(rb"^x-mss-codecda[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")


def codecda(raw: bytes) -> str | None:
    """The document type code of ``X-MSS-CODECDA`` (its first ``^``-separated component,
    e.g. a LOINC code ``11490-0``), for the monthly counts; ``other`` for a value that is
    not a plain code, None when the field is absent. Only the header block is read."""
    found = _CODECDA.search(raw[:find_body_start(raw, 0, len(raw))])
    if found is None:
        return None
    first = found.group(1).decode("ascii", "replace").split("^", 1)[0].strip()
    return first if _CODE.fullmatch(first) else "other"
