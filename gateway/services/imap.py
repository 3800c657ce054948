"""The IMAP service of the gateway: both IMAP listeners over the shared storage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.service import Listener
from imap.mailstore import SqlMailStore
from imap.server import ImapServer
from imap.session import ImapContext
from imap.workarounds import Workarounds
from trustspace.tls import server_context

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ORDER = 25


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
        )
        self.server = ImapServer(self.context)

    async def start(self) -> None:
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
