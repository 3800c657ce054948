"""System e-mails to professionals' usual addresses (confirmation links, codes, decisions).

They carry no health data and never leave through the trust-space relay: the usual
address is outside the MSSanté space. Two ways out, chosen by ``[notify]``:

- **embedded** (no ``smarthost``): each message is written to
  ``<data dir>/outbox/<time>-<random>.eml`` (mode 0600: links and codes are secrets) and its
  file logged, so that a newcomer can open the link or read the code without a mail server;
- **smarthost**: each message is first written to ``<data dir>/notify-queue/`` (0600, so a
  crash or a smarthost outage loses nothing), then handed to the configured smarthost with
  aiosmtplib over TLS (STARTTLS or implicit TLS, certificate verified; AUTH when
  configured) and removed once it took it. What it did not take stays queued and is tried
  again every ``retry_interval`` seconds by the running gateway (:meth:`SmarthostNotifier.
  run`), also for messages queued by the command line. Logs name the kind, the file and
  the error's type, never the content or the recipient's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import ssl
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

import aiosmtplib

from config import Settings

log = logging.getLogger("mssante.notify")


class Notifier(Protocol):
    """Sends one system e-mail; what the portal and the registrar need."""

    async def send(self, to: str, subject: str, body: str, *, kind: str) -> Path: ...


def build_message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    msg.set_content(body)
    return msg


def write_private(directory: Path, msg: EmailMessage) -> Path:
    """``msg`` as a new ``.eml`` file of ``directory``, mode 0600, never overwriting."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # sortable by time (microseconds), unguessable, never overwritten (O_EXCL)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    path = directory / f"{stamp}-{secrets.token_hex(6)}.eml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(msg.as_bytes())
    return path


class Outbox:
    """Writes system e-mails as ``.eml`` files under ``directory`` (embedded mode)."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    def build(self, to: str, subject: str, body: str) -> EmailMessage:
        return build_message(self.sender, to, subject, body)

    def _write(self, msg: EmailMessage) -> Path:
        return write_private(self.directory, msg)

    async def send(self, to: str, subject: str, body: str, *, kind: str) -> Path:
        """Writes the message; logs its kind and file (not its content: it holds secrets)."""
        path = await asyncio.to_thread(self._write, self.build(to, subject, body))
        log.info("system_mail", extra={"fields": {"kind": kind, "file": str(path)}})
        return path


class SmarthostNotifier:
    """Queues each system e-mail on disk, then hands it to the notification smarthost."""

    def __init__(self, settings: Settings) -> None:
        conf = settings.notify
        self.conf = conf
        self.queue = settings.data_dir / "notify-queue"
        self.sender = conf.from_address or default_sender(settings.primary_domain)
        self._password_file = settings.path(conf.password_file, conf.password_file) \
            if conf.password_file else None
        self._ca_file = settings.path(conf.ca_file, conf.ca_file) if conf.ca_file else None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(
            cafile=str(self._ca_file) if self._ca_file else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _password(self) -> str | None:
        if self._password_file is None:
            return None
        return self._password_file.read_text("utf-8").strip()

    async def send(self, to: str, subject: str, body: str, *, kind: str) -> Path:
        """Queues the message and tries to hand it over at once; a failure leaves it
        queued for :meth:`retry` (the caller's answer does not wait for a smarthost)."""
        msg = build_message(self.sender, to, subject, body)
        path = await asyncio.to_thread(write_private, self.queue, msg)
        log.info("system_mail_queued", extra={"fields": {"kind": kind, "file": path.name}})
        await self._deliver(path)
        return path

    async def _deliver(self, path: Path) -> bool:
        """One attempt for one queued file; True when the smarthost took it."""
        try:
            raw = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return True  # another attempt took it meanwhile
        msg = message_from_bytes(raw, policy=policy.SMTP)
        implicit = self.conf.tls == "implicit"
        try:
            await aiosmtplib.send(
                msg, hostname=self.conf.smarthost, port=self.conf.port,
                use_tls=implicit, start_tls=not implicit, tls_context=self.tls_context(),
                username=self.conf.username or None,
                password=self._password() if self.conf.username else None,
                timeout=self.conf.timeout, sender=self.sender,
                recipients=[str(msg["To"])])
        except (TimeoutError, aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            code = getattr(exc, "code", None)
            log.warning("system_mail_deferred", extra={"fields": {
                "file": path.name, "smarthost": self.conf.smarthost,
                "error": type(exc).__name__, **({"code": code} if code else {})}})
            return False
        await asyncio.to_thread(path.unlink, missing_ok=True)
        log.info("system_mail_sent", extra={"fields": {
            "file": path.name, "smarthost": self.conf.smarthost}})
        return True

    def queued(self) -> list[Path]:
        return sorted(self.queue.glob("*.eml")) if self.queue.is_dir() else []

    async def retry(self) -> int:
        """Tries every queued message once, oldest first; how many are left."""
        async with self._lock:
            left = 0
            for path in self.queued():
                if not await self._deliver(path):
                    left += 1
            return left

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notify-retry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.conf.retry_interval)
            try:
                await self.retry()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep retrying; say what failed
                log.warning("system_mail_retry_failed", extra={"fields": {
                    "error": type(exc).__name__}})


def default_sender(domain: str) -> str:
    return f"ne-pas-repondre@{domain}"


def outbox_for(data_dir: Path, domain: str) -> Outbox:
    return Outbox(data_dir / "outbox", default_sender(domain))


def notifier_for(settings: Settings) -> Outbox | SmarthostNotifier:
    """The smarthost when ``[notify] smarthost`` is set, else the embedded outbox."""
    if settings.notify.smarthost:
        return SmarthostNotifier(settings)
    outbox = outbox_for(settings.data_dir, settings.primary_domain)
    if settings.notify.from_address:
        outbox.sender = settings.notify.from_address
    return outbox
