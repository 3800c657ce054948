"""Structured logs: one event a line, ``key=value`` (default) or JSON.

A log line names an event and its facts; it never carries a password, token, OTP or message
body. Code logs with ``log.info("event_name", extra={"fields": {...}})``; plain messages from
libraries are kept as ``msg=…``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "fields"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
    for key, value in record.__dict__.items():
        if key not in _RESERVED and not key.startswith("_"):
            fields.setdefault(key, value)
    return fields


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
            "event": record.getMessage(),
        }
        parts.update(_fields(record))
        if record.exc_info:
            parts["error"] = self.formatException(record.exc_info).splitlines()[-1]
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
            "event": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
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
