"""System e-mails to professionals' usual addresses (confirmation links, codes, decisions).

They carry no health data and never leave through the trust-space relay: the usual
address is outside the MSSanté space. In the embedded mode each message is written to
``<data dir>/outbox/<time>-<random>.eml`` (mode 0600: links and codes are secrets) and its
file logged, so that a newcomer can open the link or read the code without a mail server.
A production smarthost (``[notify]`` section) is the next step; until then production
writes to the outbox too and the operator forwards it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

log = logging.getLogger("mssante.notify")


class Outbox:
    """Writes system e-mails as ``.eml`` files under ``directory``."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    def build(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        msg.set_content(body)
        return msg

    def _write(self, msg: EmailMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # sortable by time (microseconds), unguessable, never overwritten (O_EXCL)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        name = f"{stamp}-{secrets.token_hex(6)}.eml"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(msg.as_bytes())
        return path

    async def send(self, to: str, subject: str, body: str, *, kind: str) -> Path:
        """Writes the message; logs its kind and file (not its content: it holds secrets)."""
        path = await asyncio.to_thread(self._write, self.build(to, subject, body))
        log.info("system_mail", extra={"fields": {"kind": kind, "file": str(path)}})
        return path


def outbox_for(data_dir: Path, domain: str) -> Outbox:
    return Outbox(data_dir / "outbox", f"ne-pas-repondre@{domain}")
