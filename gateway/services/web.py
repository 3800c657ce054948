"""The HTTPS service: health, metrics and client autoconfiguration on ``[web] port``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

from accounts.notify import SmarthostNotifier, notifier_for
from accounts.registrations import Registrar
from config import Settings
from config.metrics import Snapshot, merge, snapshot
from gateway.service import Listener
from mailstore.readproof import ReadProofs
from mailstore.store import MailStore, SqlMailStore
from storage.database import Database
from storage.stats import read_stats
from trustspace.expiry import tls_expiries
from trustspace.refresh import TrustSpaceManager
from trustspace.tls import server_context
from web.app import WebDeps, build_app, parse_networks
from web.autoconfig import ClientSettings
from web.cps import CpsPages
from web.health import Check
from web.metrics import GatewayMetrics, Reading
from web.portal import PortalDeps
from web.server import WebServer
from web.sessions import SessionStore
from web.webmail.base import WebmailDeps
from web.webmail.compose import WriteDeps

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "background"  # the supervisor runs it once (gateway/supervisor.py)
ORDER = 40  # after the mail services: ready means they are up
log = logging.getLogger("mssante.web")


class GatewayReadings:
    """The gateway's side of :class:`web.metrics.MetricsSource`; ``workers`` gives the
    instrument snapshots of the worker processes when there are some."""

    def __init__(self, settings: Settings, db: Database, trust: TrustSpaceManager,
                 workers: Callable[[], Awaitable[list[Snapshot]]] | None = None) -> None:
        self._settings = settings
        self._db = db
        self._trust = trust
        self._workers = workers

    async def read(self) -> Reading:
        async with self._db.read() as conn:
            stats = await read_stats(conn)
        space = self._trust.current if self._trust.loaded else None
        instruments = None
        if self._workers is not None:
            instruments = merge([snapshot(), *await self._workers()])
        return Reading(
            instruments=instruments,
            store=stats,
            trust_domains=space.count if space is not None else 0,
            trust_loaded_at=space.loaded_at if space is not None else None,
            expiries=await asyncio.to_thread(tls_expiries, self._settings),
            now=datetime.now(UTC),
        )


def readiness_checks(gateway: Gateway) -> dict[str, Check]:
    """Database answers, trust space loaded, directory answers (when it is enabled)."""
    db, trust = gateway.db, gateway.trust
    assert db is not None and trust is not None

    async def database() -> str | None:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
        return None

    async def trust_space() -> str | None:
        return None if trust.loaded else "no trust space loaded"

    checks: dict[str, Check] = {"database": database, "trustspace": trust_space}
    if gateway.settings.directory.enabled:
        async def directory() -> str | None:
            if gateway.directory is None:
                return "directory not started"
            await gateway.directory.lookup(f"postmaster@{gateway.settings.primary_domain}")
            return None

        checks["directory"] = directory
    return checks


def bound_ports(gateway: Gateway) -> dict[str, int]:
    """The ports the mail listeners really bound (they start before this service)."""
    ports: dict[str, int] = {
        # in a supervisor the mail listeners are sockets its workers serve
        kind: int(sock.getsockname()[1]) for kind, sock in gateway.sockets.items()
    }
    for service in gateway.services:
        if service.name == "smtp":
            port = service.port  # type: ignore[attr-defined]
            ports["submissions"] = int(port("submissions"))
            ports["submission"] = int(port("submission"))
        elif service.name == "IMAP":
            server = service.server  # type: ignore[attr-defined]
            ports["imaps"], ports["imap"] = int(server.tls_port), int(server.port)
    return ports


def mail_store(gateway: Gateway) -> MailStore:
    """The IMAP server's mailbox store when it runs (one folder index for both), else one
    over the same database and change hub."""
    assert gateway.db is not None
    for service in gateway.services:
        if service.name == "IMAP":
            return service.context.store  # type: ignore[attr-defined, no-any-return]
    return SqlMailStore(gateway.db, gateway.changes)


class WebService:
    name = "web"

    def __init__(self, gateway: Gateway) -> None:
        assert gateway.db is not None and gateway.trust is not None
        assert gateway.authenticator is not None
        settings = gateway.settings
        outbox = notifier_for(settings)
        self.notifier = outbox
        self.registrar = Registrar(gateway.db, outbox, portal_url=settings.web.public_url)
        sessions = SessionStore(settings.web.session_idle, settings.web.session_lifetime)
        portal = PortalDeps(
            db=gateway.db, authenticator=gateway.authenticator, registrar=self.registrar,
            outbox=outbox, sessions=sessions, local_domains=tuple(settings.gateway.domains),
        )
        assert gateway.pipeline is not None
        write = WriteDeps(
            db=gateway.db, sessions=sessions, settings=settings,
            pipeline=gateway.pipeline, trust=gateway.trust,
            directory=gateway.directory,
        )
        webmail = WebmailDeps(
            db=gateway.db, sessions=sessions, store=mail_store(gateway),
            reads=ReadProofs(gateway.db, gateway.pipeline, settings, gateway.trust),
            extra={"write": write})
        deps = WebDeps(
            client=ClientSettings.from_settings(settings, bound_ports(gateway)),
            metrics=GatewayMetrics(GatewayReadings(settings, gateway.db, gateway.trust,
                                                   gateway.worker_metrics)),
            readiness=readiness_checks(gateway),
            metrics_from=parse_networks(settings.web.metrics_from),
            portal=portal,
            psc=gateway.psc,
            public_url=settings.web.public_url,
            cps_port=lambda: self.cps_server.port,
            webmail=webmail,
        )
        self._host = settings.gateway.listen
        self.server = WebServer(build_app(deps), self._host, settings.web.port,
                                server_context(settings, "none"))
        # CPS card login: a listener whose handshake requires a client certificate
        cps = CpsPages(gateway.db, portal.sessions, gateway.authenticator, gateway.revocation,
                       lambda: self.server.port, settings.web.public_url)
        self.cps_server = WebServer(cps.app(), self._host, settings.web.cps_port,
                                    server_context(settings, "required"),
                                    client_certificates=True)

    async def start(self) -> None:
        await self.server.start()
        try:
            await self.cps_server.start()
        except BaseException:
            await self.server.stop(0)
            raise
        if isinstance(self.notifier, SmarthostNotifier):
            await self.notifier.start()  # retries what the smarthost did not take
        if not self.registrar.portal_url:
            # links in system e-mails name the port really bound (0 in tests asks for one)
            settings = self.registrar.db.settings
            port = "" if self.server.port == 443 else f":{self.server.port}"
            self.registrar.portal_url = f"https://{settings.hostname}{port}"

    def listeners(self) -> list[Listener]:
        return [Listener("HTTPS (portal, autoconfig, metrics)", self._host, self.server.port,
                         "implicit TLS"),
                Listener("HTTPS (portal, CPS card login)", self._host, self.cps_server.port,
                         "implicit TLS, client certificate required")]

    async def stop(self, grace: float) -> None:
        await self.cps_server.stop(grace)
        if isinstance(self.notifier, SmarthostNotifier):
            await self.notifier.stop()
        await self.server.stop(grace)


def build(gateway: Gateway) -> WebService | None:
    return WebService(gateway) if gateway.settings.web.enabled else None
