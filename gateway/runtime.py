"""The composition root: builds every service from the settings and runs them together.

Order of start: configuration file (first start), TLS identity (development PKI in embedded
mode), trust space, database (migrations, key file), first-start accounts, message
pipeline, then the listeners. Anything that fails before the listeners are up is a
:class:`~gateway.startup.StartupError`: one line, non-zero exit, nothing left running.
Stop is the reverse: listeners stop accepting, sessions get ``gateway.shutdown_grace``
seconds to finish, the pipeline commits what it holds, the database closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from accounts.authenticator import Authenticator
from accounts.errors import AccountRefused
from accounts.mailboxes import add_mailbox
from accounts.psc_login import PscLogin, build_psc_login
from config import Settings
from config.metrics import Snapshot
from directory_ldap import Directory
from gateway import heap
from gateway.pidfile import remove_pid_file, write_pid_file
from gateway.private_files import make_private
from gateway.reload import Reloader
from gateway.sdnotify import Notifier
from gateway.service import Listener, Service
from gateway.startup import StartupError, ensure_config_file, open_storage, prepare_tls
from mail.changes import ChangeHub
from mail.pipeline import Pipeline
from mail.vacation import VacationResponder
from storage import accounts as account_rows
from storage.database import Database
from storage.notify import PgChangeChannel, open_change_channel
from trustspace.certs import PkiError
from trustspace.crl import CrlStore
from trustspace.pki import ensure_dev_pki, issue_certificate
from trustspace.refresh import TrustSpaceManager, ensure_default_whitelist
from trustspace.tickets import use_ticket_keys

Role = Literal["all", "supervisor", "worker"]
"""What one process of the gateway runs: everything (``[gateway] workers = 1``), the
background jobs and the portal (the supervisor), or the SMTP and IMAP sessions (a worker)."""

FIRST_START_ACTOR = "gateway:first-start"
"""Who created the first accounts, in their proofs (no operator ran a command)."""

log = logging.getLogger("mssante.gateway")

DEMO_IDNAT = "810000000001"


@dataclass(frozen=True)
class FirstStartCredentials:
    """Printed once, at the first start on an empty database."""

    admin_address: str
    admin_password: str
    demo_address: str
    demo_password: str
    demo_certificate: Path | None = None  # PKCS#12 of a CPS-like certificate (embedded mode)
    demo_certificate_password: str | None = None


@dataclass
class Gateway:
    """Every running part of one gateway process."""

    settings: Settings
    db: Database | None = None
    trust: TrustSpaceManager | None = None
    revocation: CrlStore | None = None
    pipeline: Pipeline | None = None
    changes: ChangeHub = field(default_factory=ChangeHub)
    authenticator: Authenticator | None = None
    psc: PscLogin | None = None
    """Pro Santé Connect tokens (SASL XOAUTH2/OAUTHBEARER, portal login); None: off."""
    directory: Directory | None = None
    vacation: VacationResponder | None = None
    services: list[Service] = field(default_factory=list)
    first_start: FirstStartCredentials | None = None
    role: Role = "all"
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    """Sockets by listener kind (``relay``, ``submission``, ``submissions``, ``imap``,
    ``imaps``): in a worker, the listening sockets its session services serve instead of
    binding their own; in the supervisor, the addresses it reserved for them."""
    extra_listeners: list[Listener] = field(default_factory=list)
    worker_metrics: Callable[[], Awaitable[list[Snapshot]]] | None = None
    """The supervisor's way to read its workers' counters for /metrics."""
    """Listeners served by other processes (the supervisor's banner shows the workers')."""
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _stop_background: asyncio.Event = field(default_factory=asyncio.Event)
    _change_channel: PgChangeChannel | None = None

    # -- start ---------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
        worker = self.role == "worker"  # its supervisor prepared the data directory
        await asyncio.to_thread(settings.data_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        if not worker and ensure_config_file(settings):
            log.info("config_written", extra={"fields": {"path": str(settings.config_file)}})
        if not worker:
            await asyncio.to_thread(prepare_tls, settings)
        self.revocation = await load_revocation(settings)
        if settings.embedded and not worker:
            await asyncio.to_thread(ensure_default_whitelist, settings)
        self.trust = TrustSpaceManager(settings)
        result = await self.trust.load_initial()
        if not self.trust.loaded:
            raise StartupError(
                f"trust space: no usable whitelist ({result.reason}: {result.detail}); "
                f"check [trustspace] file/url"
            )
        self.db = await open_storage(settings, may_create_key=not worker)
        try:
            if not worker:
                self.first_start = await self._first_start_accounts(self.db)
            self.authenticator = Authenticator(self.db, limits=settings.auth)
            self.psc = build_psc_login(settings, self.db, self.authenticator)
            self.pipeline = Pipeline(self.db, settings, self.changes)
            await self.pipeline.start()
            self.vacation = VacationResponder(self.db, settings, self.pipeline, self.trust)
            self.pipeline.after_commit(self.vacation.on_delivered)
            await self.start_change_channel()
            for build in service_builders(self.role):
                service = build(self)
                if service is None:
                    continue
                try:
                    await service.start()
                except OSError as exc:
                    raise StartupError(_bind_error(service.name, exc)) from None
                except StartupError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure: one line, exit 1
                    raise StartupError(f"{service.name}: {exc}") from None
                self.services.append(service)
            self._background.append(asyncio.create_task(
                self.trust.run_periodic(self._stop_background, fetch=not worker)))
            self._background.append(asyncio.create_task(
                self.revocation.run(self._stop_background, renew=not worker),
                name="crl-refresh"))
            if not worker:
                # Every file now exists (database, WAL, PKI, slapd's data): none readable by
                # other accounts, whatever umask made them or an older version left them.
                await asyncio.to_thread(make_private, settings)
        except BaseException:
            await self.stop(grace=0)
            raise

    async def start_change_channel(self) -> None:
        """PostgreSQL: share IMAP change notifications with the other nodes
        (docs/architecture.md §4)."""
        assert self.db is not None
        self._change_channel = await open_change_channel(
            self.db, self.changes.wake, self.changes.wake_all)
        if self._change_channel is not None:
            self.changes.attach(self._change_channel.publish)

    async def _first_start_accounts(self, db: Database) -> FirstStartCredentials | None:
        """At first start (no account at all): the first administrator and a demo mailbox."""
        async with db.read() as conn:
            if await account_rows.list_accounts(conn, limit=1):
                return None
        domain = self.settings.primary_domain
        try:
            admin = await add_mailbox(
                db, f"postmaster@{domain}", type="ORG", name="Postmaster", is_admin=True,
                actor=FIRST_START_ACTOR,
            )
            demo = await add_mailbox(
                db, f"demo@{domain}", type="PER", name="Dr Camille Demo", idnat=DEMO_IDNAT,
                actor=FIRST_START_ACTOR,
            )
        except AccountRefused:
            # Another node on the same database made them at the same moment (nodes may
            # start together on an empty database): that node shows the credentials.
            async with db.read() as conn:
                if not await account_rows.list_accounts(conn, limit=1):
                    raise
            log.info("first_start_accounts_made_by_another_node")
            return None
        log.info("first_start_accounts", extra={"fields": {
            "admin": admin.account.address, "demo": demo.account.address}})
        creds = FirstStartCredentials(
            admin.account.address, admin.app_password, demo.account.address, demo.app_password
        )
        if self.settings.embedded:
            # A CPS-like certificate for the demo holder, to try SASL EXTERNAL at once.
            pki = await asyncio.to_thread(ensure_dev_pki, self.settings)
            issued = await asyncio.to_thread(
                lambda: issue_certificate(
                    pki, "cps", idnat=DEMO_IDNAT, name="Dr Camille Demo",
                    out_dir=self.settings.pki_dir / "issued", stem="demo-cps",
                )
            )
            creds = replace(creds, demo_certificate=issued.p12_file,
                            demo_certificate_password=issued.p12_password)
        return creds

    def listeners(self) -> list[Listener]:
        return [*self.extra_listeners, *(lst for s in self.services for lst in s.listeners())]

    # -- stop ----------------------------------------------------------------------
    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.gateway.shutdown_grace if grace is None else grace
        self._stop_background.set()
        for service in reversed(self.services):
            try:
                await service.stop(grace)
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("service_stop_failed", extra={"fields": {"service": service.name}})
        self.services.clear()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        if self.vacation is not None:
            await self.vacation.idle()  # absence replies under way go out before the writer stops
        if self.pipeline is not None:
            await self.pipeline.stop()
            self.pipeline = None
        if self.authenticator is not None:
            await self.authenticator.close()
        if self.psc is not None:
            await self.psc.close()
        if self._change_channel is not None:
            self.changes.detach(self._change_channel.publish)
            await self._change_channel.stop()
            self._change_channel = None
        if self.db is not None:
            await self.db.close()
            self.db = None


ServiceBuilder = Callable[[Gateway], Service | None]


async def load_revocation(settings: Settings) -> CrlStore:
    """The CRLs every listener checks peer certificates against (see trustspace.crl)."""
    store = CrlStore(settings)
    try:
        await store.load_initial()
    except PkiError as exc:
        raise StartupError(str(exc)) from None
    return store


def service_builders(role: Role = "all") -> list[ServiceBuilder]:
    """The services of this build, in start order (each module adds itself here); for a
    supervisor only the background ones, for a worker only the session ones."""
    from gateway.services import BUILDERS, ROLES

    if role == "all":
        return list(BUILDERS)
    wanted = "background" if role == "supervisor" else "sessions"
    return [build for build in BUILDERS if ROLES[build] == wanted]


def _bind_error(name: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"{name}: address already in use ({exc.strerror}); stop the program using it " \
               "or choose another port in the configuration"
    return f"{name}: cannot listen: {exc.strerror or exc}"


async def serve(
    settings: Settings, announce: Callable[[Gateway], Awaitable[None] | None] | None = None
) -> int:
    """Runs the gateway until SIGTERM or SIGINT; returns the process exit code (0).

    With ``[gateway] workers`` > 1 this process is the supervisor (gateway/supervisor.py):
    it binds the SMTP and IMAP sockets, runs the background services, and says READY once
    every worker serves. SIGHUP reloads the trust space and ``[transport]``
    (gateway/reload.py), here and in every worker; the pid file tells ``mssante reload``
    whom to signal."""
    from gateway.supervisor import WorkerPool, bind_listeners, listeners_of, worker_count

    notifier = Notifier()
    count = worker_count(settings)
    pool: WorkerPool | None = None
    if count > 1:
        sockets = bind_listeners(settings)
        gateway = Gateway(settings, role="supervisor", sockets=sockets,
                          extra_listeners=listeners_of(settings, sockets))
        pool = WorkerPool(settings, sockets, count, gateway.changes, _queued(gateway))
        use_ticket_keys(pool.ticket_keys)  # the portal's context too
        gateway.worker_metrics = pool.metrics
        gateway.changes.attach(pool.publish)
    else:
        gateway = Gateway(settings)
    try:
        await gateway.start()  # stops what it started if it fails
    except BaseException:
        for sock in gateway.sockets.values():
            sock.close()
        raise
    if pool is not None:
        try:
            await pool.start()
        except BaseException:
            await pool.stop(grace=0)
            await gateway.stop(grace=0)
            raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = asyncio.create_task(notifier.watchdog(stop), name="sd-watchdog")
    reloader = Reloader(gateway, pool.reload if pool is not None else None)
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    pid_file = await asyncio.to_thread(write_pid_file, settings.data_dir)
    try:
        if announce is not None:
            maybe = announce(gateway)
            if maybe is not None:
                await maybe
        heap.settle()
        log.info("gateway_ready", extra={"fields": {
            "listeners": len(gateway.listeners()), "workers": count}})
        notifier.send(ready=1, status=f"serving on {len(gateway.listeners())} listeners"
                      + (f" with {count} workers" if pool is not None else ""),
                      mainpid=os.getpid())
        await stop.wait()
        log.info("gateway_stopping", extra={"fields": {
            "grace_s": settings.gateway.shutdown_grace}})
        notifier.send(stopping=1, status="stopping: sessions are finishing")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await reloader.close()
        remove_pid_file(pid_file)
        stop.set()
        await watchdog
        if pool is not None:
            await pool.stop(settings.gateway.shutdown_grace)
        await gateway.stop()
    log.info("gateway_stopped")
    return 0


def _queued(gateway: Gateway) -> Callable[[], None]:
    """A worker queued outbound rows: wake the outbound queue of this process."""

    def wake() -> None:
        if gateway.pipeline is not None:
            gateway.pipeline.queued_elsewhere()

    return wake
