"""The SMTP service: the operator relay and the two submission listeners, started together.

All three ask for a client certificate without requiring one (``client_auth="optional"``):
on the relay the policy then explains a missing certificate in SMTP (530 5.7.0) rather
than failing the handshake, and on submission a certificate enables SASL EXTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING

from accounts.authenticator import Identity
from accounts.psc_login import PscLogin
from gateway.service import Listener
from smtp.auth import default_mechanisms
from smtp.handlers import RelayPolicy, SubmissionPolicy, TokenChecker
from smtp.policy import ServerKind, SmtpPolicy
from smtp.server import SmtpServer, start_smtp_server
from trustspace.refusal import Refusal
from trustspace.tls import server_context

if TYPE_CHECKING:
    from gateway.runtime import Gateway

ROLE = "sessions"  # every worker process runs it (gateway/supervisor.py)
ORDER = 20

log = logging.getLogger("mssante.smtp")

_LABELS: dict[ServerKind, tuple[str, str]] = {
    "relay": ("SMTP relay between operators", "STARTTLS, mutual TLS"),
    "submission": ("SMTP submission", "STARTTLS"),
    "submissions": ("SMTP submission, implicit TLS", "implicit TLS"),
}


def token_checker(psc: PscLogin) -> TokenChecker:
    """SASL OAUTHBEARER/XOAUTH2 of submission through Pro Santé Connect; PSC out of reach
    is a temporary failure (RFC 4954 454 4.7.0), not a wrong token."""

    async def check(login: str, token: str, mechanism: str, client: str | None,
                    trace_id: str) -> Identity | None:
        verdict = await psc.check(login, token, mechanism, client=client, protocol="smtp",
                                  session_id=trace_id)
        if verdict.status == "temporarily_unavailable":
            raise Refusal(454, "4.7.0", "Temporary authentication failure: Pro Santé Connect "
                          "cannot be reached; try again later")
        return verdict.identity

    return check


class SmtpService:
    """Relay (25), submission (587) and submissions (465) listeners of one gateway."""

    name = "smtp"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.relay_policy = RelayPolicy(gateway)
        psc = gateway.psc
        self.submission_policy = SubmissionPolicy(
            gateway, token_checker=None if psc is None else token_checker(psc),
            token_challenge=None if psc is None else psc.error_challenge)
        self.servers: dict[ServerKind, SmtpServer] = {}

    async def start(self) -> None:
        settings = self.gateway.settings
        # Reading certificates, anchors and CRLs is file I/O: keep it off the loop.
        relay_ctx, submit_ctx = await asyncio.gather(
            asyncio.to_thread(server_context, settings, "optional"),
            asyncio.to_thread(server_context, settings, "optional"),
        )
        plan: list[tuple[ServerKind, SmtpPolicy, ssl.SSLContext, int]] = [
            ("relay", self.relay_policy, relay_ctx, settings.smtp.relay_port),
            ("submission", self.submission_policy, submit_ctx, settings.smtp.submission_port),
            ("submissions", self.submission_policy, submit_ctx, settings.smtp.submissions_port),
        ]
        try:
            for kind, policy, ctx, port in plan:
                self.servers[kind] = await start_smtp_server(
                    kind, settings, policy, ctx, settings.gateway.listen, port,
                    mechanisms=None if kind == "relay" else default_mechanisms(),
                    sock=self.gateway.sockets.get(kind),
                )
        except BaseException:
            await self.stop(0)  # the runtime never stops a service whose start failed
            raise
        log.info("event=smtp_listening %s", " ".join(
            f"{kind}={server.port}" for kind, server in self.servers.items()))

    def listeners(self) -> list[Listener]:
        host = self.gateway.settings.gateway.listen
        return [
            Listener(_LABELS[kind][0], host, server.port, _LABELS[kind][1])
            for kind, server in self.servers.items()
        ]

    def port(self, kind: ServerKind) -> int:
        """The bound port of one listener (useful when the configuration asked for 0)."""
        return self.servers[kind].port

    async def stop(self, grace: float) -> None:
        servers = list(self.servers.values())
        self.servers.clear()
        await asyncio.gather(*(server.close(grace) for server in servers))


def build(gateway: Gateway) -> SmtpService:
    return SmtpService(gateway)
