"""One IMAP connection: the state machine of RFC 9051 §3 and the command loop.

The session reads a whole command (literals included) with the protocol reader, parses it,
checks that the command is allowed in the current state, runs its handler from
``imap/commands/`` and writes the tagged reply. Between the handler and the tagged reply it
reports what other sessions changed in the selected mailbox (RFC 3501 §5.2). Per-connection
state is a handful of attributes plus :class:`~imap.selected.SelectedMailbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accounts.authenticator import Authenticator, Identity
from config import Settings
from config.metrics import IMAP_COMMANDS
from imap.capabilities import capabilities
from imap.contexts import updates as context_updates
from imap.contexts import waiting as contexts_waiting
from imap.protocol import (
    CommandReader,
    CommandTooLarge,
    ConnectionClosed,
    ImapRefusal,
    LiteralLimits,
    ParseError,
    ResponseCode,
    bye,
    continuation,
    parse_command,
    tagged,
    untagged,
)
from imap.protocol import commands as c
from imap.protocol.sort_thread import Sort, Thread
from imap.selected import SelectedMailbox
from imap.workarounds import Workarounds
from mail.changes import ChangeHub
from mailstore.store import MailStore

if TYPE_CHECKING:
    from mail.pipeline import Pipeline
    from storage.database import Database

log = logging.getLogger("mssante.imap")

def internal_error(error: Exception, log_fields: Callable[..., dict[str, Any]]) -> str:
    """Logs ``error`` with its traceback under a new incident id; the text for the client.

    The client reads only the id (RFC 5530 SERVERBUG), never the exception: its text may name
    tables, paths or message contents. The operator finds the traceback from the id the
    user reports.
    """
    incident = secrets.token_hex(6)
    log.error("imap_internal_error incident=%s", incident, exc_info=error,
              extra=log_fields(incident=incident))
    return f"Internal error (incident {incident}); the command was not carried out"


# RFC 3501 §7.4.1: no EXPUNGE while answering these (the client may be counting numbers).
NO_EXPUNGE = (c.Fetch, c.Store, c.Search, Sort, Thread)
FLUSH_AT = 256 * 1024
PREAUTH_MAX_LITERAL = 8 * 1024
"""Largest literal before login (Dovecot allows 8 KiB): a user name, a password, a SASL
response. Larger ones are refused unread, so an unauthenticated client holds no memory."""
PREAUTH_MAX_COMMAND = 64 * 1024
"""Largest whole command (lines and literals) before login."""
PREAUTH_LIMITS = LiteralLimits(PREAUTH_MAX_LITERAL, PREAUTH_MAX_COMMAND, " before login")
COMMAND_MAX_SIZE = 1024 * 1024
"""Largest command other than APPEND once logged in (its literals: at most a line's length)."""
SPOOL_THRESHOLD = 64 * 1024
"""APPEND literals larger than this go to an encrypted spool file as they arrive."""
APPEND_CONCURRENCY = 2
"""Spooled APPENDs read back into memory and stored at the same time, process-wide."""


@functools.lru_cache(maxsize=4)
def spool_directory(data_dir: Path) -> str | None:
    """``<data dir>/spool`` (0700), created once: on the data disk, not a RAM-backed /tmp.

    Spool files are created unlinked and encrypted, so nothing is ever left there to clean.
    None (the system's temporary directory, still unlinked and encrypted) when the data
    directory cannot hold it.
    """
    path = data_dir / "spool"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
    except OSError as exc:
        log.warning("imap_spool_directory_unusable",
                    extra={"fields": {"path": str(path), "error": exc.strerror}})
        return None
    return str(path)


@dataclass
class ImapContext:
    """What every session of one server shares."""

    settings: Settings
    store: MailStore
    authenticator: Authenticator
    changes: ChangeHub
    pipeline: Pipeline | None
    db: Database | None
    tls_context: ssl.SSLContext
    workarounds: Workarounds
    sessions: set[Session] = field(default_factory=set)
    # The trust-space manager (``.current.contains(domain)``): read receipts never leave
    # it. None (tests of the core alone): receipts go to local mailboxes only.
    trust: Any = None
    # The CRLs in force (``trustspace.crl.CrlStore``): SASL EXTERNAL refuses a revoked
    # certificate. None: revocation is not checked (tests of the core alone).
    revocation: Any = None
    # Pro Santé Connect tokens (``accounts.psc_login.PscLogin``): SASL OAUTHBEARER and
    # XOAUTH2 are offered only when set.
    psc: Any = None
    # Bounds the memory of large APPENDs: a spooled message is read back whole to be parsed
    # and stored, so only this many are at once, whatever the number of connections.
    append_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(APPEND_CONCURRENCY)
    )


class Done:
    """What a handler returns for its tagged OK: text and optional response code."""

    __slots__ = ("text", "code", "silent")

    def __init__(
        self, text: str = "Completed", code: ResponseCode | str | None = None,
        *, silent: bool = False,
    ) -> None:
        self.text = text
        self.code = code
        self.silent = silent  # the handler already wrote its tagged reply (STARTTLS)


class Session:
    """The state and I/O of one client connection."""

    def __init__(
        self,
        ctx: ImapContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
    ) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.id = secrets.token_hex(6)
        self.identity: Identity | None = None
        self.selected: SelectedMailbox | None = None
        # (folder id, UID) of the bodies this session fetched with PEEK: a later \Seen on
        # one of them is evidence of a display (imap/readproof.py).
        self.downloaded: set[tuple[int, int]] = set()
        # RFC 4314 rights on the selected mailbox (all of them on one's own folders).
        self.rights = "lrswipkxtecda"
        # Access version checked last (accounts.access) and the shared mailbox withdrawn
        # while selected, answered NO [NOPERM] until another is selected (imap.shared).
        self.access_version: int | None = None
        self.withdrawn: str | None = None
        self.enabled: set[str] = set()
        self.logout = False
        self.bad_count = 0
        self.auth_failures = 0
        self.closing = False
        self.done = asyncio.get_running_loop().create_future()
        self.running: c.Command | None = None
        """The command being handled, if any (RFC 5465 NOTIFY pushes between commands)."""
        self.between_commands = asyncio.Event()
        self.between_commands.set()
        self._out: list[bytes] = []
        self._out_size = 0
        imap = ctx.settings.imap
        self.cmd_reader = CommandReader(
            reader, self._send_continuation, max_line=imap.max_line_length,
            max_literal=PREAUTH_MAX_LITERAL, max_command=PREAUTH_MAX_COMMAND,
            limit_scope=" before login", append_limits=PREAUTH_LIMITS,
            spool_dir=spool_directory(ctx.settings.data_dir),
        )
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    # -- state -----------------------------------------------------------------------
    @property
    def authenticated(self) -> bool:
        return self.identity is not None

    @property
    def utf8(self) -> bool:
        """RFC 9051 / RFC 6855: mailbox names and strings in UTF-8 once enabled."""
        return "IMAP4REV2" in self.enabled or "UTF8=ACCEPT" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command (FETCH or SEARCH MODSEQ, CHANGEDSINCE, STORE
        UNCHANGEDSINCE, STATUS HIGHESTMODSEQ, ENABLE): RFC 7162 §3.1, when the mailbox
        was selected without CONDSTORE, the client first learns its HIGHESTMODSEQ (the one
        matching what it has been told), as SELECT would have said."""
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.write(untagged("OK", "Highest mod-sequence",
                                ResponseCode.highestmodseq(self.selected.modseq)))

    def capabilities(self) -> list[str]:
        from imap.commands.auth import mechanism_names

        mechanisms = mechanism_names()
        ssl_object = self.ssl_object()
        if ssl_object is None or not ssl_object.getpeercert(binary_form=True):
            # Only offer EXTERNAL to a client that presented a certificate: clients such as
            # mbsync pick it whenever it is listed and would then fail to log in.
            mechanisms = [m for m in mechanisms if m != "EXTERNAL"]
        if self.ctx.psc is None:
            mechanisms = [m for m in mechanisms if m not in ("OAUTHBEARER", "XOAUTH2")]
        return capabilities(
            tls=self.tls, authenticated=self.authenticated,
            mechanisms=mechanisms, append_limit=self.ctx.settings.imap.max_literal_size,
        )

    def ssl_object(self) -> ssl.SSLObject | None:
        return self.writer.get_extra_info("ssl_object")

    def log_fields(self, **extra: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"session": self.id, "peer": self.peer}
        if self.identity is not None:
            fields["user"] = self.identity.address
        fields.update(extra)
        return {"fields": fields}

    # -- output ----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    async def flush(self, force: bool = True) -> None:
        """Sends what is buffered; FETCH calls it with ``force=False`` to stream large replies."""
        if not self._out or (not force and self._out_size < FLUSH_AT):
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        self.writer.write(data)
        await self.writer.drain()

    async def _send_continuation(self) -> None:
        self.write(continuation())
        await self.flush()

    async def read_line(self) -> bytes | None:
        """A continuation line (SASL response, IDLE's DONE)."""
        async with asyncio.timeout(self.inactivity_timeout):  # see _one_command
            return await self.cmd_reader.read_line()

    @property
    def inactivity_timeout(self) -> float:
        """Silence allowed before autologout: short until the client has logged in, so
        that connections nobody uses cannot pile up (Dovecot does the same before login)."""
        imap = self.ctx.settings.imap
        return imap.idle_timeout if self.authenticated else imap.login_timeout

    # -- selected mailbox -----------------------------------------------------------
    def close_selected(self) -> None:
        if self.selected is not None:
            self.ctx.changes.unwatch(self.selected.folder_id, self.selected.event)
            self.selected = None

    async def report_changes(self, *, allow_expunge: bool) -> None:
        """Untagged EXISTS/EXPUNGE/FETCH for changes by others (RFC 3501 §5.2)."""
        sel = self.selected
        if sel is None:
            return
        for line in await sel.sync(
            self.ctx.store, allow_expunge=allow_expunge, condstore=self.condstore,
            qresync=self.qresync, rev2=self.rev2,
        ):
            self.write(line)
        await self.report_contexts(allow_expunge=allow_expunge)

    async def report_contexts(self, *, allow_expunge: bool) -> None:
        """ADDTO/REMOVEFROM of the live SEARCH/SORT results (RFC 5267 §4.3), after the
        EXISTS/EXPUNGE they depend on."""
        sel = self.selected
        if sel is None or not sel.contexts:
            return
        running = self.running.tag if self.running is not None else None
        for line in await context_updates(self.ctx.store, sel,
                                          allow_expunge=allow_expunge, running=running):
            self.write(line)

    # -- main loop -------------------------------------------------------------------
    async def run(self) -> None:
        """Greets, serves commands until LOGOUT, EOF, a fatal error or shutdown."""
        self.ctx.sessions.add(self)
        log.info("imap_connect", extra=self.log_fields(tls=self.tls))
        try:
            caps = " ".join(self.capabilities())
            self.write(untagged("OK", "MSSante gateway IMAP ready", f"CAPABILITY {caps}"))
            await self.flush()
            while not self.logout and not self.closing:
                keep = await self._one_command()
                await self.flush()
                if not keep:
                    break
        except (ConnectionError, ConnectionClosed, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except TimeoutError:  # a SASL exchange or a STARTTLS handshake left unfinished
            with contextlib.suppress(Exception):
                self.write(bye(self._autologout_text()))
                await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken session must not take the server down
            text = internal_error(exc, self.log_fields)
            with contextlib.suppress(Exception):
                self.write(bye(f"{text}, please reconnect", "SERVERBUG"))
                await self.flush()
        finally:
            self.close_selected()
            self.ctx.sessions.discard(self)
            with contextlib.suppress(Exception):
                self.writer.close()
            log.info("imap_disconnect", extra=self.log_fields())
            self.cmd_reader.detach()  # frees the stream buffers now, not at the next gc
            if not self.done.done():
                self.done.set_result(None)

    def _set_literal_limits(self) -> None:
        """Literal limits for the current state: a few KiB until login, then by command.

        An unauthenticated client must not make the server buffer anything large (it could
        open hundreds of connections). Once logged in, APPEND may send up to
        ``max_literal_size`` (spooled, encrypted, beyond a few KiB) and every other
        command's literals are held to the line length, as in Dovecot.
        """
        reader = self.cmd_reader
        if self.authenticated:
            imap = self.ctx.settings.imap
            reader.limits = LiteralLimits(
                imap.max_line_length, max(COMMAND_MAX_SIZE, imap.max_line_length * 2),
                " outside APPEND",
            )
            reader.append_limits = LiteralLimits(
                imap.max_literal_size, imap.max_literal_size + 1024 * 1024,
                spool_threshold=SPOOL_THRESHOLD,
            )
        else:
            reader.limits = reader.append_limits = PREAUTH_LIMITS

    async def _one_command(self) -> bool:
        """Reads and runs one command; False when the connection must end."""
        self._set_literal_limits()
        try:
            # asyncio.timeout, not wait_for: wait_for runs the read in its own task, whose
            # future keeps a refusal's traceback, whose frames keep the future (a cycle holding
            # the session and its stream buffers until the cycle collector runs).
            async with asyncio.timeout(self.inactivity_timeout):
                raw = await self.cmd_reader.read_command()
        except TimeoutError:
            # RFC 9051 §5.4: an inactivity autologout timer of at least 30 minutes once
            # authenticated; before, [imap] login_timeout.
            self.write(bye(self._autologout_text()))
            return False
        except CommandTooLarge as exc:
            self.write(exc.response())
            return False
        except ParseError as exc:  # LiteralRefused: the stream is still in step
            self.write(exc.response())
            return self._count_bad()
        if raw is None:
            return False
        try:
            try:
                cmd = parse_command(raw, utf8=self.utf8, spooled=self.cmd_reader.spooled)
            except ParseError as exc:
                self.write(exc.response())
                # A refused value (NO: a charset, a mailbox name) is not an invalid command.
                return self._count_bad() if exc.status == "BAD" else True
            self.running = cmd
            self.between_commands.clear()
            try:
                await self.dispatch(cmd)
            finally:
                self.running = None
                self.between_commands.set()
        except CommandTooLarge as exc:
            # A continuation line (AUTHENTICATE response, IDLE's DONE) over the line limit.
            self.write(exc.response())
            return False
        finally:
            self.cmd_reader.release_spools()  # the spool files go with the command
        return not self.logout

    def _autologout_text(self) -> str:
        if self.authenticated:
            return "Autologout: idle for too long"
        return (f"Autologout: not logged in after {self.inactivity_timeout:g} seconds "
                "of inactivity")

    def _count_bad(self) -> bool:
        self.bad_count += 1
        if self.bad_count >= self.ctx.settings.imap.max_bad_commands:
            self.write(bye("Too many invalid commands, closing the connection"))
            return False
        return True

    async def dispatch(self, cmd: c.Command) -> None:
        """Checks the state, runs the handler, reports changes, writes the tagged reply."""
        from imap.commands import HANDLERS

        spec = HANDLERS.get(type(cmd))
        if spec is None:
            IMAP_COMMANDS.labels("UNKNOWN", "BAD").inc()
            self.write(tagged(cmd.tag, "BAD", f"{cmd.name} is not supported by this server"))
            self._count_bad()
            return
        name = type(cmd).__name__.upper()
        if self.identity is not None:
            from imap.shared import access_gate

            if await access_gate(self, cmd, spec.state):
                IMAP_COMMANDS.labels(name, "NO").inc()
                return
        refusal = spec.refusal(self)
        if refusal is not None:
            IMAP_COMMANDS.labels(name, refusal.status).inc()
            self.write(refusal.response(cmd.tag))
            if refusal.status == "BAD":
                self._count_bad()
            return
        try:
            result = await spec.handler(self, cmd)
        except ImapRefusal as exc:
            IMAP_COMMANDS.labels(name, exc.status).inc()
            self.write(exc.response(cmd.tag))
            if exc.status == "BYE":
                self.logout = True
            elif exc.status == "BAD":
                self._count_bad()
            return
        except ParseError as exc:
            IMAP_COMMANDS.labels(name, "BAD").inc()
            exc.tag = cmd.tag
            self.write(exc.response())
            self._count_bad()
            return
        except (ConnectionError, ConnectionClosed, ssl.SSLError, asyncio.IncompleteReadError,
                TimeoutError, CommandTooLarge):
            # the connection is gone or stalled, or a continuation line (AUTHENTICATE, IDLE)
            # overran the limit: the session ends with its own answer (run, _one_command)
            raise
        except Exception as exc:  # noqa: BLE001 - one failed command must not end the session
            IMAP_COMMANDS.labels(name, "NO").inc()
            self.write(tagged(cmd.tag, "NO", internal_error(exc, self.log_fields), "SERVERBUG"))
            return
        IMAP_COMMANDS.labels(name, "OK").inc()
        self.bad_count = 0
        if self.logout:
            return
        done = result if isinstance(result, Done) else Done()
        if done.silent:
            return
        sel = self.selected
        if sel is not None and (sel.event.is_set() or spec.always_sync
                                or (sel.contexts and contexts_waiting(sel))):
            if not (self.ctx.workarounds.delay_newmail and not spec.always_sync):
                await self.report_changes(allow_expunge=not isinstance(cmd, NO_EXPUNGE))
        self.write(tagged(cmd.tag, "OK", f"{cmd.name} {done.text}", done.code))

    def shutdown(self, text: str = "Server shutting down, please reconnect",
                 code: str = "UNAVAILABLE") -> None:
        """Says BYE and closes now (used after the stop grace period)."""
        self.closing = True
        with contextlib.suppress(Exception):
            self.writer.write(b"".join(self._out) + bye(text, code))
            self._out.clear()
            self.writer.close()
