"""The IMAP service of the gateway: both IMAP listeners over the shared storage."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.service import Listener
from imap.server import ImapServer
from imap.session import ImapContext
from imap.workarounds import Workarounds
from mailstore.store import SqlMailStore
from trustspace.tls import server_context

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "sessions"  # every worker process runs it (gateway/supervisor.py)
ORDER = 25
log = logging.getLogger("mssante.imap")


class ImapService:
    """Runs :class:`~imap.server.ImapServer`; client certificates enable SASL EXTERNAL."""

    name = "IMAP"

    def __init__(self, gateway: Gateway) -> None:
        assert gateway.db is not None and gateway.authenticator is not None
        settings = gateway.settings
        self.context = ImapContext(
            settings=settings,
            store=SqlMailStore(gateway.db, gateway.changes,
                               index_messages=gateway.settings.imap.index_cache_messages),
            authenticator=gateway.authenticator,
            changes=gateway.changes,
            pipeline=gateway.pipeline,
            db=gateway.db,
            # "optional": a certificate is asked for (SASL EXTERNAL) but not required.
            tls_context=server_context(settings, "optional"),
            workarounds=Workarounds.from_names(settings.imap.client_workarounds),
            trust=gateway.trust,
            revocation=gateway.revocation,
            psc=gateway.psc,
        )
        self.server = ImapServer(self.context)
        self.gateway_sockets = gateway.sockets
        if gateway.revocation is not None:
            gateway.revocation.add_listener(self.close_revoked_sessions)

    async def close_revoked_sessions(self) -> None:
        """After a CRL change: ``* BYE`` to every session logged in with a certificate that
        is now revoked (new connections are refused at AUTHENTICATE already)."""
        store = self.context.revocation
        if store is None:
            return
        for session in list(self.context.sessions):
            identity = session.identity
            if identity is None or identity.method != "EXTERNAL" or session.closing:
                continue
            ssl_object = session.ssl_object()
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not der:
                continue
            verdict = store.check(der)
            if not verdict.ok:
                log.info("imap_session_revoked", extra=session.log_fields(reason=verdict.reason))
                session.shutdown(f"Certificate no longer valid: {verdict.reason}")

    async def start(self) -> None:
        inherited = self.gateway_sockets
        if "imap" in inherited and "imaps" in inherited:
            await self.server.start((inherited["imap"], inherited["imaps"]))
        else:
            await self.server.start()

    def listeners(self) -> list[Listener]:
        host = self.context.settings.gateway.listen
        return [
            Listener("IMAP (STARTTLS)", host, self.server.port, "STARTTLS"),
            Listener("IMAP (implicit TLS)", host, self.server.tls_port, "implicit TLS"),
        ]

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)


def build(gateway: Gateway) -> ImapService:
    return ImapService(gateway)
