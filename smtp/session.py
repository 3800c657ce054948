"""One SMTP session of the relay or submission servers: aiosmtpd extended, not forked.

aiosmtpd parses command lines and sequences the dialogue; this subclass adds what it lacks
and what the gateway must guarantee, the way Postfix's smtpd does:

* an EHLO that advertises exactly what is implemented (PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
  ENHANCEDSTATUSCODES, DSN, CHUNKING, STARTTLS until TLS is up, AUTH on submission after TLS);
* MAIL/RCPT parameter parsing with DSN data kept per recipient (``smtp/dsn_params.py``);
* DATA read in large blocks with the smuggling defence (``smtp/dot_reader.py``), and BDAT,
  both checked by ``smtp/content.py``;
* TLS before any transaction, limits (recipients, bad commands, idle and session time,
  connections per address) and an enhanced status code on every reply (RFC 2034).

Decisions are delegated to an :class:`smtp.policy.SmtpPolicy`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import secrets
import ssl
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

from aiosmtpd.smtp import MISSING, SMTP

from config.metrics import (
    AUTHENTICATIONS,
    CONNECTIONS,
    SESSIONS,
    SMTP_MESSAGES,
    SMTP_REFUSALS,
)
from smtp.auth import SaslMechanism, decode_initial_response, default_mechanisms
from smtp.content import ContentScanner
from smtp.dot_reader import read_dot_terminated
from smtp.dsn_params import ParamError, parse_mail_params, parse_rcpt_params
from smtp.limits import ConnectionCounter, SessionLimits
from smtp.policy import GatewayEnvelope, Identity, Recipient, ServerKind, SmtpPolicy
from trustspace.refusal import Refusal
from trustspace.tls_layer import server_tls_protocol

log = logging.getLogger("mssante.smtp")

# RFC 2034 §3 / RFC 3463: the enhanced code a reply gets when the code path gave none.
_DEFAULT_ENHANCED = {
    "2": "2.0.0",
    "4": "4.0.0",
    "5": "5.0.0",
    "421": "4.3.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "552": "5.3.4",
    "553": "5.1.3",
    "555": "5.5.4",
}
_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
# Replies that mean the client sent a bad or out-of-sequence command (Postfix's "errors").
_BAD_COMMAND_CODES = frozenset({"500", "501", "502", "503", "504", "530", "535", "538", "555"})
_BDAT_ARGS = re.compile(r"([0-9]{1,20})(?: +(LAST))?", re.IGNORECASE)  # RFC 3030 §2: ASCII
# The common path ``<dot-atom@dot-atom> [params]`` (RFC 5321 §4.1.2 Mailbox with a
# Dot-string local part and a Domain), recognised without aiosmtpd's general header parser,
# which costs tens of microseconds per MAIL/RCPT. Anything else (quoted local parts, address
# literals, source routes, UTF-8, a comment after the path) takes the general path, so both
# give the same answer.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+([^\s(].*))?",
    re.DOTALL,
)
BDAT_READ_SIZE = 1024 * 1024
"""Largest piece of a BDAT chunk held at once, so a huge chunk never sits whole in memory."""
BDAT_DISCARD_LIMIT = 64 * 1024
"""Largest refused BDAT chunk still read and dropped (RFC 3030 §2) so the session goes on.

A larger one (a client may announce 2 GB before STARTTLS, AUTH or MAIL, or beyond the message
size limit) is refused without reading any of it and the connection is closed: its octets
would otherwise be taken for commands.
"""


class _Commands(dict[str, Any]):
    """aiosmtpd's verb table, answering unknown verbs with our own counted refusal."""

    def __init__(self, methods: dict[str, Any], unknown: Callable[[str | None], Any]) -> None:
        super().__init__(methods)
        self._unknown = unknown

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key) or self._unknown


class GatewaySMTP(SMTP):
    """The SMTP session; ``session``-level facts the policy needs are properties here."""

    line_length_limit = 2048
    """Longest command line (RFC 5321 §4.5.3.1.4: 512, plus RFC 3461 §5 and RFC 1870 room)."""

    def __init__(
        self,
        *,
        kind: ServerKind,
        policy: SmtpPolicy,
        limits: SessionLimits,
        hostname: str,
        starttls_context: ssl.SSLContext | None,
        counter: ConnectionCounter,
        sessions: set[GatewaySMTP],
        mechanisms: dict[str, SaslMechanism] | None = None,
        implicit_tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            _NoHooks(),
            data_size_limit=limits.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="ESMTP",
            tls_context=starttls_context,
            require_starttls=False,  # enforced below, with our own reply and ordering
            timeout=limits.idle_timeout,
            auth_require_tls=False,  # enforced in smtp_AUTH
        )
        self.kind: ServerKind = kind
        self.policy = policy
        self.limits = limits
        self.identity: Identity | None = None
        self.trace_id = secrets.token_hex(6)  # names this connection in the auth traces
        self.mechanisms = mechanisms if mechanisms is not None else default_mechanisms()
        self.peer_ip = ""
        self._counter = counter
        self._sessions = sessions
        self._implicit_tls = implicit_tls_context
        self._raw_transport: asyncio.Transport | None = None  # the TCP connection
        self._accepted = False  # counted in ``counter`` (released exactly once)
        self._closing = False
        self._greeted = False
        self._bad_commands = 0
        self._session_timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = self.loop.create_future()
        """Resolved when the connection is gone (the server's graceful close waits on it)."""
        # aiosmtpd keeps these on the class and grows them on each EHLO; ours are per session
        self.command_size_limits = _fixed_limits(self.line_length_limit)
        self._smtp_methods = _Commands(self._smtp_methods, self._unknown_command)

    # -- TLS facts -----------------------------------------------------------------------
    @property
    def ssl_object(self) -> ssl.SSLObject | ssl.SSLSocket | None:
        if self.transport is None:
            return None
        return self.transport.get_extra_info("ssl_object")  # type: ignore[no-any-return]

    @property
    def tls_active(self) -> bool:
        return self.ssl_object is not None

    @property
    def tls_version(self) -> str | None:
        obj = self.ssl_object
        return obj.version() if obj is not None else None

    @property
    def tls_cipher(self) -> str | None:
        obj = self.ssl_object
        cipher = obj.cipher() if obj is not None else None
        return cipher[0] if cipher else None

    @property
    def peer_certificate_der(self) -> bytes | None:
        obj = self.ssl_object
        return obj.getpeercert(binary_form=True) if obj is not None else None

    @property
    def peer_certificate_verified(self) -> bool:
        """A client certificate was presented and the handshake verified it."""
        obj = self.ssl_object
        return (
            obj is not None
            and obj.context.verify_mode != ssl.CERT_NONE
            and obj.getpeercert(binary_form=True) is not None
        )

    @property
    def helo_name(self) -> str | None:
        return self.session.host_name if self.session is not None else None

    def current_envelope(self) -> GatewayEnvelope:
        """The envelope of the transaction in progress (a method: aiosmtpd's constructor
        inspects every attribute, before any envelope exists)."""
        assert isinstance(self.envelope, GatewayEnvelope)
        return self.envelope

    def _create_envelope(self) -> GatewayEnvelope:
        return GatewayEnvelope()

    # -- connection life -----------------------------------------------------------------
    # Every accepted TCP connection is counted in ``counter`` from the accept (before any TLS
    # handshake) and released exactly once, by ``_release``, however it ends:
    # * plain transport: asyncio always calls ``connection_lost`` once the socket closes, so
    #   the socket must always get closed: on the client's FIN (``eof_received``), when the
    #   session's task ends for any reason (``_handler_ended``), on timeouts and shutdown;
    # * during a TLS handshake (implicit, or after STARTTLS) the TLS layer does not call
    #   ``connection_lost`` if the handshake never completes: the handshake's own end
    #   (``_implicit_handshake_done``, ``smtp_STARTTLS``) releases the connection then;
    # * after a completed handshake the TLS layer forwards ``connection_lost``.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._raw_transport is None:
            self._raw_transport = cast(asyncio.Transport, transport)
            peer = transport.get_extra_info("peername")
            self.peer_ip = str(peer[0]) if peer else ""
            if not self._counter.acquire(self.peer_ip):
                self._refuse_connection(transport)
                return
            self._accepted = True
            self._sessions.add(self)
            CONNECTIONS.labels("smtp", self.kind).inc()
            SESSIONS.labels("smtp", self.kind).inc()
            self._session_timer = self.loop.call_later(
                self.limits.session_timeout, self._session_timeout
            )
            if self._implicit_tls is not None:
                self._start_implicit_tls(transport)  # the session starts after the handshake
                return
        fresh = self.transport is None  # not the end of a STARTTLS handshake
        super().connection_made(transport)
        if fresh and self._handler_coroutine is not None:
            self._handler_coroutine.add_done_callback(self._handler_ended)

    def _refuse_connection(self, transport: asyncio.BaseTransport) -> None:
        """Like Postfix's smtpd_client_connection_count_limit: refuse at connect."""
        self._closing = True
        log.info("event=smtp_refused_connection kind=%s peer=%s reason=per_ip_limit",
                 self.kind, self.peer_ip)
        if self._implicit_tls is None:
            transport.write(  # type: ignore[attr-defined]
                f"421 4.7.0 {self.hostname} Error: too many connections from "
                f"{self.peer_ip}; try again later\r\n".encode("ascii")
            )
        # On the implicit-TLS port no TLS is spent on a refused connection: a reply could
        # only be sent after a handshake, which is what the limit is there to bound.
        transport.close()

    def _start_implicit_tls(self, transport: asyncio.BaseTransport) -> None:
        """RFC 8314 §3.3: TLS from the first octet, the handshake bounded in time."""
        assert self._implicit_tls is not None
        waiter: asyncio.Future[None] = self.loop.create_future()
        tls = server_tls_protocol(self.loop, self, self._implicit_tls, waiter,
                                  self.limits.handshake_timeout)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        waiter.add_done_callback(self._implicit_handshake_done)

    def _implicit_handshake_done(self, waiter: asyncio.Future[None]) -> None:
        error = None if waiter.cancelled() else waiter.exception()
        if self.session is not None:
            return  # the handshake completed and the session started (connection_made)
        self._log_tls_failure(error)
        if self._raw_transport is not None:
            self._raw_transport.close()
        self._release()

    def _log_tls_failure(self, error: BaseException | None) -> None:
        # A TLS error (certificate refused, no common protocol) is worth a warning; a
        # client that went away or let the handshake time out is routine.
        level = logging.WARNING if isinstance(error, ssl.SSLError) else logging.INFO
        log.log(level, "event=smtp_tls_failed kind=%s peer=%s reason=\"%s\"", self.kind,
                self.peer_ip, _tls_failure(error))

    def eof_received(self) -> bool:
        """The client closed its side: the session is over (aiosmtpd cancels its task).

        aiosmtpd keeps a plain transport half-open here (StreamReaderProtocol answers True),
        so nothing would ever close it and ``connection_lost`` would never run: answering
        False lets the transport close itself.
        """
        if self.session is not None:
            super().eof_received()
        return False

    def _handler_ended(self, task: asyncio.Task[None]) -> None:
        """However the session's task ended, its connection ends with it."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if not self._accepted:
            return
        self._release()
        if self.session is not None:
            super().connection_lost(error)

    def _release(self) -> None:
        """Gives back this connection's count; only the first call does anything."""
        if not self._accepted:
            return
        self._accepted = False
        SESSIONS.labels("smtp", self.kind).dec()
        self._counter.release(self.peer_ip)
        self._sessions.discard(self)
        if self._session_timer is not None:
            self._session_timer.cancel()
        if not self.done.done():
            self.done.set_result(None)

    def _timeout_cb(self) -> None:
        # RFC 5321 §4.5.3.2: a server may close an idle session; say why first.
        self._close_with("421 4.4.2 {host} Error: timeout exceeded, closing connection")

    def _session_timeout(self) -> None:
        self._close_with("421 4.4.2 {host} Error: session lasted too long, closing connection")

    def _close_with(self, reply: str) -> None:
        if self._accepted and self.transport is None and self._raw_transport is not None:
            self._raw_transport.abort()  # still in the implicit TLS handshake: nothing to say
            return
        if self._closing or self.transport is None:
            return
        self._closing = True
        if self.transport.is_closing():
            return
        self._writer.write(reply.format(host=self.hostname).encode("ascii") + b"\r\n")
        self.transport.close()

    def shutdown(self) -> None:
        """Closes the session because the server stops (RFC 5321 §3.8: 421)."""
        self._close_with("421 4.3.2 {host} Service shutting down, try again later")

    # -- replies -------------------------------------------------------------------------
    async def push(self, status: str | bytes) -> None:
        """Writes one reply, adding the enhanced code and counting bad commands."""
        if self._closing:
            return
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        code = text[:3]
        if not self._greeted:
            self._greeted = True  # RFC 2034 §3: the greeting carries no enhanced code
        elif code[:1] in "245" and not _HAS_ENHANCED.match(text):
            enhanced = _DEFAULT_ENHANCED.get(code) or _DEFAULT_ENHANCED[code[:1]]
            text = f"{code}{text[3:4] or ' '}{enhanced} {text[4:]}".rstrip()
        await super().push(text)
        if code in _BAD_COMMAND_CODES:
            self._bad_commands += 1
            if self._bad_commands >= self.limits.max_bad_commands:
                log.info("event=smtp_too_many_errors kind=%s peer=%s", self.kind, self.peer_ip)
                self._close_with("421 4.7.0 {host} Error: too many errors, closing connection")
                if self._handler_coroutine is not None:
                    self._handler_coroutine.cancel()

    async def handle_exception(self, error: Exception) -> str:
        """The reply to a command that failed in a way the code did not foresee.

        aiosmtpd's default answers ``500 Error: (ExceptionName) text``: it tells an attacker
        about the internals, is counted as the client's fault, and a multi-line exception text
        even breaks the reply syntax. The client gets a temporary failure with an incident id
        instead (RFC 3463 X.3.0 "other or undefined mail system status"), and the log the
        traceback under that id, so the operator finds it from what the user reports.
        """
        incident = secrets.token_hex(6)
        log.error("event=smtp_internal_error incident=%s kind=%s peer=%s",
                  incident, self.kind, self.peer_ip, exc_info=error)
        return (f"451 4.3.0 Internal error (incident {incident}); the command was not carried "
                "out, please try again later")

    async def _unknown_command(self, arg: str | None) -> None:
        await self.push("500 5.5.2 Error: command not recognized")

    async def _refuse(self, refusal: Refusal) -> None:
        # RFC 6531 §3.7.4.2: UTF-8 in a reply only within a transaction that asked SMTPUTF8.
        envelope = self.envelope
        utf8 = isinstance(envelope, GatewayEnvelope) and bool(envelope.smtp_utf8)
        SMTP_REFUSALS.labels(self.kind, refusal.enhanced).inc()
        await self.push(refusal.smtp_reply(utf8=utf8))

    async def _need_tls(self) -> bool:
        """RFC 3207 §4: no mail transaction before STARTTLS (or on the implicit-TLS port)."""
        if self.tls_active:
            return False
        await self.push("530 5.7.0 Must issue a STARTTLS command first")
        return True

    async def _need_helo(self) -> bool:
        assert self.session is not None
        if self.session.host_name:
            return False
        await self.push("503 5.5.1 Error: send HELO/EHLO first")
        return True

    # -- EHLO, STARTTLS, AUTH ------------------------------------------------------------
    def capabilities(self) -> list[str]:
        """The EHLO keywords of this session state, exactly what is implemented."""
        caps = [
            "PIPELINING",  # RFC 2920
            f"SIZE {self.limits.max_message_size}",  # RFC 1870
            "8BITMIME",  # RFC 6152
            "SMTPUTF8",  # RFC 6531
            "ENHANCEDSTATUSCODES",  # RFC 2034
            "DSN",  # RFC 3461
            "CHUNKING",  # RFC 3030
        ]
        if not self.tls_active and self.tls_context is not None:
            caps.append("STARTTLS")  # RFC 3207
        if self.kind != "relay" and self.tls_active:
            names = [n for n, m in self.mechanisms.items() if m.available(self)]
            if names:
                caps.append("AUTH " + " ".join(names))  # RFC 4954
        return caps

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [self.hostname, *self.capabilities()]
        # RFC 5321 §4.2.1 multi-line reply; RFC 2034: no enhanced code in the EHLO reply
        reply = "".join(
            f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines)
        )
        self._writer.write(reply.encode("ascii"))
        await self._writer.drain()

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if self.tls_active:
            await self.push("503 5.5.1 Error: TLS already active")
            return
        if self.tls_context is None:
            await self.push("454 4.7.0 TLS not available")
            return
        timer = self.loop.call_later(self.limits.handshake_timeout, self._handshake_expired)
        try:
            await super().smtp_STARTTLS(arg)
        except Exception as exc:  # noqa: BLE001 - a failed handshake ends the connection
            self._log_tls_failure(exc.__cause__ or exc)
        finally:
            timer.cancel()
            if self._original_transport is not None and not self.tls_active:
                # Failed, timed out or cut during the handshake: the TLS layer will not
                # report the end of the connection, so end and release it here.
                cast(asyncio.Transport, self._original_transport).abort()
                self.connection_lost(None)

    def _handshake_expired(self) -> None:
        if self._original_transport is not None and not self.tls_active:
            log.info("event=smtp_tls_failed kind=%s peer=%s reason=\"handshake timeout\"",
                     self.kind, self.peer_ip)
            cast(asyncio.Transport, self._original_transport).abort()

    async def smtp_AUTH(self, arg: str | None) -> None:
        if self.kind == "relay":
            # Operators authenticate with their certificate (mutual TLS), never with SASL.
            await self.push("502 5.5.1 AUTH is not offered on the relay; use mutual TLS")
            return
        if not self.tls_active:
            # RFC 4954 §6: 538 names the reason (every mechanism needs encryption here)
            await self.push(
                "538 5.7.11 Encryption required for requested authentication mechanism; "
                "issue STARTTLS first"
            )
            return
        if await self._need_helo():
            return
        if self.identity is not None:
            await self.push("503 5.5.1 Error: already authenticated")  # RFC 4954 §4
            return
        if self.envelope is not None and self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: AUTH not permitted during a mail transaction")
            return
        args = (arg or "").split()
        if not 1 <= len(args) <= 2:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        name = args[0].upper()
        mechanism = self.mechanisms.get(name)
        if mechanism is None or not mechanism.available(self):
            await self.push(f"504 5.5.4 Unrecognized authentication type {name}")
            return
        initial: bytes | None = None
        if len(args) == 2:
            initial = decode_initial_response(args[1])
            if initial is None:
                await self.push("501 5.5.2 Cannot decode base64 initial response")
                return
        credentials = await mechanism.credentials(self, initial)
        if credentials is None:
            return
        try:
            identity = await self.policy.authenticate(self, name, credentials)
        except Refusal as refusal:
            AUTHENTICATIONS.labels("smtp", name, "refused").inc()
            await self._refuse(refusal)
            return
        AUTHENTICATIONS.labels("smtp", name, "failure" if identity is None else "success").inc()
        if identity is None:
            log.info("event=smtp_auth_failed kind=%s peer=%s mechanism=%s",
                     self.kind, self.peer_ip, name)
            after_failure = getattr(mechanism, "after_failure", None)
            if after_failure is not None and not await after_failure(self):
                return  # RFC 7628 §3.2.2 error challenge; the client cancelled it
            await self.push("535 5.7.8 Authentication credentials invalid")
            return
        self.identity = identity
        assert self.session is not None
        self.session.authenticated = True
        log.info("event=smtp_auth kind=%s peer=%s mechanism=%s login=%s",
                 self.kind, self.peer_ip, name, identity.login)
        await self.push("235 2.7.0 Authentication successful")

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> Any:
        """Sends a ``334`` challenge and reads the answer line, bounded (RFC 4954 §4, §6).

        aiosmtpd's version reads with ``readline``, which fails with a Python error text
        (``500 5.5.2 Error: (ValueError) Separator is not found…``) on a line longer than the
        stream limit and leaves the rest of the line to be read as commands. Here an overlong
        answer is read to its end in bounded pieces and dropped, and the client gets RFC 4954's
        ``500 5.5.6``. The answer is never logged.
        """
        data = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (base64.b64encode(data) if encode_to_b64 else data))
        line = await self._read_auth_line()
        if line is None:
            log.info("event=smtp_auth_line_too_long kind=%s peer=%s", self.kind, self.peer_ip)
            await self.push(
                f"500 5.5.6 Authentication exchange line is too long (limit "
                f"{self.line_length_limit} octets)"
            )
            return MISSING
        blob = line.strip()
        if blob == b"*":
            await self.push("501 5.7.0 Authentication aborted by the client")
            return MISSING
        try:
            return base64.b64decode(blob, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Cannot decode the base64 authentication response")
            return MISSING

    async def _read_auth_line(self) -> bytes | None:
        """One answer line; None when longer than the stream limit (then read and dropped)."""
        reader = self._reader
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            await reader.read(exc.consumed)
        while True:
            try:
                await reader.readuntil(b"\n")
                return None
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError as exc:
                await reader.read(exc.consumed)

    # -- the mail transaction ------------------------------------------------------------
    def _split_path(self, arg: str | None, keyword: str) -> tuple[str, list[str]] | None:
        """``FROM:<path> params`` → (address, params); None when malformed."""
        if arg is None:
            return None
        rest = self._strip_command_keyword(keyword, arg)
        if rest is None:
            return None
        if rest.startswith("<>"):
            return "", rest[2:].split()  # RFC 5321 §4.5.5: the null reverse-path
        simple = _SIMPLE_PATH.fullmatch(rest)
        if simple is not None and (
            not self.local_part_limit or simple.group(1).rfind("@") <= self.local_part_limit
        ):
            return simple.group(1), (simple.group(2) or "").split()
        address, params = self._getaddr(rest)
        if address is None or not address or params is None:
            return None
        return address, params.split()

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self._need_tls() or await self._need_helo():
            return
        assert self.session is not None
        if self.kind != "relay" and self.identity is None:
            await self.push("530 5.7.0 Authentication required")  # RFC 4954 §6
            return
        envelope = self.current_envelope()
        if envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        parsed = self._split_path(arg, "FROM:")
        if parsed is None:
            await self.push("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]")
            return
        address, params = parsed
        if params and not self.session.extended_smtp:
            await self.push("501 5.5.4 Parameters need EHLO (RFC 5321 section 4.1.1.2)")
            return
        try:
            mail_params = parse_mail_params(
                params, size_limit=self.limits.max_message_size, smtputf8_enabled=True
            )
        except ParamError as exc:
            await self.push(exc.reply())
            return
        if not address.isascii() and not mail_params.smtputf8:
            # RFC 6531 §3.2: a non-ASCII address needs the SMTPUTF8 parameter
            await self.push("553 5.6.7 Non-ASCII sender address requires SMTPUTF8")
            return
        try:
            await self.policy.check_mail(self, envelope, address, mail_params)
        except Refusal as refusal:
            await self._refuse(refusal)
            return
        envelope.mail_from = address
        envelope.mail_options = params
        envelope.mail_params = mail_params
        envelope.smtp_utf8 = mail_params.smtputf8
        await self.push(f"250 2.1.0 Sender <{address}> OK")

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self._need_tls() or await self._need_helo():
            return
        assert self.session is not None
        envelope = self.current_envelope()
        if envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        parsed = self._split_path(arg, "TO:")
        if parsed is None or not parsed[0]:
            await self.push("501 5.5.4 Syntax: RCPT TO:<address> [parameters]")
            return
        address, params = parsed
        if params and not self.session.extended_smtp:
            await self.push("501 5.5.4 Parameters need EHLO (RFC 5321 section 4.1.1.3)")
            return
        if len(envelope.recipients) >= self.limits.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client retries the rest
            await self.push(
                f"452 4.5.3 Too many recipients (at most {self.limits.max_recipients})"
            )
            return
        try:
            rcpt_params = parse_rcpt_params(params)
        except ParamError as exc:
            await self.push(exc.reply())
            return
        if not address.isascii() and not envelope.smtp_utf8:
            await self.push("553 5.6.7 Non-ASCII recipient address requires SMTPUTF8")
            return
        try:
            await self.policy.check_rcpt(self, envelope, address, rcpt_params)
        except Refusal as refusal:
            await self._refuse(refusal)
            return
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(params)
        envelope.recipients.append(Recipient(address=address, params=rcpt_params))
        await self.push(f"250 2.1.5 Recipient <{address}> OK")

    async def _transaction_refusal(self) -> str | None:
        """The reply refusing DATA/BDAT in this state, or None when they may proceed."""
        if not self.tls_active:
            return "530 5.7.0 Must issue a STARTTLS command first"
        assert self.session is not None
        if not self.session.host_name:
            return "503 5.5.1 Error: send HELO/EHLO first"
        envelope = self.current_envelope()
        if envelope.mail_from is None:
            return "503 5.5.1 Error: need MAIL command"
        if not envelope.recipients:
            return "503 5.5.1 Error: need RCPT command"
        return None

    async def smtp_DATA(self, arg: str | None) -> None:
        refusal = await self._transaction_refusal()
        if refusal is not None:
            await self.push(refusal)
            return
        if self.current_envelope().chunking:
            # RFC 3030 §2: DATA and BDAT may not be mixed in one transaction
            await self.push("503 5.5.1 Error: DATA not allowed after BDAT in this transaction")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        scanner = ContentScanner(self.limits)
        await read_dot_terminated(self._reader, scanner.feed, self._reset_timeout)
        await self._finish_message(scanner)

    async def smtp_BDAT(self, arg: str | None) -> None:
        match = _BDAT_ARGS.fullmatch((arg or "").strip())
        if match is None:
            # Without a valid size the chunk's end is unknown: its octets would be read
            # as commands, so the session cannot continue safely.
            await self.push("501 5.5.4 Syntax: BDAT chunk-size [LAST]")
            self._close_with("421 4.5.0 {host} Error: cannot find the end of the BDAT chunk")
            return
        size = int(match.group(1))
        last = match.group(2) is not None
        refusal = await self._transaction_refusal()
        if refusal is not None:
            if size > BDAT_DISCARD_LIMIT:
                await self._refuse_chunk_unread(refusal, size)
                return
            # RFC 3030 §2: the chunk is consumed even when the command is refused
            await self._read_chunk(size, None)
            await self.push(refusal)
            return
        envelope = self.current_envelope()
        envelope.chunking = True
        if envelope.scanner is None:
            envelope.scanner = ContentScanner(self.limits)
        scanner = envelope.scanner
        if size > BDAT_DISCARD_LIMIT and scanner.size + size > self.limits.max_message_size:
            await self._refuse_chunk_unread(
                f"552 5.3.4 Message size exceeds fixed maximum message size of "
                f"{self.limits.max_message_size} octets", size,
            )
            self._set_post_data_state()
            return
        await self._read_chunk(size, scanner)
        if scanner.error is not None or last:
            await self._finish_message(scanner)
            return
        await self.push(f"250 2.0.0 {size} octets received")

    async def _refuse_chunk_unread(self, refusal: str, size: int) -> None:
        """Refuses a BDAT chunk too large to be read and dropped, then closes (no resync)."""
        log.info("event=smtp_bdat_refused_unread kind=%s peer=%s size=%d",
                 self.kind, self.peer_ip, size)
        await self.push(refusal)
        self._close_with(
            f"421 4.7.0 {{host}} Error: BDAT chunk of {size} octets refused without reading "
            "it, closing connection"
        )

    async def _read_chunk(self, size: int, scanner: ContentScanner | None) -> None:
        """RFC 3030 §2: exactly ``size`` octets, in pieces (``readexactly``)."""
        remaining = size
        while remaining:
            piece = await self._reader.readexactly(min(remaining, BDAT_READ_SIZE))
            remaining -= len(piece)
            self._reset_timeout()
            if scanner is not None:
                scanner.feed(piece)

    async def _finish_message(self, scanner: ContentScanner) -> None:
        envelope = self.current_envelope()
        data = scanner.finish()
        try:
            if data is None:
                assert scanner.error is not None
                log.info("event=smtp_content_refused kind=%s peer=%s code=%s size=%d",
                         self.kind, self.peer_ip, scanner.error.enhanced, scanner.size)
                SMTP_MESSAGES.labels(self.kind, "refused", scanner.error.enhanced).inc()
                await self.push(scanner.error.reply())
                return
            envelope.content = data
            envelope.original_content = data
            try:
                text = await self.policy.accept(self, envelope, data)
            except Refusal as refusal:
                SMTP_MESSAGES.labels(self.kind, "refused", refusal.enhanced).inc()
                await self._refuse(refusal)
                return
            SMTP_MESSAGES.labels(self.kind, "accepted", "2.0.0").inc()
            # One log line per accepted message: the policy's store step logs it with the
            # message id (``event=smtp_stored``, which carries size and recipient counts).
            await self.push(f"250 2.0.0 {text}")
        finally:
            self._set_post_data_state()


class _NoHooks:
    """aiosmtpd's handler slot: every decision goes through the policy instead."""


def _tls_failure(error: BaseException | None) -> str:
    """A short reason for the log: the TLS alert or error name, never client data."""
    if error is None:
        return "closed during handshake"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return type(error).__name__


def _fixed_limits(limit: int) -> defaultdict[str, int]:
    return defaultdict(lambda: limit)
