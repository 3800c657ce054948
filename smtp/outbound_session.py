"""One outbound SMTP connection to another operator: STARTTLS required, mutual TLS.

The connection is opened in clear only to read the EHLO answer; if the peer does not offer
STARTTLS the connection is dropped before any envelope is sent (MSSanté: never in clear;
RFC 3207 §4 lets a client refuse to go on without TLS). The peer chain is verified against
the trust anchors and its name against the host we meant to reach (the MX host, or for a
``[transport]`` entry its host, its ``name=``, or the destination domain when the entry
names an IP address: RFC 6125 via ``check_hostname``), and this gateway presents its server
certificate as client certificate. Several transactions reuse one connection, with RSET
between them (RFC 5321 §4.1.1.5).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from smtp.dsn_params import xtext_encode
from smtp.mx import Destination
from trustspace.tls import PeerInfo, peer_info

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


class SessionFailure(Exception):
    """The connection could not be set up or broke; ``enhanced`` says how (4.x: retry)."""

    def __init__(self, text: str, enhanced: str = "4.4.1", permanent: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.enhanced = enhanced
        self.permanent = permanent


@dataclass(frozen=True)
class Reply:
    """An SMTP reply as the peer sent it."""

    code: int
    message: str

    @property
    def text(self) -> str:
        return f"{self.code} {self.message}".strip()

    @property
    def enhanced(self) -> str:
        """The RFC 3463 code the reply carries, or one derived from its class."""
        found = _ENHANCED.match(self.message.strip())
        if found:
            return found.group(0)
        return f"{self.code // 100}.0.0" if self.code >= 400 else "2.0.0"

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True)
class Envelope:
    """What one transaction sends: sender, recipients with their RFC 3461 parameters."""

    sender: str
    recipients: Sequence[tuple[str, str | None, str | None]]  # (address, notify, orcpt)
    data: bytes
    ret: str | None = None
    envid: str | None = None


@dataclass(frozen=True)
class TransactionResult:
    """Per-recipient replies; ``data`` is the reply to DATA (None if never reached)."""

    rcpt: dict[str, Reply]
    data: Reply | None


class OutboundSession:
    """A live, TLS-protected connection to one destination."""

    def __init__(self, smtp: aiosmtplib.SMTP, destination: Destination, tls: PeerInfo) -> None:
        self._smtp = smtp
        self.destination = destination
        self.tls = tls
        self.transactions = 0

    @classmethod
    async def open(
        cls,
        destination: Destination,
        tls_context: ssl.SSLContext,
        *,
        local_hostname: str,
        command_timeout: float,
    ) -> OutboundSession:
        """Connects, says EHLO, requires STARTTLS, verifies the peer; raises SessionFailure."""
        where = f"{destination.host}:{destination.port}"
        smtp = aiosmtplib.SMTP(
            hostname=destination.host,
            port=destination.port,
            local_hostname=local_hostname,
            timeout=command_timeout,
            start_tls=False,
            use_tls=False,
            tls_context=tls_context,
        )
        try:
            await smtp.connect()
            await smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            raise SessionFailure(f"cannot connect to {where}: {_why(exc)}", "4.4.1") from None
        if not smtp.supports_extension("starttls"):
            # MSSanté rule: never in clear. RFC 3463 X.7.10? no: X.7.4 "security features
            # not supported" is what Postfix reports for a missing STARTTLS.
            await _quit(smtp)
            raise SessionFailure(
                f"{where} does not offer STARTTLS; mail is never sent in clear, will retry",
                "4.7.4",
            )
        try:
            await smtp.starttls(
                server_hostname=destination.certificate_name, tls_context=tls_context
            )
            await smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            smtp.close()
            raise SessionFailure(
                f"TLS with {where} failed: {_why(exc)}", "4.7.5"  # RFC 3463 X.7.5 crypto
            ) from None
        ssl_object = smtp.get_transport_info("ssl_object")
        if ssl_object is None:  # pragma: no cover - starttls succeeded without TLS
            smtp.close()
            raise SessionFailure(f"TLS with {where} is not active", "4.7.5")
        return cls(smtp, destination, peer_info(ssl_object))

    @property
    def supports_dsn(self) -> bool:
        return self._smtp.supports_extension("dsn")

    @property
    def size_limit(self) -> int | None:
        """The peer's SIZE announcement (RFC 1870 §4), None when absent or unlimited."""
        value = self._smtp.esmtp_extensions.get("size", "")
        if not (value.isascii() and value.isdigit()):
            return None  # RFC 1870 §3: ASCII digits; "²" passes isdigit() but not int()
        return int(value) if int(value) > 0 else None

    async def send(self, envelope: Envelope) -> TransactionResult:
        """One mail transaction; refusals come back as replies, broken links raise."""
        smtp = self._smtp
        try:
            if self.transactions:
                await smtp.rset()  # RFC 5321 §4.1.1.5: a clean state for the next message
            self.transactions += 1
            options: list[str] = []
            if smtp.supports_extension("size"):
                options.append(f"SIZE={len(envelope.data)}")  # RFC 1870 §3
            if any(b > 127 for b in envelope.data) and smtp.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")  # RFC 6152 §2
            dsn = self.supports_dsn
            if dsn:
                # RFC 3461 §5.2.2: pass the DSN parameters on to a DSN-capable next hop.
                if envelope.ret:
                    options.append(f"RET={envelope.ret}")
                if envelope.envid:
                    options.append(f"ENVID={xtext_encode(envelope.envid)}")
            try:
                await smtp.mail(envelope.sender, options=options)
            except aiosmtplib.SMTPResponseException as exc:
                reply = Reply(exc.code, exc.message)
                return TransactionResult({a: reply for a, _, _ in envelope.recipients}, None)
            replies: dict[str, Reply] = {}
            accepted: list[str] = []
            for address, notify, orcpt in envelope.recipients:
                rcpt_options: list[str] = []
                if dsn:
                    if notify:
                        rcpt_options.append(f"NOTIFY={notify.upper()}")  # RFC 3461 §4.1
                    if orcpt:
                        rcpt_options.append(f"ORCPT={_orcpt(orcpt)}")  # RFC 3461 §4.2
                try:
                    response = await smtp.rcpt(address, options=rcpt_options)
                    replies[address] = Reply(response.code, response.message)
                    accepted.append(address)
                except aiosmtplib.SMTPResponseException as exc:
                    replies[address] = Reply(exc.code, exc.message)
            if not accepted:
                return TransactionResult(replies, None)
            try:
                response = await smtp.data(envelope.data)
                data_reply = Reply(response.code, response.message)
            except aiosmtplib.SMTPResponseException as exc:
                data_reply = Reply(exc.code, exc.message)
            return TransactionResult(replies, data_reply)
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise SessionFailure(f"{self.destination.host} closed the connection: {exc}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SessionFailure(f"{self.destination.host}: {_why(exc)}") from None

    async def close(self) -> None:
        await _quit(self._smtp)


def _orcpt(value: str) -> str:
    """ORCPT as ``addr-type;xtext`` (a bare stored address is an rfc822 address)."""
    kind, sep, address = value.partition(";")
    if sep and kind and "@" not in kind:
        return f"{kind};{xtext_encode(address)}"
    return f"rfc822;{xtext_encode(value)}"


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        if smtp.is_connected:
            await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        smtp.close()
