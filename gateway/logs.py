"""Structured logs: one event a line, ``key=value`` (default) or JSON.

A log line names an event and its facts; it never carries a password, token, OTP or message
body. Code logs with ``log.info("event_name", extra={"fields": {...}})``; plain messages from
libraries are kept as ``msg=…``.

Whatever a value holds, a line stays one line that says only what the gateway wrote: every
character that is not printable (controls, DEL, C1, line and paragraph separators,
bidirectional overrides) is written as ``\\xNN``/``\\uNNNN``, and in the key=value format the
arguments of ``event=… key=%s`` messages are quoted like fields, so a client cannot forge a
line or a field. Values that a client chose (the names of :data:`CLIENT_FIELDS`: a login,
an authorisation identity) are also cut to :data:`CLIENT_TEXT_LIMIT` characters: a failed
login with a 60,000-octet name is not worth 60,000 octets of log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

CLIENT_TEXT_LIMIT = 64
CLIENT_FIELDS = frozenset({"login", "authzid", "authcid", "username"})
"""Fields (and ``key=%s`` arguments) whose value a client chose: capped and escaped."""
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "fields"}
_PLACEHOLDER = re.compile(r"(\w+)=%([-#0 +]*\d*(?:\.\d+)?[sdrfi])")


def escape_text(text: str) -> str:
    """``text`` with every non-printable character written as an escape (see above)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def client_text(value: object, limit: int = CLIENT_TEXT_LIMIT) -> str:
    """A client-given value as a log may carry it: escaped, at most ``limit`` characters
    of it kept, and how many were cut said after them."""
    text = str(value)
    if len(text) <= limit:
        return escape_text(text)
    return f"{escape_text(text[:limit])}…(+{len(text) - limit} chars)"


def _clean(key: str, value: Any) -> Any:
    if key in CLIENT_FIELDS and value is not None:
        return client_text(value)
    return escape_text(value) if isinstance(value, str) else value


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
    for key, value in record.__dict__.items():
        if key not in _RESERVED and not key.startswith("_"):
            fields.setdefault(key, value)
    return {key: _clean(key, value) for key, value in fields.items()}


def _message(record: logging.LogRecord, *, quote: bool) -> str:
    """The record's message, its arguments cleaned (and, for ``event=… key=%s`` messages
    in the key=value format, quoted like fields)."""
    msg, args = record.msg, record.args
    if isinstance(msg, str) and msg.startswith("event=") and isinstance(args, tuple) and args:
        keys = _PLACEHOLDER.findall(msg)
        if len(keys) == len(args):
            cleaned = []
            for (key, spec), arg in zip(keys, args, strict=True):
                if spec.endswith("s"):
                    arg = _clean(key, str(arg))
                    arg = _kv_value(arg) if quote else arg
                cleaned.append(arg)
            try:
                return escape_text(msg % tuple(cleaned))
            except (TypeError, ValueError):
                pass
    return escape_text(record.getMessage())


def _kv_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\r\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=… logger=… event=… key=value …`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _message(record, quote=True),
        }
        parts.update(_fields(record))
        if record.exc_info:
            parts["error"] = escape_text(self.formatException(record.exc_info).splitlines()[-1])
        line = " ".join(f"{k}={_kv_value(v)}" for k, v in parts.items())
        message = parts["event"]
        if isinstance(message, str) and message.startswith("event=") and "\n" not in message:
            # Already key=value (some modules log that way): keep it as it is, not quoted.
            line = line.replace(f"event={_kv_value(message)}", message, 1)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _message(record, quote=False),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["error"] = escape_text(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure_logging(fmt: str = "kv", level: str = "info") -> None:
    """Routes every logger to stderr with the chosen one-line format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that narrate every connection at INFO would drown the gateway's events.
    for noisy in ("mail.log", "aiosmtpd", "asyncio", "alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
